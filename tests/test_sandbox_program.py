"""A `Program` (what `Spec.program` returns) runs exactly as its whole text does, with the spec's code compiled once.

Through a real pool: the same scores, the same failure lines in the function
and in the spec's code before and after it (nested functions included), the
head's `from __future__` flags, and the fallback for a split that does not
compile on its own. Cost: about 2 s.
"""

from __future__ import annotations

import pickle

import pytest

from evolve.spec import load_spec
from sandbox import Limits, Program, SandboxPool

HEAD = "from __future__ import annotations\nimport colorsys\n\nSCALE = 2.0\n\n"
TAIL = '''

def helper(y):
    def inner(z):
        return z / 0.0 if z > 5 else z
    return inner(y)


def evaluate(x: Unresolved) -> float:  # annotations stay strings: the head's __future__ import
    if x == 99:
        raise RuntimeError("from the tail")
    return helper(SCALE * priority(x)) + colorsys.rgb_to_hsv(0, 0, 0)[2]
'''


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(1, Limits(timeout_s=30.0)) as p:
        yield p


def both(pool: SandboxPool, program: Program, inputs: dict) -> tuple:
    """Evaluate the Program and its plain text; return the two evaluations, wall times aside."""
    assert type(str(program)) is str
    a, b = pool.evaluate(program, "evaluate", inputs), pool.evaluate(str(program), "evaluate", inputs)
    return (a.scores, a.failure, a.error, a.line), (b.scores, b.failure, b.error, b.line)


def test_pieces_text_and_pickling() -> None:
    p = Program("a = 1\n", "def f():\n    return a\n", "b = 2\n")
    assert p == "a = 1\ndef f():\n    return a\nb = 2\n"
    assert (p.head, p.function, p.tail) == ("a = 1\n", "def f():\n    return a\n", "b = 2\n")
    back = pickle.loads(pickle.dumps(p))
    assert isinstance(back, Program) and back.function == p.function and back == p
    with pytest.raises(ValueError):
        Program("a = 1", "def f(): pass\n", "")


@pytest.mark.parametrize("function, x", [
    ("def priority(x):\n    return x + 1.0\n", 1.0),  # valid: 4.0
    ("def priority(x):\n    return x + 1.0\n", 3.0),  # the tail's nested function divides by zero
    ("def priority(x):\n    return x + 1.0\n", 99),  # the tail's own line raises
    ("def priority(x):\n    y = 1\n    return undefined\n", 1.0),  # the function's third line
    ("def priority(x):\n    return (x\n", 1.0),  # a syntax error in the function
])
def test_a_program_scores_and_fails_as_its_whole_text_does(pool: SandboxPool, function: str, x: float) -> None:
    program = Program(HEAD, function, TAIL)
    piecewise, whole = both(pool, program, {"x": x})
    assert piecewise == whole
    if x == 1.0 and "undefined" not in function and "(x\n" not in function:
        assert piecewise[0] == {"x": 4.0}
    else:
        assert piecewise[3] is not None  # a line to point at


def test_a_split_whose_pieces_do_not_compile_alone_runs_as_whole_text(pool: SandboxPool) -> None:
    program = Program("VALUES = [\n", "    3.0,\n", "]\ndef evaluate(x):\n    return VALUES[0] * x\n")
    piecewise, whole = both(pool, program, {"x": 2.0})
    assert piecewise == whole and piecewise[0] == {"x": 6.0}


def test_spec_programs_are_programs_with_the_same_scores(pool: SandboxPool) -> None:
    spec = load_spec("bin_packing_or")
    program = spec.program(spec.function)
    assert isinstance(program, Program) and program.function.startswith("def priority(")
    inputs = dict(list(spec.inputs("train").items())[:1])
    piecewise, whole = both(pool, program, inputs)
    assert piecewise == whole and piecewise[1] is None
