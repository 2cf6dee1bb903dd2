"""The proposer seam: prompts in, candidate function sources out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Prompt:
    """What an island offers a proposer: k parent programs, worst first.

    `functions` are the sources of the evolved function of each parent (its
    name as in the spec), in ascending score order; `preface` is the spec's
    code above the evolved function; `text` is the same content rendered in
    FunSearch's completion format (see `evolve.prompt`).
    """

    island: int
    parent_ids: tuple[int, ...]
    functions: tuple[str, ...]
    scores: tuple[float, ...]
    function_name: str
    text: str = ""
    preface: str = ""

    def __post_init__(self) -> None:
        assert len(self.parent_ids) == len(self.functions) == len(self.scores)
        assert list(self.scores) == sorted(self.scores), "parents go worst first"


@dataclass(frozen=True)
class Origin:
    """Who wrote a candidate; recorded with every program."""

    proposer: str
    model: str = ""
    adapter: str = ""


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


@runtime_checkable
class Attributing(Protocol):
    """A proposer that says, per prompt, which of its parts answered (e.g. a mix)."""

    def propose_attributed(self, prompts: Sequence[Prompt], n: int) -> list[tuple[Origin, list[str]]]:
        """Return, for each prompt, who answered and the `n` candidates."""
        ...


@runtime_checkable
class CountsTokens(Protocol):
    """A proposer backed by a language model, counting the tokens it generated."""

    generated_tokens: int  # over the proposer's life


class ProposerError(Exception):
    """A proposer that cannot work: missing extra, unreachable server, refused request."""


def propose_with_origins(proposer: Proposer, prompts: Sequence[Prompt], n: int) -> list[tuple[Origin, list[str]]]:
    """Ask any proposer for candidates and say who wrote each prompt's answers."""
    if isinstance(proposer, Attributing):
        return proposer.propose_attributed(prompts, n)
    origin = Origin(proposer.name, proposer.model, str(getattr(proposer, "adapter", "") or ""))
    return [(origin, texts) for texts in proposer.propose(prompts, n)]


def generated_tokens(proposer: Proposer) -> int:
    """Return the tokens a proposer has generated so far (0 for one without a model)."""
    return proposer.generated_tokens if isinstance(proposer, CountsTokens) else 0


def close_proposer(proposer: Any) -> None:
    """Release what a proposer holds (HTTP connections, ...), the parts of a mix included."""
    for part in getattr(proposer, "parts", ()):
        close_proposer(part)
    close = getattr(proposer, "close", None)
    if callable(close):
        close()
