"""Parsing proposer output (a corpus of what real models write) and the dedupe hash."""

from __future__ import annotations

import ast

import pytest

from evolve.parse import apply_diff, extract_function, normalize, parse_candidate, program_hash
from evolve.prompt import build_prompt

V0 = 'def priority(item: float, bins: np.ndarray) -> np.ndarray:\n    """Best fit."""\n    return -(bins - item)\n'
V1 = "def priority(item, bins):\n    ratio = item / bins\n    return -ratio\n"
PROMPT = build_prompt(0, (1, 2), (V0, V1), (-3.0, -2.0), "priority", "import numpy as np\n")
HEADER = 'def priority_v2(item, bins):\n    """Improved version of `priority_v1`."""\n'

# (model output, a line the parsed function must contain, a line it must not)
CORPUS = {
    "plain": ("def priority(item, bins):\n    return bins - item\n", "return bins - item", None),
    "fenced-with-prose": (
        "Here is a better one:\n```python\ndef priority_v2(item, bins):\n    return -bins\n```\nIt is better.", "return -bins", None,
    ),
    "fence-without-language": ("```\ndef priority_v2(item, bins):\n    return bins ** 2\n```", "return bins ** 2", None),
    "chatty-no-fence": (
        "Sure! The new version weighs the gap.\n\ndef priority_v2(item, bins):\n    gap = bins - item\n    return -gap\n\n"
        "This should pack tighter because it prefers small gaps.",
        "return -gap", "This should",
    ),
    "several-defs-pick-requested": (
        "def helper(x):\n    return x\n\ndef priority_v2(item, bins):\n    return helper(bins)\n\ndef other(a):\n    return a\n",
        "return helper(bins)", "def other",
    ),
    "several-fences-pick-requested": (
        "First attempt:\n```python\ndef priority_v2(item, bins):\n    return bins\n```\nActually, the final answer:\n"
        "```python\nimport math\n```\nno wait\n```python\ndef foo(item, bins):\n    return -bins\n```\n",
        "return bins", "return -bins",
    ),
    "wrong-name-last-def": ("def solve(item, bins):\n    return bins * 2\n", "return bins * 2", None),
    "truncated-mid-line": (HEADER + "    s = bins - item\n    t = s * 2\n    return (s +", "t = s * 2", "return (s +"),
    "completion-runs-on": (
        HEADER + "    return -(bins - item) ** 2\n\n\ndef priority_v3(item, bins):\n    return 0\n", "** 2", "return 0",
    ),
    "unclosed-fence": ("```python\ndef priority_v2(item, bins):\n    x = bins / item\n    return x\n", "return x", None),
    "indented-in-markdown": ("1. Try this:\n\n    def priority_v2(item, bins):\n        return bins - 2 * item\n\nDone.",
                             "return bins - 2 * item", None),
    "self-recursion": ("def priority_v2(item, bins):\n    if item > 50:\n        return priority_v2(item / 2, bins)\n    return bins\n",
                       "return priority(item / 2, bins)", "priority_v2"),
    "decorated": ("@staticmethod\ndef priority_v2(item, bins):\n    return bins + 1\n", "return bins + 1", "@staticmethod"),
}


@pytest.mark.parametrize("case", list(CORPUS), ids=list(CORPUS))
def test_corpus(case: str) -> None:
    text, must, must_not = CORPUS[case]
    parsed = parse_candidate(text, PROMPT)
    assert parsed.function is not None, parsed.reason
    assert parsed.function.startswith("def priority(")
    assert must in parsed.function
    if must_not:
        assert must_not not in parsed.function
    ast.parse(parsed.function)


def test_calls_to_older_versions_still_work() -> None:
    text = HEADER + "    a = priority_v0(item, bins)\n    return a + 0.5 * priority_v1(item, bins)\n"
    source = parse_candidate(text, PROMPT).function
    assert source is not None
    namespace: dict = {"np": __import__("numpy")}
    exec(compile(source, "<candidate>", "exec"), namespace)  # trusted: our own corpus
    import numpy as np

    bins = np.array([10.0, 20.0])
    expected = -(bins - 5.0) + 0.5 * -(5.0 / bins)
    assert np.allclose(namespace["priority"](5.0, bins), expected)
    assert "def priority_v0(" in source and "def priority_v1(" in source


