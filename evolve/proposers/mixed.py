"""Several proposers in one run, with weights: `--proposer vllm:0.9,gp:0.1`.

Each prompt goes to one part, drawn by weight from the mix's own seeded
RNG (so the islands' sampling stream is untouched and a mix of deterministic
proposers stays reproducible). Every candidate records the part, model and
adapter that wrote it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evolve.errors import ConfigError
from evolve.proposers.base import AdapterUser, Prompt, Proposal, Proposer


@dataclass(frozen=True)
class ProposerMix:
    """Who writes a run's candidates: one proposer (`gp`), or several with weights (`vllm:0.9,gp:0.1`).

    The run's `proposer` setting, parsed once; `str()` gives it back as written in a config file.
    """

    parts: tuple[tuple[str, float], ...]
    mixed: bool  # weights were given: a MixedProposer, even of one part

    @classmethod
    def parse(cls, text: str) -> ProposerMix:
        """Read `name[:weight],name[:weight],...` (a missing weight is 1); raise ConfigError if malformed."""
        parts = []
        for item in text.split(","):
            name, _, weight = item.strip().partition(":")
            name = name.strip()
            if not name:
                raise ConfigError(f"proposer: empty proposer name in {text!r}")
            try:
                value = float(weight) if weight else 1.0
            except ValueError:
                raise ConfigError(f"proposer: the weight of {name!r} in {text!r} is not a number") from None
            if not value > 0:
                raise ConfigError(f"proposer: the weight of {name!r} must be > 0, got {weight}")
            parts.append((name, value))
        names = [n for n, _ in parts]
        if len(set(names)) != len(names):
            raise ConfigError(f"proposer: a proposer appears twice in {text!r}")
        return cls(tuple(parts), mixed=len(parts) > 1 or ":" in text)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.parts)

    def __str__(self) -> str:
        if not self.mixed:
            return self.parts[0][0]
        return ",".join(f"{name}:{weight:g}" for name, weight in self.parts)


class MixedProposer:
    """Route each prompt to one of several proposers, drawn by weight."""

    name = "mixed"

    def __init__(self, parts: Sequence[tuple[Proposer, float]], seed: int) -> None:
        assert parts, "a mix needs at least one proposer"
        self.parts = [p for p, _ in parts]
        weights = np.array([w for _, w in parts], dtype=float)
        self.weights = weights / weights.sum()
        self.rng = np.random.default_rng([seed, 0x6D6978])  # its own stream: "mix"
        self.model = ",".join(p.model for p in self.parts if p.model)

    @property
    def generated_tokens(self) -> int:
        return sum(p.generated_tokens for p in self.parts)

    def propose(self, prompts: Sequence[Prompt], n: int) -> list[Proposal]:
        """Draw a part per prompt, ask each part for its prompts in one call, keep the prompts' order."""
        choice = self.rng.choice(len(self.parts), size=len(prompts), p=self.weights)
        out: list[Proposal | None] = [None] * len(prompts)
        for k, part in enumerate(self.parts):
            mine = [i for i, c in enumerate(choice) if c == k]
            if not mine:
                continue
            answers = part.propose([prompts[i] for i in mine], n)
            for i, answer in zip(mine, answers, strict=True):
                out[i] = answer
        assert all(o is not None for o in out)
        return [o for o in out if o is not None]

    def adapter_users(self) -> Sequence[AdapterUser]:
        return [user for part in self.parts for user in part.adapter_users()]

    def interrupt(self) -> None:
        for part in self.parts:
            part.interrupt()

    def notices(self) -> list[str]:
        return [note for part in self.parts for note in part.notices()]

    def close(self) -> None:
        for part in self.parts:
            part.close()
