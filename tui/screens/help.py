"""The help screen (`?`): keys and what each view shows."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

HELP = """\
# evoloop tui

Watches a run archive, read-only; refreshes by itself while the run goes on.

| key | does |
| --- | --- |
| `1` `2` `3` `4` | overview, programs, failures, adapters (when the run has some) |
| `enter` on an island | show only that island in every view |
| `a` | show all islands again |
| `up` `down` | move in a table |
| `e` | export the program under the cursor to a `.py` file |
| `r` | refresh now |
| `?` | this help (`escape` closes it) |
| `q` | quit |

- **Header**: what `evolve status` says: problem, run state, proposer(s)
  with model and adapter, samples, valid share, evaluations per second,
  elapsed loop time, best score.
- **Overview**: best score so far against samples, overall (red) and per
  island; `x` marks an island reset (re-founded from another island's
  best). Below, the islands: best score, clusters, programs registered
  since the island was founded, the sample of its last improvement, and its
  sampling temperature.
- **Programs**: the best programs (of the selected island); the one under
  the cursor in full, with per-input scores and the problem's metrics, its
  diff against each parent in its prompt, and its lineage.
- **Failures**: failed candidates per kind over samples; the newest messages.
"""


class HelpScreen(ModalScreen[None]):
    """Keys and views, over the main screen."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; max-height: 90%; border: round $accent; background: $surface; }
    """
    BINDINGS = [Binding("escape,question_mark", "dismiss", "Close help")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(HELP)
