"""Parsing proposer output and the dedupe hash."""

from __future__ import annotations

import pytest

from evolve.parse import extract_function, normalize, program_hash


@pytest.mark.parametrize(
    ("text", "expected_body"),
    [
        ("def priority(item, bins):\n    return bins - item\n", "return bins - item"),
        ("Here is a better one:\n```python\ndef priority(item, bins):\n    return -bins\n```\nIt is better.", "return -bins"),
        ("def helper(x):\n    return x\n\ndef priority(item, bins):\n    return helper(bins)\n\ndef other(a):\n    return a\n",
         "return helper(bins)"),
        ("def priority_v2(item, bins):\n    return bins * 2\n", "return bins * 2"),  # renamed to the requested name
        ("def priority(item, bins):\n    s = bins - item\n    return s\n    x = (1 +\n", "return s"),  # cut off mid-line
    ],
    ids=["plain", "fenced-with-prose", "several-defs", "other-name", "truncated"],
)
def test_extract_function(text: str, expected_body: str) -> None:
    parsed = extract_function(text, "priority")
    assert parsed.function is not None, parsed.reason
    assert parsed.function.startswith("def priority(")
    assert expected_body in parsed.function
    compile(parsed.function, "<test>", "exec")


@pytest.mark.parametrize(("text", "reason"), [("this is not code at all (", "syntax"), ("x = 1\ny = 2\n", "no-function")])
def test_rejections_have_reasons(text: str, reason: str) -> None:
    parsed = extract_function(text, "priority")
    assert parsed.function is None and parsed.reason == reason


def test_hash_ignores_comments_docstrings_annotations_and_name() -> None:
    a = 'def priority(item: float, bins: np.ndarray) -> np.ndarray:\n    """Doc."""\n    # why\n    return -(bins - item)\n'
    b = "def priority_v3(item, bins):\n    return -(bins - item)  # same\n"
    c = "def priority(item, bins):\n    return -(bins + item)\n"
    assert program_hash(a) == program_hash(b) != program_hash(c)
    assert normalize(b) == "def f(item, bins):\n    return -(bins - item)"
