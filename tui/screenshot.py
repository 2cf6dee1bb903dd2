"""Render the README's screenshots of the TUI as SVG files.

    .venv/bin/python -m tui.screenshot runs/demo.db docs/   # after `make demo`
    .venv/bin/python -m tui.screenshot --run runs/demo.db docs/   # run the demo first if the archive is missing

Opens the app headless at a fixed size on the archive, waits for it to read
everything, and saves one SVG per view (Textual's own export): `tui.svg`
(overview) and `tui-programs.svg` (the program browser).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tui.app import EvoloopApp
from tui.testing import settle

log = logging.getLogger(__name__)

SIZE = (150, 44)
VIEWS = {"tui.svg": [], "tui-programs.svg": ["2"]}  # file -> keys pressed first


async def render(db: Path, keys: Sequence[str], size: tuple[int, int] = SIZE) -> str:
    """Return the SVG of the app on `db` after pressing `keys`."""
    app = EvoloopApp(db, interval=3600)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        if app.error:
            raise SystemExit(app.error)
        for key in keys:
            await pilot.press(key)
        await settle(pilot)
        await pilot.wait_for_scheduled_animations()
        return app.export_screenshot(title=f"evolve tui {db.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--run", action="store_true", help="make the archive with the demo's run if it is missing")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.run and not args.db.exists():
        command = [sys.executable, "-m", "evolve.cli", "run", "bin_packing_or", "--db", str(args.db), "--budget", "2000", "--seed", "0"]
        subprocess.run(command, check=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, keys in VIEWS.items():
        path = args.out_dir / name
        path.write_text(asyncio.run(render(args.db, keys)))
        log.info("wrote %s", path)


if __name__ == "__main__":
    main()
