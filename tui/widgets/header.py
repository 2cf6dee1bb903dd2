"""The run header: the numbers of `evolve status`, two lines at the top of the screen."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from evolve.archive import OriginCount
from tui import format as fmt
from tui.reader import Snapshot

STATE_STYLES = {"running": "bold green", "finished": "bold cyan", "stopped": "bold yellow", "interrupted": "bold red"}


class RunHeader(Widget):
    """Problem, proposers, samples, valid share, rate, best score, elapsed time and run state."""

    DEFAULT_CSS = """
    RunHeader { height: 3; padding: 0 1; background: $panel; }
    """

    snapshot: reactive[Snapshot | None] = reactive(None, always_update=True)
    error: reactive[str] = reactive("")

    def render(self) -> Text:
        if self.error:
            return Text.assemble(("cannot show this file: ", "bold red"), self.error)
        snap = self.snapshot
        if snap is None:
            return Text("reading the archive…", style="dim")
        return header_text(snap)


def header_text(snap: Snapshot) -> Text:
    """Return the header's three lines for a snapshot (its numbers are `snap.status`, formatted)."""
    s = snap.status
    where = "all islands" if snap.island is None else f"island {snap.island} (a: all islands)"
    line1 = Text.assemble(
        (s.problem, "bold"), "  ", (s.state, STATE_STYLES.get(s.state, "bold")),
        "  proposer ", (s.proposer, "cyan"), _origins(s.by_proposer), "  ", (Path(s.db).name, "dim"),
    )
    line2 = Text.assemble(
        "samples ", (fmt.count(s.samples), "bold"), f"/{fmt.count(s.budget)}",
        "  valid ", (fmt.share(s.valid_share), "bold"), f" of {fmt.count(s.evaluated)}",
        "  evals/s ", (fmt.rate(s.evals_per_s), "bold"),
        "  elapsed ", (fmt.duration(s.elapsed_s), "bold"),
    )
    best = "-" if s.best_id is None else f"program {s.best_id}"
    line3 = Text.assemble(
        "best score ", (fmt.score(s.score), "bold green"), f" ({best})",
        "  failures ", (_failures(s.failures), "yellow"), "  showing ", (where, "magenta"),
    )
    return Text("\n").join([line1, line2, line3])


def _origins(by_proposer: Sequence[OriginCount]) -> str:
    """Return who wrote the programs, when that says more than the proposer's name: models, adapters, a mix."""
    rows = [r for r in by_proposer if r.proposer != "seed"]
    named = [r for r in rows if (r.model and r.proposer != "gp") or r.adapter]  # GP's "model" is its primitive set
    if len(rows) < 2 and not named:
        return ""
    parts = [
        r.proposer + (f" {_short(r.model)}" if r.model and r.proposer != "gp" else "")
        + (f" @{_short(r.adapter)}" if r.adapter else "") + f" {fmt.count(r.programs)}"
        for r in rows[:4]
    ]
    return " (" + ", ".join(parts) + (", …" if len(rows) > 4 else "") + ")"


def _short(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _failures(failures: Mapping[str, int]) -> str:
    return ", ".join(f"{kind} {fmt.count(n)}" for kind, n in sorted(failures.items())) or "none"
