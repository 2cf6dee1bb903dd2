"""Several proposers in one run, with weights: `--proposer vllm:0.9,gp:0.1`.

Each prompt goes to one part, drawn by weight from the mix's own seeded
RNG (so the islands' sampling stream is untouched and a mix of deterministic
proposers stays reproducible). Every candidate records the part, model and
adapter that wrote it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from evolve.proposers.base import Origin, Prompt, Proposer, generated_tokens, propose_with_origins


def parse_mix(text: str) -> list[tuple[str, float]]:
    """Read `name[:weight],name[:weight],...` (a missing weight is 1); raise ValueError if malformed."""
    parts = []
    for item in text.split(","):
        name, _, weight = item.strip().partition(":")
        if not name:
            raise ValueError(f"empty proposer name in {text!r}")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"the weight of {name!r} in {text!r} is not a number") from None
        if not value > 0:
            raise ValueError(f"the weight of {name!r} must be > 0, got {weight}")
        parts.append((name, value))
    names = [n for n, _ in parts]
    if len(set(names)) != len(names):
        raise ValueError(f"a proposer appears twice in {text!r}")
    return parts


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
        return sum(generated_tokens(p) for p in self.parts)

    def propose(self, prompts: Sequence[Prompt], n: int) -> list[list[str]]:
        return [texts for _, texts in self.propose_attributed(prompts, n)]

    def propose_attributed(self, prompts: Sequence[Prompt], n: int) -> list[tuple[Origin, list[str]]]:
        """Draw a part per prompt, ask each part for its prompts in one call, keep the prompts' order."""
        choice = self.rng.choice(len(self.parts), size=len(prompts), p=self.weights)
        out: list[tuple[Origin, list[str]] | None] = [None] * len(prompts)
        for k, part in enumerate(self.parts):
            mine = [i for i, c in enumerate(choice) if c == k]
            if not mine:
                continue
            answers = propose_with_origins(part, [prompts[i] for i in mine], n)
            for i, answer in zip(mine, answers, strict=True):
                out[i] = answer
        assert all(o is not None for o in out)
        return [o for o in out if o is not None]
