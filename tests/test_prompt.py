"""Prompt formats: FunSearch's completion format (version numbers), chat, and diff."""

from __future__ import annotations

import ast
import re

import pytest

from conftest import DATA
from evolve.parse import parse_candidate
from evolve.prompt import build_prompt, header, render, spec_preface
from evolve.spec import load_spec

WORST = 'def priority(item: float, bins: np.ndarray) -> np.ndarray:\n    """Seed docstring."""\n    return -(bins - item)\n'
MIDDLE = "def priority(item, bins):\n    # recursion on purpose\n    if item > 10:\n        return priority(item / 2, bins)\n    return bins\n"
BEST = 'def priority(item: float,\n             bins: np.ndarray) -> np.ndarray:\n    """Old words."""\n    return -abs(bins - item)\n'


def _defs(text: str) -> list[str]:
    return [n.name for n in ast.parse(text + "    pass\n").body if isinstance(n, ast.FunctionDef)]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_completion_versions_are_numbered_worst_first_and_the_header_is_v_k(k: int) -> None:
    functions = [WORST, MIDDLE, BEST][:k]
    prompt = build_prompt(3, tuple(range(k)), functions, [float(i) for i in range(k)], "priority", "import numpy as np\n")
    text = render(prompt, "completion").text
    assert text.startswith("import numpy as np\n")
    assert _defs(text) == [f"priority_v{i}" for i in range(k + 1)]
    docs = re.findall(r'"""(.*?)"""', text, re.S)
    assert docs[0] == "Seed docstring."  # v0 keeps its own
    assert docs[1:] == [f"Improved version of `priority_v{i - 1}`." for i in range(1, k + 1)]
    assert text.endswith(f'    """Improved version of `priority_v{k - 1}`."""\n')  # the model writes v{k}'s body
    assert "def priority(" not in text and "Old words" not in text


def test_recursive_calls_follow_the_rename_and_the_header_keeps_a_multiline_signature() -> None:
    prompt = build_prompt(0, (1, 2, 3), (WORST, MIDDLE, BEST), (0.0, 1.0, 2.0), "priority", "")
    text = render(prompt, "completion").text
    assert "return priority_v1(item / 2, bins)" in text
    assert "# recursion on purpose" in text  # comments are kept as written
    assert header(BEST, "priority", 3) == (
        'def priority_v3(item: float,\n             bins: np.ndarray) -> np.ndarray:\n'
        '    """Improved version of `priority_v2`."""\n'
    )


def test_spec_preface_is_the_code_above_the_function_without_gp_primitives() -> None:
    spec = load_spec("bin_packing_or")
    preface = spec_preface(spec)
    assert "def evaluate(" in preface and "@evolve.run" in preface and "import numpy as np" in preface
    assert "GP_PRIMITIVES" not in preface and "@evolve.evolve" not in preface and "def priority" not in preface
    ast.parse(preface)


def test_funsearch_spec_two_space_indent_round_trip() -> None:
    spec = load_spec(DATA / "funsearch_bin_packing.py", DATA / "funsearch_inputs.json")
    prompt = build_prompt(0, (1,), (spec.function,), (-1.0,), spec.function_name, spec_preface(spec))
    rendered = render(prompt, "completion")
    assert rendered.prefix.startswith("def priority_v1(item: float, bins: np.ndarray) -> np.ndarray:\n  \"\"\"Improved")
    assert rendered.text.endswith(rendered.prefix)
    # A base model continues the text: the candidate is the header plus its body.
    parsed = parse_candidate(rendered.prefix + "  return -(bins - item) / item\n\n\ndef priority_v2(", prompt)
    assert parsed.function == (
        'def priority(item: float, bins: np.ndarray) -> np.ndarray:\n  """Improved version of `priority_v0`."""\n'
        "  return -(bins - item) / item\n"
    )


def test_chat_has_the_same_content_and_asks_for_v_k() -> None:
    prompt = build_prompt(0, (1, 2), (WORST, BEST), (0.0, 1.0), "priority", "import numpy as np\n")
    system, user = render(prompt, "chat").messages
    assert system["role"] == "system" and user["role"] == "user"
    code = re.search(r"```python\n(.*?)```", user["content"], re.S)
    assert code is not None
    assert code.group(1).startswith("import numpy as np") and _defs(code.group(1)) == ["priority_v0", "priority_v1"]
    assert "Write `priority_v2`, an improved version of `priority_v1`" in user["content"]


def test_diff_shows_the_best_program_under_its_own_name() -> None:
    prompt = build_prompt(0, (1, 2), (WORST, BEST), (0.0, 1.0), "priority", "import numpy as np\n")
    _, user = render(prompt, "diff").messages
    assert BEST in user["content"] and WORST not in user["content"]
    assert "<<<<<<< SEARCH" in user["content"] and ">>>>>>> REPLACE" in user["content"]
    answer = "<<<<<<< SEARCH\n    return -abs(bins - item)\n=======\n    return -abs(bins - item) ** 0.5\n>>>>>>> REPLACE"
    parsed = parse_candidate(answer, prompt)
    assert parsed.function == BEST.replace("return -abs(bins - item)", "return -abs(bins - item) ** 0.5")


def test_unknown_format_is_refused() -> None:
    prompt = build_prompt(0, (1,), (WORST,), (0.0,), "priority", "")
    with pytest.raises(ValueError, match="unknown prompt format"):
        render(prompt, "xml")  # type: ignore[arg-type]
