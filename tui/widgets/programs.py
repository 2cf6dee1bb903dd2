"""The program browser: the top programs, and the highlighted one in full."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import var
from textual.widgets import DataTable, Static

from evolve.archive import ProgramRow
from tui import format as fmt
from tui.reader import ProgramDetail

COLUMNS = ("rank", "program", "score", "island", "sample", "length")
THEME = "ansi_dark"


class ProgramList(DataTable[str]):
    """The best programs, best first; the cursor row is the one shown in full."""

    class Highlighted(Message):
        def __init__(self, program_id: int) -> None:
            super().__init__()
            self.program_id = program_id

    programs: var[tuple[ProgramRow, ...]] = var((), always_update=True)  # see IslandsTable.summary

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: tuple[tuple[int, float], ...] = ()

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    @property
    def selected_id(self) -> int | None:
        """Return the id of the program under the cursor."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return None if key is None else int(key)

    def watch_programs(self, programs: tuple[ProgramRow, ...]) -> None:
        shown = tuple((r.id, r.score) for r in programs)
        if shown == self._shown:
            return
        # On the best program, the cursor follows the best; elsewhere it stays with the program the user chose.
        keep = None if self.cursor_row == 0 else self.selected_id
        self.clear()
        for rank, r in enumerate(programs, start=1):
            self.add_row(str(rank), str(r.id), fmt.score(r.score), fmt.island(r.island), fmt.count(r.sample),
                         str(r.length), key=str(r.id))
        self._shown = shown
        if keep is not None and keep in {r.id for r in programs}:
            self.move_cursor(row=self.get_row_index(str(keep)), animate=False)
        elif programs:
            self.move_cursor(row=0, animate=False)
            self.post_message(self.Highlighted(programs[0].id))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        # A rebuild of the rows leaves events about rows that have gone: only the cursor's row counts.
        if event.row_key.value is not None and event.row_key.value == str(self.selected_id):
            self.post_message(self.Highlighted(int(event.row_key.value)))


class ProgramView(VerticalScroll):
    """One program: source, per-input scores and metrics, diffs against its parents, lineage."""

    DEFAULT_CSS = """
    ProgramView { padding: 0 1; }
    ProgramView > Static { margin-bottom: 1; }
    """

    detail: var[ProgramDetail | None] = var(None, always_update=True)  # the watcher updates the parts, which repaint

    def compose(self) -> ComposeResult:
        yield Static("select a program", id="program-title")
        yield Static(id="program-source")
        yield Static(id="program-scores")
        yield Static(id="program-diffs")
        yield Static(id="program-lineage")

    def watch_detail(self, detail: ProgramDetail | None) -> None:
        if detail is None or not self.is_mounted:
            return
        row = detail.row
        self.query_one("#program-title", Static).update(_title(row))
        self.query_one("#program-source", Static).update(Syntax(row.function, "python", theme=THEME, word_wrap=True))
        self.query_one("#program-scores", Static).update(_scores(row, detail.metrics))
        self.query_one("#program-diffs", Static).update(_diffs(detail))
        self.query_one("#program-lineage", Static).update(_lineage(detail.lineage))
        self.scroll_home(animate=False)


def _title(row: ProgramRow) -> Text:
    score = fmt.score(row.score) if row.score is not None else f"failed: {row.failure}"
    model = row.model if row.proposer != "gp" else ""  # GP's "model" is its primitive set: long, and the same throughout
    origin = row.proposer + (f"/{model[:40]}" if model else "") + (f"@{row.adapter[:40]}" if row.adapter else "")
    return Text.assemble(
        (f"program {row.id}", "bold"), "  score ", (score, "bold green"),
        f"  island {fmt.island(row.island)}  sample {fmt.count(row.sample)}  {origin}",
        f"  {1000 * (row.wall_time or 0):.0f} ms  ", ("e: export", "dim"),
    )


def _scores(row: ProgramRow, metrics: dict[str, Any]) -> Table:
    per_input = {k: v for k, v in metrics.items() if isinstance(v, dict)}
    table = Table("input", "score", *per_input, title="per-input scores", title_justify="left", expand=False)
    for name, value in row.scores.items():
        table.add_row(name, fmt.score(value), *(_number(m.get(name)) for m in per_input.values()))
    scalars = [f"{key} {_number(value)}" for key, value in metrics.items() if not isinstance(value, dict)]
    if scalars:
        table.caption = ", ".join(scalars)
    return table


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else ("-" if value is None else str(value))


def _diffs(detail: ProgramDetail) -> RenderableType:
    if not detail.parents:
        return Text("no parents: the seed program", style="dim")
    parts: list[RenderableType] = []
    for parent in detail.parents:
        parts.append(Text(f"diff against parent {parent.id} (score {fmt.score(parent.score)})", style="bold"))
        diff = detail.diffs.get(parent.id, "")
        parts.append(Syntax(diff, "diff", theme=THEME, word_wrap=True) if diff else Text("identical source", style="dim"))
    return Group(*parts)


def _lineage(chain: list[ProgramRow]) -> Table:
    table = Table("ancestor", "score", "island", "sample", title="lineage (best parent each step)", title_justify="left")
    for row in chain:
        table.add_row(str(row.id), fmt.score(row.score), fmt.island(row.island), fmt.count(row.sample))
    return table
