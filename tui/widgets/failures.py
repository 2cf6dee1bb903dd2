"""The failures view: counts by kind over samples, and the latest messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.reactive import var
from textual.widgets import DataTable
from textual_plotext import Plot

from evolve.archive import FailureRow
from tui import format as fmt
from tui.widgets.plot import BackgroundPlot

KIND_COLORS = {"error": "red+", "timeout": "orange+", "memory": "blue+", "invalid-output": "cyan+", "forbidden": "magenta+"}
COLUMNS = ("program", "sample", "island", "kind", "message")


@dataclass(frozen=True)
class FailureData:
    bins: list[int]  # first sample of each bin
    series: dict[str, list[int]]  # kind -> failures per bin
    island: int | None


class FailuresPlot(BackgroundPlot[FailureData]):
    """Failures per kind in each bin of samples, stacked."""

    data: var[FailureData | None] = var(None)  # see BackgroundPlot.data

    def draw(self, plt: Plot, data: FailureData | None) -> None:
        plt.xlabel("samples")
        where = "all islands" if data is None or data.island is None else f"island {data.island}"
        if data is None or not data.series:
            plt.title(f"failures over samples ({where}): none")
            return
        kinds = sorted(data.series)
        plt.stacked_bar(
            data.bins, [data.series[k] for k in kinds], labels=[f"{k} ({fmt.count(sum(data.series[k]))})" for k in kinds],
            color=[KIND_COLORS.get(k, "gray") for k in kinds], width=0.8,
        )
        width = data.bins[1] - data.bins[0] if len(data.bins) > 1 else 1
        plt.title(f"failures per {fmt.count(width)} samples, by kind ({where})")


class FailuresTable(DataTable[str]):
    """The newest failed programs with their error messages."""

    failures: var[tuple[FailureRow, ...]] = var((), always_update=True)  # see IslandsTable.summary

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self._shown: tuple[int, ...] = ()

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def watch_failures(self, rows: tuple[FailureRow, ...]) -> None:
        shown = tuple(r.id for r in rows)
        if shown == self._shown:
            return
        self.clear()
        for r in rows:
            message = r.error.strip().splitlines()
            self.add_row(str(r.id), fmt.count(r.sample), fmt.island(r.island), r.failure,
                         message[-1][:200] if message else "", key=str(r.id))
        self._shown = shown
