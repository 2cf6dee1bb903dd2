"""The adapter registry's evidence: what each LoRA round did, next to the base model over the same window.

    rows = evidence(archive)         # what `evolve status --json` shows under "adapters"
    table = shown_table(archive)     # what `evolve tui` shows in its adapters view

The rounds themselves are `adapters` rows, read and written through the
archive (`Archive.add_adapter`, `adapters`, `latest_adapter`); this module
decides what the rows say.

Evidence, per round, over its window (from the sample at which the
proposer switched to it until the next round's switch, or now): the valid
share, mean and best score of the programs the adapter wrote, and the share
that beat the best parent shown in their prompt, next to the same figures of
the base model's programs (the control arm: the same proposer without the
adapter) over the same window. Round 0 is the base model before any round.
Samples rejected before evaluation (unparseable) are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evolve.archive import AdapterRow, Archive, ArmFigures, RawTable

ARM_FIELDS = ArmFigures.FIELDS
# The proposers whose programs count when no program was written with a recorded adapter yet.
ADAPTER_PROPOSERS = ("llamacpp", "transformers", "vllm", "openai")
SHOWN = ("round", "path", "method", "examples", "steps", "base_loss", "adapter_loss", "duration_s", "started_sample",
         "finished_sample")
SHOWN_LIMIT = 100  # rounds in the TUI's view, newest first


@dataclass(frozen=True)
class AdapterEvidence:
    """One round's figures (round 0: the base model before any round) over its window of samples."""

    round: int
    adapter: str  # the adapter's path; "" for round 0
    from_sample: int
    to_sample: int | None  # None: up to now (the latest round)
    with_adapter: ArmFigures | None  # the adapter's programs; None for round 0
    base: ArmFigures  # the base model's programs over the same window (the control arm)

    def to_json(self) -> dict[str, Any]:
        """Return the flat row of `evolve status --json`: `adapter_*` and `base_*` figures."""
        out: dict[str, Any] = {"round": self.round, "adapter": self.adapter, "from_sample": self.from_sample,
                               "to_sample": self.to_sample}
        if self.with_adapter is not None:
            out.update(self.with_adapter.to_json("adapter"))
        out.update(self.base.to_json("base"))
        return out


def evidence(archive: Archive) -> list[AdapterEvidence]:
    """Return, per round (0: the base model before any), the adapter's figures and the base model's over its window."""
    rounds = [r for r in archive.adapters() if r.path and r.finished_sample is not None]
    if not rounds:
        return []
    proposers = archive.adapter_proposers() or list(ADAPTER_PROPOSERS)
    starts = [_start(r) for r in rounds]
    ends: list[int | None] = [*starts[1:], None]
    out = [AdapterEvidence(0, "", 0, starts[0], None, archive.arm_figures(proposers, "", 0, starts[0]))]
    for row, start, end in zip(rounds, starts, ends, strict=True):
        path = row.path or ""
        out.append(AdapterEvidence(row.round, path, start, end, archive.arm_figures(proposers, path, start, end),
                                   archive.arm_figures(proposers, "", start, end)))
    return out


def shown_table(archive: Archive, limit: int = SHOWN_LIMIT) -> RawTable:
    """Return each round, newest first, with its evidence: the columns of `evolve tui`'s adapters view."""
    by_round = {e.round: e for e in evidence(archive)}
    columns = (*SHOWN, *(f"{arm}_{k}" for arm in ("adapter", "base") for k in ARM_FIELDS))
    rows = []
    for row in reversed(archive.adapters()[-limit:]):
        figures = by_round.get(row.round)
        rows.append((*(getattr(row, k) for k in SHOWN), *_arm_cells(figures.with_adapter if figures else None),
                     *_arm_cells(figures.base if figures else None)))
    return RawTable(columns, tuple(rows))


def _start(row: AdapterRow) -> int:
    assert row.finished_sample is not None
    return row.finished_sample


def _arm_cells(arm: ArmFigures | None) -> tuple[Any, ...]:
    return tuple(getattr(arm, k) if arm is not None else None for k in ARM_FIELDS)
