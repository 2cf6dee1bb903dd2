"""Snapshot tests of the TUI's main screens: SVG screenshots compared with tests/snapshots/tui/.

The archive is `tui.synthetic`'s (a real archive written through `Archive`
with real islands, deterministic under its seed), not a real run's: a run's
programs change whenever the GP proposer does, which would churn these
images for reasons that have nothing to do with the TUI.

A change to the screens (or a Textual upgrade) shows up here as a failure
that names the new screenshot; look at it, then accept it with

    EVOLOOP_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_tui_snapshots.py

(pytest-textual-snapshot would do this too, but it pins syrupy 4.8, which
needs pytest < 9.)
"""

from __future__ import annotations

import asyncio
import difflib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from tui.app import EvoloopApp
from tui.synthetic import build
from tui.testing import settle
from tui.widgets.islands_table import IslandsTable

SNAPSHOTS = Path(__file__).parent / "snapshots" / "tui"
UPDATE = os.environ.get("EVOLOOP_UPDATE_SNAPSHOTS") == "1"
SIZE = (130, 40)


@pytest.fixture(scope="module")
def synthetic_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("snap") / "snap.db"
    build(db, 600, seed=0, islands={"num_islands": 4, "reset_period": 150})
    return db


def screenshot(db: Path, keys: Sequence[str], island: int | None = None) -> str:
    """Open the app on `db`, press `keys` (after choosing `island`), let it settle, return the SVG."""

    async def main() -> str:
        app = EvoloopApp(db, interval=3600)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            if island is not None:
                table = app.query_one(IslandsTable)
                table.move_cursor(row=table.get_row_index(str(island)))
                await pilot.press("enter")
            for key in keys:
                await pilot.press(key)
            await settle(pilot)
            await pilot.wait_for_scheduled_animations()
            return app.export_screenshot()

    return asyncio.run(main())


def svg_text(svg: str) -> list[str]:
    """Return the screen's text, line by line, from a Textual SVG screenshot (for readable diffs)."""
    lines: dict[str, list[str]] = {}
    for match in re.finditer(r'<text [^>]*y="([\d.]+)"[^>]*>([^<]*)</text>', svg):
        lines.setdefault(match.group(1), []).append(match.group(2).replace("&#160;", " "))
    return ["".join(parts) for _, parts in sorted(lines.items(), key=lambda kv: float(kv[0]))]


def check(name: str, svg: str, tmp_path: Path) -> None:
    expected_file = SNAPSHOTS / f"{name}.svg"
    if UPDATE:
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        expected_file.write_text(svg)
        return
    assert expected_file.exists(), f"no snapshot {expected_file}; create it with EVOLOOP_UPDATE_SNAPSHOTS=1"
    expected = expected_file.read_text()
    if svg != expected:
        actual_file = tmp_path / f"{name}.svg"
        actual_file.write_text(svg)
        diff = "\n".join(difflib.unified_diff(svg_text(expected), svg_text(svg), "expected", "actual", lineterm=""))
        pytest.fail(f"{name} differs from {expected_file}; the new screenshot is {actual_file}\n{diff or '(colors or layout only)'}")


@pytest.mark.parametrize(
    ("name", "keys", "island"),
    [
        ("overview", [], None),
        ("overview_island_2", [], 2),
        ("programs", ["2"], None),
        ("failures", ["3"], None),
        ("help", ["question_mark"], None),
    ],
)
def test_screen_snapshot(synthetic_db: Path, tmp_path: Path, name: str, keys: list[str], island: int | None) -> None:
    check(name, screenshot(synthetic_db, keys, island), tmp_path)


def test_snapshots_are_stable(synthetic_db: Path) -> None:
    """The same archive and keys give the same bytes: what makes the snapshot comparison meaningful."""
    assert screenshot(synthetic_db, ["2"]) == screenshot(synthetic_db, ["2"])
