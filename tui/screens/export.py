"""The export dialog (`e`): where to write the program under the cursor."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class ExportScreen(ModalScreen[Path | None]):
    """Ask for a file name; dismiss with the path (enter) or None (escape)."""

    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    ExportScreen > Vertical { width: 80; height: auto; border: round $accent; background: $surface; padding: 0 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, program_id: int, default: Path) -> None:
        super().__init__()
        self.program_id, self.default = program_id, default

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Export program {self.program_id} as a runnable file (enter: write, escape: cancel)")
            yield Input(value=str(self.default), id="export-path")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        self.dismiss(Path(value).expanduser() if value else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
