"""The adapters view, shown only for archives that have an `adapters` table.

The fine-tuning part writes one row per LoRA round; the reader adds each
round's evidence (`finetune.registry.shown_table`: its samples' valid share,
mean and best score and beat-parent rate, next to the base model's over
the same window). Until the table exists this view stays hidden; it shows
the columns it is given, newest round first, so a new column appears
without a change here.
"""

from __future__ import annotations

from typing import Any

from textual.reactive import var
from textual.widgets import DataTable

from evolve.archive import ADAPTERS_TABLE, RawTable
from tui.reader import NO_ADAPTERS

TABLE = ADAPTERS_TABLE  # the view is shown when the archive has this table


class AdaptersTable(DataTable[str]):
    """Each adapter round, newest first, every column of the `adapters` table."""

    entries: var[RawTable] = var(NO_ADAPTERS, always_update=True)  # see IslandsTable.summary

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown = NO_ADAPTERS

    def watch_entries(self, table: RawTable) -> None:
        if table == self._shown:
            return
        self.clear(columns=True)
        if table.rows:
            self.add_columns(*table.columns)
            for row in table.rows:
                self.add_row(*(_cell(v) for v in row))
        self._shown = table


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)[:80]
