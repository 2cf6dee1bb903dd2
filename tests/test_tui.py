"""The TUI driven by Textual's pilot against the archive of a real short run."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, TabbedContent

from conftest import evolve, evolve_json
from evolve import session
from evolve.archive import Archive, NewProgram
from evolve.config import RunConfig
from sandbox import Evaluation
from tui import format as fmt
from tui.app import EvoloopApp
from tui.reader import ArchiveReader
from tui.screens.export import ExportScreen
from tui.testing import settle
from tui.widgets.adapters import AdaptersTable
from tui.widgets.header import RunHeader, header_text
from tui.widgets.islands_table import IslandsTable
from tui.widgets.programs import ProgramList, ProgramView
from tui.widgets.score_plot import ScorePlot

SMALL = {
    "islands": {"num_islands": 4, "reset_period": 60},
    "loop": {"prompts_per_batch": 4, "samples_per_prompt": 2, "budget": 160, "seed": 1},
    "sandbox": {"timeout_s": 10.0, "workers": 2},
}
SIZE = (140, 44)
NEVER = 3600.0  # refresh interval for tests that must not see a timer refresh
TOP_K = 5  # programs listed in the live test


@pytest.fixture(scope="module")
def run_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished run of 160 samples on bin_packing_or, with island resets."""
    db = tmp_path_factory.mktemp("tui") / "run.db"
    config = RunConfig().replace(**SMALL)
    archive, spec = session.new_run("bin_packing_or", db, config)
    with session.pool_for(config) as pool:
        session.open_evolution(archive, spec, config, pool, fresh=True).run()
    archive.close()
    return db


def drive(app: EvoloopApp, body: Callable[[Pilot[None]], Awaitable[None]]) -> None:
    """Run the app headless at a fixed size and hand its pilot to `body`."""

    async def main() -> None:
        async with app.run_test(size=SIZE, notifications=True) as pilot:
            await body(pilot)

    asyncio.run(main())


def best_in_archive(db: Path) -> tuple[int, float]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, score FROM programs WHERE score IS NOT NULL ORDER BY score DESC, id LIMIT 1").fetchone()


def test_header_numbers_equal_evolve_status(run_db: Path) -> None:
    cli = evolve_json("status", str(run_db))

    async def body(pilot: Pilot[None]) -> None:
        await settle(pilot)
        snap = pilot.app.snapshot
        assert snap is not None
        assert json.loads(json.dumps(snap.status.to_json())) == cli
        shown = header_text(snap).plain
        assert pilot.app.query_one(RunHeader).render().plain == shown
        for text in (cli["problem"], cli["state"], cli["proposer"], fmt.count(cli["samples"]), fmt.share(cli["valid_share"]),
                     fmt.rate(cli["evals_per_s"]), fmt.score(cli["score"]), fmt.duration(cli["elapsed_s"])):
            assert text in shown, (text, shown)

    assert cli["samples"] == 160 and cli["state"] == "finished"
    drive(EvoloopApp(run_db, interval=NEVER), body)


def test_islands_table_matches_status(run_db: Path) -> None:
    cli = evolve_json("status", str(run_db))

    async def body(pilot: Pilot[None]) -> None:
        await settle(pilot)
        table = pilot.app.query_one(IslandsTable)
        assert table.row_count == 1 + len(cli["islands"])  # "all", then each island
        for row in cli["islands"]:
            cells = table.get_row(str(row["island"]))
            assert cells[1] == fmt.score(row["best_score"]) and cells[2] == str(row["best_program_id"])
            assert cells[3] == fmt.count(row["num_clusters"]) and cells[4] == fmt.count(row["num_programs"])

    assert len(cli["islands"]) == 4
    drive(EvoloopApp(run_db, interval=NEVER), body)


