"""Best score over samples: overall and per island, island resets marked."""

from __future__ import annotations

from dataclasses import dataclass

from textual.reactive import var
from textual_plotext import Plot

from tui.history import Curve, ResetMark
from tui.widgets.plot import MARKER, BackgroundPlot

ISLAND_COLORS = ("blue+", "green+", "cyan+", "magenta+", "orange+", "blue", "green", "cyan", "magenta", "orange")


@dataclass(frozen=True)
class ScoreData:
    curves: dict[int | None, Curve]  # None: overall
    resets: tuple[ResetMark, ...]
    island: int | None  # the selected island, None for all


class ScorePlot(BackgroundPlot[ScoreData]):
    """A step plot of the best score so far against the sample index."""

    data: var[ScoreData | None] = var(None)  # see BackgroundPlot.data

    def draw(self, plt: Plot, data: ScoreData | None) -> None:
        plt.xlabel("samples")
        if data is None or not data.curves.get(None, Curve((), (), None)).xs:
            plt.title("best score over samples (no valid program yet)")
            return
        overall = data.curves[None]
        if data.island is not None:  # the selected island in front of the overall best
            plt.plot(list(overall.xs), list(overall.ys), color="red", marker=MARKER, label="overall")
        for island in (i for i in data.curves if i is not None and (data.island is None or i == data.island)):
            curve = data.curves[island]
            if curve.xs:
                label = f"island {island}" if data.island is not None else None
                plt.plot(list(curve.xs), list(curve.ys), color=ISLAND_COLORS[island % len(ISLAND_COLORS)],
                         marker=MARKER, label=label)
        if data.island is None:  # all islands: the overall best in front
            plt.plot(list(overall.xs), list(overall.ys), color="red", marker=MARKER, label="overall")
        resets = [m for m in data.resets if m.score is not None and (data.island is None or m.island == data.island)]
        if resets:
            plt.scatter([m.sample for m in resets], [m.score for m in resets], marker="x", color="red+", label="reset")
        where = "all islands" if data.island is None else f"island {data.island}"
        plt.title(f"best score over samples ({where})")
