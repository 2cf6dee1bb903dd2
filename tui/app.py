"""The evoloop TUI: watch a run archive from a terminal.

    evolve tui runs/demo.db

The app holds the typed state (the latest snapshot, the island filter, an
error) and the polling: a timer starts a thread worker that asks the
`ArchiveReader` for what changed, and the snapshot comes back to the UI
thread, so a slow disk never blocks the interface. Screens and widgets only
render what they are handed.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.reactive import var
from textual.screen import Screen

from evolve.archive import ArchiveError
from evolve.spec import SpecError
from tui.reader import ArchiveReader, Snapshot
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen

log = logging.getLogger(__name__)


class EvoloopApp(App[None]):
    """Watch one run archive, read-only."""

    TITLE = "evoloop"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("a", "all_islands", "All islands"),
        Binding("r", "refresh_now", "Refresh"),
    ]

    # `var`, not `reactive`: the app draws none of these itself (the widgets watching them repaint what
    # changed), and a reactive would repaint the whole screen at every snapshot, a full frame each refresh.
    snapshot: var[Snapshot | None] = var(None, always_update=True)
    island: var[int | None] = var(None, init=False)  # the island filter; None shows all
    error: var[str] = var("")  # why the archive cannot be shown

    def __init__(self, db: Path, interval: float = 2.0, reader: ArchiveReader | None = None) -> None:
        super().__init__()
        self.db, self.interval, self.reader = Path(db), interval, reader
        self._polling = False
        self._poll_again = False

    def get_default_screen(self) -> Screen[None]:
        return MainScreen()

    def on_mount(self) -> None:
        self.poll()
        self.set_interval(self.interval, self.poll)

    # -- polling ------------------------------------------------------------------------

    def poll(self) -> None:
        """Start a read of what changed, unless one is running (then read again after it)."""
        if self.error:
            return
        if self._polling:
            self._poll_again = True
            return
        self._polling, self._poll_again = True, False
        self._read(self.island)

    @work(thread=True, group="poll")
    def _read(self, island: int | None) -> None:
        try:
            if self.reader is None:
                self.reader = ArchiveReader.open(self.db)
            snapshot = self.reader.poll(island)
        except (ArchiveError, SpecError) as exc:
            self.call_from_thread(self._failed, str(exc), fatal=True)
        except sqlite3.Error as exc:  # a transient read error: say so and try again at the next tick
            self.call_from_thread(self._failed, f"cannot read {self.db}: {exc}", fatal=False)
        else:
            self.call_from_thread(self._received, snapshot)

    def _received(self, snapshot: Snapshot) -> None:
        self._polling = False
        if snapshot.island != self.island:  # the filter changed meanwhile
            self._poll_again = True
        else:
            self.snapshot = snapshot
        if self._poll_again:
            self.poll()

    def _failed(self, message: str, fatal: bool) -> None:
        self._polling = False
        log.warning("%s", message)
        if fatal:
            self.error = message
        self.notify(message, severity="error", timeout=10)

    # -- state and actions --------------------------------------------------------------------

    def watch_island(self, island: int | None) -> None:
        self.poll()

    def action_all_islands(self) -> None:
        self.island = None

    def action_refresh_now(self) -> None:
        self.poll()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def on_unmount(self) -> None:
        if self.reader is not None:
            self.reader.close()


def run(db: Path, interval: float = 2.0, reader: ArchiveReader | None = None) -> None:
    """Run the TUI in this terminal until the user quits."""
    EvoloopApp(db, interval, reader).run()
