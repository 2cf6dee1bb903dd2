"""The main screen: header, then tabs for the overview, programs, failures and adapters."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane
from textual.worker import get_current_worker

from evolve.archive import ArchiveError
from tui.reader import ArchiveReader, ProgramDetail, Snapshot
from tui.screens.export import ExportScreen
from tui.widgets import adapters
from tui.widgets.failures import FailureData, FailuresPlot, FailuresTable
from tui.widgets.header import RunHeader
from tui.widgets.islands_table import IslandRows, IslandsTable
from tui.widgets.programs import ProgramList, ProgramView
from tui.widgets.score_plot import ScoreData, ScorePlot

if TYPE_CHECKING:
    from tui.app import EvoloopApp

# Tabs that only some archives have data for: tab id -> the table that must exist.
OPTIONAL_TABS = {"adapters": adapters.TABLE}


class MainScreen(Screen[None]):
    """Everything about one run, refreshed from the app's snapshots."""

    DEFAULT_CSS = """
    #score-plot { height: 1fr; min-height: 10; }
    #islands { height: auto; max-height: 14; }
    #program-list { width: 52; height: 1fr; }
    #program-view { width: 1fr; height: 1fr; }
    #failures-plot { height: 1fr; min-height: 10; }
    #failures-table { height: auto; max-height: 14; }
    #tabs { height: 1fr; }
    #tabs > ContentSwitcher { height: 1fr; }
    TabPane { padding: 0; height: 1fr; }
    """
    BINDINGS = [
        Binding("1", "tab('overview')", "Overview"),
        Binding("2", "tab('programs')", "Programs"),
        Binding("3", "tab('failures')", "Failures"),
        Binding("4", "tab('adapters')", "Adapters", show=False),
        Binding("e", "export", "Export program"),
    ]

    @property
    def evoloop(self) -> EvoloopApp:
        return cast("EvoloopApp", self.app)

    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")
        with TabbedContent(initial="overview", id="tabs"):
            with TabPane("Overview", id="overview"):
                yield ScorePlot(id="score-plot")
                yield IslandsTable(id="islands")
            with TabPane("Programs", id="programs"):
                with Horizontal():
                    yield ProgramList(id="program-list")
                    yield ProgramView(id="program-view")
            with TabPane("Failures", id="failures"):
                yield FailuresPlot(id="failures-plot")
                yield FailuresTable(id="failures-table")
            with TabPane("Adapters", id="adapters"):
                yield adapters.AdaptersTable(id="adapters-table")
        yield Footer()

    def on_mount(self) -> None:
        tabs = self.query_one(TabbedContent)
        for tab in OPTIONAL_TABS:
            tabs.hide_tab(tab)
        self._optional_shown: set[str] = set()
        self.watch(self.evoloop, "snapshot", self.show, init=True)
        self.watch(self.evoloop, "error", self._show_error, init=True)
        self.query_one(IslandsTable).focus()

    # -- showing snapshots -------------------------------------------------------------

    def show(self, snap: Snapshot | None) -> None:
        """Hand each widget its part of a snapshot."""
        if snap is None:
            return
        self.query_one(RunHeader).snapshot = snap
        self.query_one(ScorePlot).data = ScoreData(snap.curves, snap.resets, snap.island)
        self.query_one(IslandsTable).summary = IslandRows(snap.status.islands, snap.last_improvement)
        self.query_one(ProgramList).programs = snap.top
        self.query_one(FailuresPlot).data = FailureData(snap.failure_bins, snap.failure_series, snap.island)
        self.query_one(FailuresTable).failures = snap.latest_failures
        self.query_one(adapters.AdaptersTable).entries = snap.adapters
        shown = {tab for tab, table in OPTIONAL_TABS.items() if table in snap.tables}
        if shown != self._optional_shown:
            tabs = self.query_one(TabbedContent)
            for tab in OPTIONAL_TABS:
                (tabs.show_tab if tab in shown else tabs.hide_tab)(tab)
            self._optional_shown = shown

    def _show_error(self, error: str) -> None:
        self.query_one(RunHeader).error = error

    # -- events and actions ----------------------------------------------------------------

    def on_islands_table_selected(self, message: IslandsTable.Selected) -> None:
        self.evoloop.island = message.island

    def on_program_list_highlighted(self, message: ProgramList.Highlighted) -> None:
        reader, shown = self.evoloop.reader, self.query_one(ProgramView).detail
        if reader is not None and (shown is None or shown.row.id != message.program_id):
            self.load_detail(reader, message.program_id)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        focus = {"overview": IslandsTable, "programs": ProgramList, "failures": FailuresTable}.get(event.pane.id or "")
        if focus is not None:
            self.query_one(focus).focus()

    def action_tab(self, tab: str) -> None:
        tabs = self.query_one(TabbedContent)
        if tab in OPTIONAL_TABS and self.evoloop.snapshot is not None and OPTIONAL_TABS[tab] not in self.evoloop.snapshot.tables:
            return
        tabs.active = tab

    def action_export(self) -> None:
        program_id = self.query_one(ProgramList).selected_id
        reader = self.evoloop.reader
        if program_id is None or reader is None:
            self.notify("no program to export yet", severity="warning")
            return

        def chosen(path: Path | None) -> None:
            if path is not None and reader is not None:
                self.export(reader, program_id, path)

        self.app.push_screen(ExportScreen(program_id, Path.cwd() / f"program_{program_id}.py"), chosen)

    # -- workers ------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="detail")
    def load_detail(self, reader: ArchiveReader, program_id: int) -> None:
        try:
            detail = reader.detail(program_id)
        except (ArchiveError, sqlite3.Error) as exc:
            self.app.call_from_thread(self.notify, f"cannot read program {program_id}: {exc}", severity="error")
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_detail, detail)

    def _show_detail(self, detail: ProgramDetail) -> None:
        if detail.row.id == self.query_one(ProgramList).selected_id:  # the cursor may have moved on meanwhile
            self.query_one(ProgramView).detail = detail

    @work(thread=True, group="export")
    def export(self, reader: ArchiveReader, program_id: int, path: Path) -> None:
        try:
            written = reader.export(program_id, path)
        except (OSError, ArchiveError, sqlite3.Error) as exc:
            self.app.call_from_thread(self.notify, f"cannot export program {program_id}: {exc}", severity="error")
            return
        self.app.call_from_thread(self.notify, f"wrote program {program_id} to {written}")