def test_top_program_shown_is_the_best(run_db: Path) -> None:
    best_id, best_score = best_in_archive(run_db)

    async def body(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        assert pilot.app.query_one(TabbedContent).active == "programs"
        programs = pilot.app.query_one(ProgramList)
        assert programs.selected_id == best_id
        assert programs.get_row_at(0)[1:3] == [str(best_id), fmt.score(best_score)]
        detail = pilot.app.query_one(ProgramView).detail
        assert detail is not None and detail.row.id == best_id
        assert set(detail.metrics["excess_percent"]) == set(detail.row.scores)
        # The next one down (the seed may be the best after 160 samples): an evolved program, with its parents.
        await pilot.press("down")
        await settle(pilot)
        detail = pilot.app.query_one(ProgramView).detail
        assert detail is not None and str(detail.row.id) == programs.get_row_at(1)[1] == str(programs.selected_id)
        assert detail.parents and set(detail.diffs) == {p.id for p in detail.parents}
        assert detail.lineage and detail.lineage[-1].proposer == "seed"  # back to the seed

    drive(EvoloopApp(run_db, interval=NEVER), body)


def test_selecting_an_island_filters_the_views(run_db: Path) -> None:
    async def body(pilot: Pilot[None]) -> None:
        await settle(pilot)
        app = pilot.app
        assert isinstance(app, EvoloopApp)
        assert {r.island for r in app.snapshot.top} == {None, 0, 1, 2, 3}  # type: ignore[union-attr]  # None: the seed
        table = app.query_one(IslandsTable)
        table.focus()
        table.move_cursor(row=table.get_row_index("2"))
        await pilot.press("enter")
        await settle(pilot)
        assert app.island == 2
        snap = app.snapshot
        assert snap is not None and snap.island == 2
        assert snap.top and {r.island for r in snap.top} <= {2, None} and any(r.island == 2 for r in snap.top)
        assert app.query_one(ScorePlot).data.island == 2  # type: ignore[union-attr]
        shown = [app.query_one(ProgramList).get_row_at(i)[3] for i in range(app.query_one(ProgramList).row_count)]
        assert set(shown) <= {"2", "all"}
        assert "island 2" in header_text(snap).plain
        await pilot.press("a")
        await settle(pilot)
        assert app.island is None and app.snapshot is not None and app.snapshot.island is None

    drive(EvoloopApp(run_db, interval=NEVER), body)


def test_export_writes_a_runnable_program(run_db: Path, tmp_path: Path) -> None:
    best_id, best_score = best_in_archive(run_db)
    out = tmp_path / "exported.py"

    async def body(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(pilot.app.screen, ExportScreen)
        pilot.app.screen.query_one(Input).value = str(out)
        await pilot.press("enter")
        await settle(pilot)
        assert any(f"wrote program {best_id}" in n.message for n in pilot.app._notifications)

    drive(EvoloopApp(run_db, interval=NEVER), body)
    text = out.read_text()
    assert f"program {best_id}" in text.splitlines()[0]
    again = evolve_json("eval", "bin_packing_or", str(out))
    assert again["score"] == pytest.approx(best_score)


def test_a_file_that_is_not_an_archive_gets_the_message(tmp_path: Path) -> None:
    prose = tmp_path / "notes.db"
    prose.write_text("These are notes, not an SQLite file.\n" * 50)

    async def body(pilot: Pilot[None]) -> None:
        await settle(pilot)
        app = pilot.app
        assert isinstance(app, EvoloopApp)
        assert "is not an evoloop archive" in app.error
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors and "is not an evoloop archive" in errors[0].message
        assert "is not an evoloop archive" in app.query_one(RunHeader).render().plain

    drive(EvoloopApp(prose, interval=NEVER), body)
    proc = evolve("tui", str(prose))  # the CLI says it before starting the app
    assert proc.returncode == 2 and "is not an evoloop archive" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_a_new_best_appears_without_a_restart(run_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    shutil.copy(run_db, db)
    _, best_score = best_in_archive(db)
    new_scores = [best_score + 1.0, best_score + 2.0]

    async def body(pilot: Pilot[None]) -> None:
        await settle(pilot)
        app = pilot.app
        assert isinstance(app, EvoloopApp)
        assert app.snapshot is not None and app.snapshot.status.score == best_score
        await pilot.press("2", "down")  # the user looks at the second best
        await settle(pilot)
        programs = app.query_one(ProgramList)
        chosen = programs.selected_id
        assert chosen is not None and programs.get_row_index(str(chosen)) == 1
        writer = Archive.open(db)  # as the loop does: one transaction per batch
        with writer.transaction():
            new_ids = [
                writer.add_program(NewProgram(
                    hash=f"live-{i}", function=f"def priority(item, bins):\n    return -(bins - item) ** {i + 2}\n",
                    parents=(1,), island=1, proposer="gp", model="", sample=160 + i,
                    evaluation=Evaluation(scores={f"train_{k}": score for k in range(4)}),
                ))
                for i, score in enumerate(new_scores)
            ]
        writer.close()
        for _ in range(100):  # the timer polls every 0.2 s; this bounds the wait, it checks no speed
            if app.snapshot.status.best_id == new_ids[-1]:
                break
            await pilot.pause(0.1)
        await settle(pilot)
        assert app.snapshot.status.score == new_scores[-1]
        assert fmt.score(new_scores[-1]) in app.query_one(RunHeader).render().plain
        assert [programs.get_row_at(i)[1] for i in range(2)] == [str(i) for i in reversed(new_ids)]
        assert programs.selected_id == chosen and programs.get_row_index(str(chosen)) == 3  # it stays with the user's choice
        assert app.query_one(ProgramView).detail.row.id == chosen  # type: ignore[union-attr]
        assert app.snapshot.curves[None].ys[-1] == new_scores[-1]  # the overall curve rose
        assert app.snapshot.curves[1].ys[-1] == new_scores[-1]
        # Back on the best, the cursor follows the best as new ones arrive.
        programs.move_cursor(row=0)
        await settle(pilot)
        writer = Archive.open(db)
        with writer.transaction():
            newest = writer.add_program(NewProgram(
                hash="live-top", function="def priority(item, bins):\n    return -(bins - item) ** 5\n", parents=(1,),
                island=2, proposer="gp", model="", sample=170, evaluation=Evaluation(scores={f"train_{k}": best_score + 3.0 for k in range(4)}),
            ))
        writer.close()
        for _ in range(100):
            if app.snapshot.status.best_id == newest:
                break
            await pilot.pause(0.1)
        await settle(pilot)
        assert programs.selected_id == newest
        assert app.query_one(ProgramView).detail.row.id == newest  # type: ignore[union-attr]

    drive(EvoloopApp(db, interval=0.2, reader=ArchiveReader.open(db, top_k=TOP_K)), body)


def test_tui_never_writes_the_archive(run_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "ro.db"
    shutil.copy(run_db, db)
    before = db.read_bytes()
    db.chmod(0o444)

    async def body(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await pilot.press("2", "3", "1")
        await settle(pilot)
        assert pilot.app.snapshot is not None and not pilot.app.error

    drive(EvoloopApp(db, interval=NEVER), body)
    assert db.read_bytes() == before


def test_adapters_view_only_when_the_archive_has_adapters(run_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "adapters.db"
    shutil.copy(run_db, db)

    async def without(pilot: Pilot[None]) -> None:
        await settle(pilot)
        tabs = pilot.app.query_one(TabbedContent)
        assert tabs.get_tab("adapters").display is False
        await pilot.press("4")
        assert tabs.active == "overview"

    drive(EvoloopApp(db, interval=NEVER), without)
    with sqlite3.connect(db) as conn:  # what the fine-tuning part will write: one row per round
        conn.execute("CREATE TABLE adapters (round INTEGER, path TEXT, examples INTEGER, loss REAL)")
        conn.executemany("INSERT INTO adapters VALUES (?, ?, ?, ?)", [(1, "a/r1", 120, 0.91), (2, "a/r2", 260, 0.74)])

    async def with_adapters(pilot: Pilot[None]) -> None:
        await settle(pilot)
        tabs = pilot.app.query_one(TabbedContent)
        assert tabs.get_tab("adapters").display is True
        await pilot.press("4")
        await settle(pilot)
        assert tabs.active == "adapters"
        table = pilot.app.query_one(AdaptersTable)
        assert [table.get_row_at(i) for i in range(table.row_count)] == [["2", "a/r2", "260", "0.74"], ["1", "a/r1", "120", "0.91"]]

    drive(EvoloopApp(db, interval=NEVER), with_adapters)
