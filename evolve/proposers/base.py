"""The proposer seam: prompts in, candidate function sources out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Prompt:
    """What an island offers a proposer: k parent programs, worst first.

    `functions` are the sources of the evolved function of each parent (its
    name as in the spec), in ascending score order; `text` is the same content
    rendered for a language model.
    """

    island: int
    parent_ids: tuple[int, ...]
    functions: tuple[str, ...]
    scores: tuple[float, ...]
    function_name: str
    text: str = ""

    def __post_init__(self) -> None:
        assert len(self.parent_ids) == len(self.functions) == len(self.scores)
        assert list(self.scores) == sorted(self.scores), "parents go worst first"


class Proposer(Protocol):
    """Anything that writes new versions of the evolved function."""

    name: str  # e.g. "gp"; recorded with every program it makes
    model: str  # model or primitive-set identifier ("" when none)

    def propose(self, prompts: Sequence[Prompt], n: int) -> list[list[str]]:
        """Return, for each prompt, `n` candidate sources of the evolved function.

        A candidate is Python source text; it may be malformed (the loop parses
        and rejects). Deterministic given the proposer's seed and the prompts.
        """
        ...