def test_helpers_and_imports_the_answer_defines_are_nested() -> None:
    text = (
        "```python\nimport math\n\ndef gap(b, i):\n    return b - i\n\n"
        "def priority_v2(item, bins):\n    return -gap(bins, item) * math.e\n```"
    )
    source = parse_candidate(text, PROMPT).function
    assert source is not None
    namespace: dict = {}
    exec(compile(source, "<candidate>", "exec"), namespace)  # trusted: our own corpus
    assert namespace["priority"](1.0, 3.0) == pytest.approx(-2.0 * 2.718281828)
    assert "math" not in namespace and "gap" not in namespace  # nested, not module-level


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("I'm sorry, I cannot help with that.", "no-function"),
        ("x = 1\ny = 2\n", "no-function"),
        ("def priority_v2(item, bins:\n", "syntax"),
        ("```python\ndef priority_v2(item, bins) -> \n```", "syntax"),
        (HEADER + "    return (bins -", "empty-body"),  # cut off in its first line
        ("def priority_v2(item, bins:\n    return priority_v2(", "syntax"),  # nothing parses, a recursive call cut off
    ],
)
def test_rejections_have_reasons(text: str, reason: str) -> None:
    parsed = parse_candidate(text, PROMPT)
    assert parsed.function is None and parsed.reason == reason


def test_diff_blocks_apply_to_the_best_parent() -> None:
    text = (
        "I'll scale the ratio.\n<<<<<<< SEARCH\n    ratio = item / bins\n=======\n    ratio = (item / bins) ** 2\n"
        ">>>>>>> REPLACE\n\n<<<<<<< SEARCH\nreturn -ratio\n=======\nreturn -ratio + 1\n>>>>>>> REPLACE\n"
    )
    parsed = parse_candidate(text, PROMPT)
    assert parsed.function == "def priority(item, bins):\n    ratio = (item / bins) ** 2\n    return -ratio + 1\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<<<<<<< SEARCH\n    nothing like this\n=======\n    x = 1\n>>>>>>> REPLACE\n", "diff-no-match"),
        ("<<<<<<< SEARCH\n    ratio = item / bins\n=======\n    ratio = (", "syntax"),  # cut off
        ("<<<<<<< SEARCH\n    ratio = item / bins\n=======\n    ratio = (\n>>>>>>> REPLACE\n", "syntax"),
    ],
)
def test_diff_rejections(text: str, reason: str) -> None:
    parsed = parse_candidate(text, PROMPT)
    assert parsed.function is None and parsed.reason == reason


def test_apply_diff_keeps_indentation_when_the_model_drops_it() -> None:
    parsed = apply_diff("<<<<<<< SEARCH\nratio = item / bins\n=======\nratio = item / (bins + 1)\n>>>>>>> REPLACE", V1, "priority")
    assert parsed.function == "def priority(item, bins):\n    ratio = item / (bins + 1)\n    return -ratio\n"


def test_extract_without_a_prompt_takes_the_name_else_the_last() -> None:
    assert extract_function("def a(x):\n    return 1\n\ndef priority(x):\n    return 2\n\ndef b(x):\n    return 3\n",
                            "priority").function == "def priority(x):\n    return 2\n"
    assert extract_function("def a(x):\n    return 1\n\ndef b(x):\n    return 3\n", "priority").function == (
        "def priority(x):\n    return 3\n"
    )


def test_hash_ignores_comments_docstrings_annotations_and_name() -> None:
    a = 'def priority(item: float, bins: np.ndarray) -> np.ndarray:\n    """Doc."""\n    # why\n    return -(bins - item)\n'
    b = "def priority_v3(item, bins):\n    return -(bins - item)  # same\n"
    c = "def priority(item, bins):\n    return -(bins + item)\n"
    assert program_hash(a) == program_hash(b) != program_hash(c)
    assert normalize(b) == "def f(item, bins):\n    return -(bins - item)"


def test_random_garbage_never_raises_and_what_is_accepted_compiles() -> None:
    """What a model with random weights writes: pieces of Python in any order, after the header or not."""
    import random

    pieces = ["def ", "priority_v2", "priority_v0", "(", ")", ":", "\n", "    ", "\t", "return ", "bins", "item", " + ",
              "```", "```python\n", '"""', "'", "import math\n", "<<<<<<< SEARCH\n", "=======\n", ">>>>>>> REPLACE\n",
              "@", "class ", "\\", "#", "é", "[", "]", ",", "=", "if ", "else", "x", " ", "def helper(a):\n    return a\n"]
    rng = random.Random(0)
    accepted = 0
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 50)))
        parsed = parse_candidate(HEADER + text if rng.random() < 0.5 else text, PROMPT)
        if parsed.function is None:
            assert parsed.reason in ("empty", "syntax", "no-function", "empty-body", "diff-no-match")
        else:
            accepted += 1
            compile(parsed.function, "<candidate>", "exec")
            assert parsed.function.startswith("def priority(")
    assert accepted > 30
