"""The islands table: one row per island; selecting one filters the other views."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message
from textual.reactive import var
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey

from evolve.status import IslandRow
from tui import format as fmt

ALL = "all"
COLUMNS = ("island", "best score", "best program", "clusters", "programs", "last improvement", "temperature")


@dataclass(frozen=True)
class IslandRows:
    islands: tuple[IslandRow, ...]  # `evolve status` island rows
    last_improvement: dict[int, int]  # island -> sample of its last rise or reset


class IslandsTable(DataTable[str]):
    """Best score, clusters, programs, last improvement and temperature of each island."""

    class Selected(Message):
        """The user picked an island (None: all of them)."""

        def __init__(self, island: int | None) -> None:
            super().__init__()
            self.island = island

    # A `var`: the watcher changes the cells that differ and the table repaints those; a reactive would
    # repaint the whole table at every snapshot, changed or not.
    summary: var[IslandRows | None] = var(None, always_update=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: tuple[tuple[str, ...], ...] = ()
        self._columns: list[ColumnKey] = []

    def on_mount(self) -> None:
        self._columns = self.add_columns(*COLUMNS)

    def watch_summary(self, rows: IslandRows | None) -> None:
        if rows is None:
            return
        cells = tuple([(ALL, "", "", "", "", "", "")] + [_cells(row, rows.last_improvement) for row in rows.islands])
        if cells == self._shown:
            return
        if [row[0] for row in cells] == [row[0] for row in self._shown]:  # same islands: change cells in place
            for old, new in zip(self._shown, cells):
                for column, (before, after) in enumerate(zip(old, new)):
                    if before != after:
                        self.update_cell(new[0], self._columns[column], after, update_width=True)
        else:
            cursor = self.cursor_row
            self.clear()
            for row in cells:
                self.add_row(*row, key=row[0])
            self.move_cursor(row=min(cursor, len(cells) - 1), animate=False)
        self._shown = cells

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = event.row_key.value
        self.post_message(self.Selected(None if key in (None, ALL) else int(key)))


def _cells(row: IslandRow, last: dict[int, int]) -> tuple[str, ...]:
    improved = last.get(row.island)
    return (
        str(row.island), fmt.score(row.best_score),
        "-" if row.best_program_id is None else str(row.best_program_id),
        fmt.count(row.num_clusters), fmt.count(row.num_programs),
        "-" if improved is None else f"sample {fmt.count(improved)}", fmt.temperature(row.temperature),
    )
