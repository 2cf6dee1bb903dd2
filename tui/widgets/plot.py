"""A plotext plot drawn in a thread worker, once per change of data or size.

`PlotextPlot` rebuilds its whole figure inside `render()`, on the UI thread,
at every frame: on a screen-wide plot that is tens of milliseconds each
time. Here the figure is built on a private `Plot` in a worker whenever the
data or the size change, and `render()` shows the last picture built.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from rich.text import Text
from textual import events, work
from textual.reactive import var
from textual.worker import get_current_worker
from textual_plotext import Plot, PlotextPlot

MARKER = "hd"  # half blocks: 2x2 dots a cell; braille (2x4) costs about five times as much to build
Data = TypeVar("Data")
Key = tuple[int, int, str, Any]  # width, height, plotext theme, data


class BackgroundPlot(PlotextPlot, Generic[Data]):
    """Subclasses set `data` and implement `draw(plt, data)`."""

    # Watchers run only when the data differ. A `var`: new data repaint nothing until the new picture is
    # built (`_show`); a reactive would redraw the old picture over the whole plot first.
    data: var[Data | None] = var(None)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._picture: tuple[Key, Text] | None = None
        self._wanted: Key | None = None

    def draw(self, plt: Plot, data: Data | None) -> None:
        """Put `data` on `plt` (called in a worker thread: read nothing else)."""
        raise NotImplementedError

    def watch_data(self, data: Data | None) -> None:
        self._request()

    def on_resize(self, event: events.Resize) -> None:
        self._request()

    def _key(self) -> Key:
        return (self.size.width, self.size.height, self._get_plotext_theme_name(self.app.theme), self.data)

    def _request(self) -> None:
        if not self.is_mounted or not self.size.width or not self.size.height:
            return
        key = self._key()
        if key != self._wanted and (self._picture is None or key != self._picture[0]):
            self._wanted = key
            self._build(key)

    @work(thread=True, exclusive=True, group="plot")
    def _build(self, key: Key) -> None:
        width, height, theme, data = key
        plt = Plot()
        plt.plotsize(width, height)
        plt._set_size(width, height)  # as PlotextPlot.render does: plotsize alone does not always stick
        plt.theme(theme)
        self.draw(plt, data)
        picture = Text.from_ansi(plt.build())
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show, key, picture)

    def _show(self, key: Key, picture: Text) -> None:
        self._picture = (key, picture)
        self.refresh()

    def render(self) -> Text:
        self._request()  # a theme change, or the first frame
        return self._picture[1] if self._picture is not None else Text("drawing…", style="dim")
