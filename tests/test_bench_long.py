"""The long-budget suite (bench/suite_long.py): one real short timed run, its checkpoints by wall time, rendering.

Cost: about 15 s on 2 cores (a 6-second run through the real sandbox, its
checkpoints scored on test, one matplotlib figure).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))  # bench/ holds scripts, not a package

import suite  # noqa: E402
import suite_long  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("long") / "long.json"
    got = suite_long.run_suite(["bin_packing_or"], [0], 0.1, 1, out)
    assert json.loads(out.read_text()) == json.loads(json.dumps(got))  # the file holds what was returned
    return got


def test_a_timed_run_stops_on_time_and_records_best_so_far_by_wall_time(results: dict) -> None:
    [run] = results["runs"]
    assert 5.5 < run["seconds"] < 20  # 6 s of evolution, then the archive is read; no sample cap stops it
    cps = run["checkpoints"]
    assert [c["seconds"] for c in cps] == suite_long.checkpoint_seconds(0.1)
    samples = [c["samples"] for c in cps]
    assert samples == sorted(samples) and samples[0] <= 1 < samples[-1] == run["samples"]
    # At 0 s the best is the seed (best fit), scored on train and test like the baseline measured apart.
    best_fit = results["baselines"]["bin_packing_or"]["best_fit"]
    assert cps[0]["train"]["score"] == best_fit["train"]["score"]
    assert cps[0]["test"]["metrics"] == best_fit["test"]["metrics"]
    trains = [c["train"]["score"] for c in cps]
    assert trains == sorted(trains)  # best so far never gets worse
    assert 0 <= run["reached_s"] <= run["seconds"] and 0 <= run["reached_samples"] < run["samples"]
    assert run["function"].startswith("def priority(")
    assert run["arm"] == "default" and run["culled"] == 0 and run["semantic_repeats"] > 0


def test_the_headline_table_gives_mean_spread_target_and_time_to_reach(results: dict) -> None:
    two = copy.deepcopy(results)
    second = copy.deepcopy(two["runs"][0])
    second["seed"], second["reached_s"] = 1, 150.0
    for c in second["checkpoints"]:  # seed 1 is 1.0 point better on every OR set at the end
        if c is second["checkpoints"][-1]:
            c["test"]["metrics"]["excess_percent"] = {k: v - 1.0 for k, v in c["test"]["metrics"]["excess_percent"].items()}
    two["runs"].append(second)
    two["seeds"] = [0, 1]
    first = suite_long.headline_value(two, two["runs"][0]["checkpoints"][-1], "bin_packing_or")
    [row] = [l for l in suite_long.headline_table(two) if l.startswith("| `bin_packing_or`")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == f"{first - 0.5:.2f} ({first - 1.0:.2f}-{first:.2f})"
    assert cells[3] == "≤ 4.5 (" + ("met" if first - 0.5 <= 4.5 else "not met") + ")"
    assert cells[4] == "3.77 (FunSearch)"
    assert cells[6].endswith(", 2.5")  # 150 s


def test_render_writes_curves_table_and_both_page_blocks(results: dict, tmp_path: Path) -> None:
    page, readme = tmp_path / "RESULTS.md", tmp_path / "README.md"
    for path, marker in ((page, "search-long"), (readme, "search-long-summary")):
        path.write_text(f"head\n<!-- {marker}:start -->\nold\n<!-- {marker}:end -->\ntail\n")
    out = tmp_path / "r.json"
    written = suite_long.render(results, out, page, readme)
    assert out.with_suffix(".png").read_bytes().startswith(PNG)
    assert "| `bin_packing_or` |" in page.read_text() and "old" not in page.read_text()
    assert "def priority(" in page.read_text() and "def priority(" not in readme.read_text()
    assert readme.read_text().startswith("head\n") and "| `bin_packing_or` |" in readme.read_text()
    assert set(written) == {out.with_suffix(".png"), out.with_suffix(".md"), page, readme}
    (page.write_text("no markers\n"))
    with pytest.raises(SystemExit, match="markers"):
        suite_long.render(results, out, page, None)


def test_cascade_arms_get_a_row_each(results: dict) -> None:
    both = copy.deepcopy(results)
    arm = copy.deepcopy(both["runs"][0])
    arm["arm"], arm["samples"] = "cascade", 12_345
    old = copy.deepcopy(arm)  # a file from before arms had names
    del old["arm"]
    old["cascade"] = True
    both["runs"] += [arm, old]
    both["arms"] = ["default", "cascade"]
    rows = [l for l in suite_long.headline_table(both) if l.startswith("| `bin_packing_or`")]
    assert [r.split("|")[1].strip() for r in rows] == ["`bin_packing_or`", "`bin_packing_or` (cascade)"]
    assert rows[1].count("12,345") == 2  # both cascade runs in one row
    assert "12,345" in rows[1] and "12,345" not in rows[0]
    assert "bin_packing_or (cascade) seed 0" in suite_long.markdown(both, None)


def test_render_can_write_another_section_of_the_page(results: dict, tmp_path: Path) -> None:
    page = tmp_path / "RESULTS.md"
    page.write_text("<!-- search-long:start -->\nkept\n<!-- search-long:end -->\n<!-- arms:start -->\n<!-- arms:end -->\n")
    suite_long.render(results, tmp_path / "a.json", page, None, marker="arms")
    text = page.read_text()
    assert "kept" in text and text.index("| `bin_packing_or` |") > text.index("<!-- arms:start -->")


def test_add_puts_more_runs_into_an_earlier_file_and_refuses_runs_that_would_not_compare(
        results: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "long.json"
    grown = suite_long.run_suite(["bin_packing_or"], [1], 0.1, 1, out, base=results)
    assert [(r["problem"], r["seed"]) for r in grown["runs"]] == [("bin_packing_or", 0), ("bin_packing_or", 1)]
    assert grown["runs"][0] == results["runs"][0] and grown["seeds"] == [0, 1] and grown["complete"]
    assert grown["baselines"] == results["baselines"]  # measured once, not again
    assert json.loads(out.read_text()) == json.loads(json.dumps(grown))
    assert len(results["runs"]) == 1  # the earlier results are copied, not changed
    new = grown["runs"][1]
    assert new["date"] >= results["date"] and len(new["load_before"]) == 3
    table = "\n".join(suite_long.headline_table(grown))
    assert "seeds 0, 1;" in table and table.count("`bin_packing_or`") == 1  # one row, over both seeds
    assert f"bin_packing_or seed 1 {new['date']}, {new['load_before'][0]:.2f} (code {new['code']})" \
        in suite_long.markdown(grown, None)
    for args, why in ((([0], 0.1, 1), "already has bin_packing_or seed 0"), (([2], 0.2, 1), "minutes 0.1"),
                      (([2], 0.1, 2), "workers 1")):
        with pytest.raises(SystemExit) as exit_:
            suite_long.run_suite(["bin_packing_or"], *args, tmp_path / "refused.json", base=results)
        assert exit_.value.code == 2 and why in capsys.readouterr().err
        assert not (tmp_path / "refused.json").exists()


@pytest.mark.parametrize("argv", [["--minutes", "0"], ["--minutes", "-1", "--add", "x.json", "--out", "y.json"]])
def test_a_bad_command_line_is_one_line_and_exit_2_with_nothing_written(
        argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["suite_long.py", "--no-page", *argv])
    with pytest.raises(SystemExit) as exit_:
        suite_long.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "--minutes must be > 0" in err
    assert list(tmp_path.iterdir()) == []


def test_code_version_names_the_commit_or_what_a_copied_tree_was_told(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "f").write_text("a")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "a"], check=True)
    head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert suite.code_version(repo) == head
    (repo / "f").write_text("b")
    assert suite.code_version(repo) == head + "+changes"
    monkeypatch.setenv("EVOLOOP_COMMIT", "abc123")
    assert suite.code_version(tmp_path / "copy") == "abc123"  # no .git there
    monkeypatch.delenv("EVOLOOP_COMMIT")
    assert suite.code_version(tmp_path / "copy") is None
