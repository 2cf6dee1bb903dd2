"""The benchmark suite (bench/suite.py, bench/suite_report.py): its declaration, one real tiny run, rendering.

Cost: about 10 s on 2 cores (one 24-sample run through the real sandbox; the
rest renders small crafted results files with matplotlib).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evolve.spec import load_spec

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))  # bench/ holds scripts, not a package

import suite  # noqa: E402
import suite_report  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _scored(metric: str, values: dict[str, float], score: float) -> dict[str, Any]:
    return {"score": score, "scores": {k: -v for k, v in values.items()}, "metrics": {metric: dict(values)}}


def _run(problem: str, seed: int, variant: str, train: list[float], test: dict[str, float], metric: str) -> dict[str, Any]:
    checkpoints = [
        {"samples": budget, "program_id": i + 1, "train": {"score": score, "scores": {"t": score}, "metrics": {}},
         "test": _scored(metric, {k: v + (len(train) - 1 - i) for k, v in test.items()}, -1.0)}
        for i, (budget, score) in enumerate(zip((0, 10, 20), train))
    ]
    return {"problem": problem, "variant": variant, "proposer": "gp", "seed": seed, "samples": 20, "overrides": {},
            "seconds": 12.0 + seed, "cpu_s": 20.0 + 2 * seed, "evaluated": 20, "valid_share": 1.0, "checkpoints": checkpoints, "function": "..."}


@pytest.fixture
def crafted() -> dict[str, Any]:
    """A small results file: two problems, two seeds, one ablation; every figure distinctive."""
    bp = {"OR1": 4.87, "OR2": 4.51, "OR3": 3.93, "OR4": 3.61}
    return {
        "date": "2026-01-02 03:04:05", "machine": "7cpu-test", "python": "3.11.0", "workers": 2, "seeds": [0, 1],
        "load_before": [1.5, 1, 1], "load_after": [2.5, 1, 1], "complete": True, "wall_s": 754.0, "cpu_s": 1234.0,
        "views": {p: dataclasses.asdict(suite.VIEWS[p]) for p in ("bin_packing_or", "cap_set")},
        "entries": [],
        "baselines": {
            "bin_packing_or": {
                "seed": {"train": _scored("excess_percent", {"train_0": 1.0}, -50.0),
                         "test": _scored("excess_percent", {"OR1": 5.11, "OR2": 5.22, "OR3": 5.33, "OR4": 5.45}, -9.0)},
                "first_fit": {"train": _scored("excess_percent", {"train_0": 2.0}, -51.0),
                              "test": _scored("excess_percent", {"OR1": 6.61, "OR2": 6.62, "OR3": 6.63, "OR4": 6.66}, -9.5)},
                "best_fit": {"train": _scored("excess_percent", {"train_0": 1.0}, -50.0),
                             "test": _scored("excess_percent", {"OR1": 5.11, "OR2": 5.22, "OR3": 5.33, "OR4": 5.45}, -9.0)},
            },
            "cap_set": {
                "seed": {"train": _scored("size", {"n8": 256}, 256.0), "test": _scored("size", {"n1": 2, "n8": 256}, 129.0)},
                "quadric": {"train": _scored("size", {"n8": 294}, 294.0), "test": _scored("size", {"n1": 2, "n8": 294}, 148.0)},
            },
        },
        "runs": [
            _run("bin_packing_or", 0, "default", [-50.0, -49.5, -48.25], bp, "excess_percent"),
            _run("bin_packing_or", 1, "default", [-50.0, -49.0, -48.75], {k: v + 0.2 for k, v in bp.items()}, "excess_percent"),
            _run("bin_packing_or", 0, "islands off", [-50.0, -50.0, -49.5], bp, "excess_percent"),
            _run("bin_packing_or", 1, "islands off", [-50.0, -49.75, -49.25], bp, "excess_percent"),
            _run("cap_set", 0, "default", [256.0, 300.0, 333.0], {"n1": 2, "n8": 333}, "size"),
            _run("cap_set", 1, "default", [256.0, 256.0, 301.0], {"n1": 2, "n8": 301}, "size"),
        ],
    }


def _row(markdown: str, label: str, after: str = "") -> list[str]:
    """Return the cells of the first table row starting with `label` (after the line containing `after`)."""
    text = markdown[markdown.index(after):] if after else markdown
    line = next(l for l in text.splitlines() if l.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


def test_the_declared_suite_is_the_issue_s_suite() -> None:
    main = {(e.problem, e.proposer) for e in suite.MAIN}
    assert main == {("bin_packing_or", "gp"), ("bin_packing_weibull", "gp"), ("cap_set", "gp"), ("oscillator1", "gp")}
    assert tuple(suite.SEEDS) == (0, 1, 2)
    assert list(load_spec("cap_set").inputs("train")) == ["n8"]  # cap_set is searched at n = 8
    refs = suite.VIEWS["bin_packing_or"].references[suite.FUNSEARCH]
    assert refs == {"OR1": 5.30, "OR2": 4.19, "OR3": 3.11, "OR4": 2.47}
    assert suite.VIEWS["bin_packing_weibull"].references[suite.FUNSEARCH] == {"Weibull 5k": 0.68}
    for problem, view in suite.VIEWS.items():  # every plotted input exists in the spec's split
        spec = load_spec(problem)
        for split, name in view.plot:
            assert name in spec.inputs(split), (problem, split, name)


@pytest.mark.parametrize("entry", suite.ABLATIONS, ids=lambda e: e.variant)
def test_each_ablation_changes_one_setting_from_the_default(entry: suite.Entry) -> None:
    default = suite.run_config(suite.MAIN[0], 0, 2, None).to_dict()
    changed = suite.run_config(entry, 0, 2, None).to_dict()
    diff = {(part, key) for part in default if isinstance(default[part], dict)
            for key in default[part] if default[part][key] != changed[part][key]}
    assert diff and {part for part, _ in diff} == {next(iter(entry.overrides))}, diff
    assert changed["loop"]["budget"] == entry.samples and changed["sandbox"]["workers"] == 2


def test_a_tiny_real_suite_records_best_so_far_per_checkpoint(tmp_path: Path) -> None:
    entry = suite.Entry("bin_packing_or", 24, (0, 12, 24))
    out = tmp_path / "r.json"
    results = suite.run_suite([entry], [3], 1, out)
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))  # the file holds what was returned
    [run] = results["runs"]
    cps = run["checkpoints"]
    assert [c["samples"] for c in cps] == [0, 12, 24]
    # Budget 0 is the seed (best fit): its train and test figures are best fit's, measured separately.
    best_fit = results["baselines"]["bin_packing_or"]["best_fit"]
    assert cps[0]["train"]["score"] == best_fit["train"]["score"]
    assert cps[0]["test"]["metrics"] == best_fit["test"]["metrics"]
    trains = [c["train"]["score"] for c in cps]
    assert trains == sorted(trains)  # best so far never gets worse
    assert set(cps[-1]["test"]["metrics"]["excess_percent"]) == {"OR1", "OR2", "OR3", "OR4"}
    assert results["complete"] and results["wall_s"] > 0
    assert 0 < run["cpu_s"] < results["cpu_s"]  # the run's loop and sandbox workers; the suite's includes testing


def test_tables_come_from_the_results_file(crafted: dict[str, Any], tmp_path: Path) -> None:
    md = suite_report.markdown(crafted)
    # Each seed's final best on test (the crafted last checkpoint), the mean over OR1-OR4, train score, seconds.
    assert _row(md, "GP, seed 0") == ["4.87", "4.51", "3.93", "3.61", "4.23", "-48.25", "12"]
    assert _row(md, "GP, seed 1") == ["5.07", "4.71", "4.13", "3.81", "4.43", "-48.75", "13"]
    assert _row(md, "**GP, mean of 2**") == ["4.97", "4.61", "4.03", "3.71", "4.33", "-48.5", "12"]
    assert _row(md, "first fit") == ["6.61", "6.62", "6.63", "6.66", "6.63", "-51", ""]
    assert _row(md, "best fit") == ["5.11", "5.22", "5.33", "5.45", "5.28", "-50", ""]
    assert "| seed |" not in md.split("**`cap_set`**")[0]  # bin packing's seed is best fit: shown once
    assert _row(md, "FunSearch (published)") == ["5.30", "4.19", "3.11", "2.47", "3.77", "", ""]
    assert _row(md, "GP, seed 0", after="**`cap_set`**") == ["2", "333", "333", "12"]
    assert _row(md, "best known", after="**`cap_set`**") == ["2", "512", "", ""]
    assert _row(md, "`cap_set`") == ["gp", "256", "278", "317", "12", "21"]  # mean best train score by budget
    assert _row(md, "islands off") == ["-50", "-49.875", "-49.375", "4.23", "12"]
    assert "7cpu-test" in md and "12.6 min of wall time and 20.6 min of CPU time" in md
    # Change a figure in the file: the table follows.
    changed = copy.deepcopy(crafted)
    changed["runs"][0]["checkpoints"][-1]["test"]["metrics"]["excess_percent"]["OR3"] = 1.25
    assert _row(suite_report.markdown(changed), "GP, seed 0")[2] == "1.25"


def test_render_writes_plots_table_and_results_page_section(crafted: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "2026-01-02-7cpu-test.json"
    out.write_text(json.dumps(crafted))
    page = tmp_path / "RESULTS.md"
    page.write_text("intro\n<!-- results:start -->\nold table\n<!-- results:end -->\nrest\n")
    written = suite_report.render(crafted, out, page)
    names = {p.name for p in written}
    assert {"2026-01-02-7cpu-test-bin_packing_or.png", "2026-01-02-7cpu-test-cap_set.png",
            "2026-01-02-7cpu-test-bin_packing_or-ablations.png", "2026-01-02-7cpu-test.md", "RESULTS.md"} == names
    for path in written:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == PNG and path.stat().st_size > 10_000
    text = page.read_text()
    assert text.startswith("intro\n<!-- results:start -->\n") and text.endswith("<!-- results:end -->\nrest\n")
    assert "old table" not in text and "| GP, seed 0 | 4.87 |" in text
    assert "![best so far vs samples, bin_packing_or](2026-01-02-7cpu-test-bin_packing_or.png)" in text
    assert (tmp_path / "2026-01-02-7cpu-test.md").read_text().strip() in text


def test_from_re_renders_without_running(crafted: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    out.write_text(json.dumps(crafted))
    proc = subprocess.run([sys.executable, str(BENCH / "suite.py"), "--from", str(out), "--no-page"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"\| GP, seed 1 \| 5\.07 \|", (tmp_path / "r.md").read_text())
    assert (tmp_path / "r-cap_set.png").read_bytes()[:8] == PNG
    missing = subprocess.run([sys.executable, str(BENCH / "suite.py"), "--from", str(tmp_path / "nope.json")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and missing.stderr.strip() == f"{tmp_path / 'nope.json'}: no such results file"
    (tmp_path / "bad.json").write_text("{not json")
    bad = subprocess.run([sys.executable, str(BENCH / "suite_long.py"), "--from", str(tmp_path / "bad.json")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith(f"{tmp_path / 'bad.json'}: not a results file (")
    assert len(bad.stderr.strip().splitlines()) == 1


def test_language_model_proposers_join_only_where_they_can_run() -> None:
    assert suite.available_proposers(["gp", "vllm", "transformers"], None) == ["gp"]  # no model: skipped
    assert suite.available_proposers(["gp", "transformers"], "/models/x") == ["gp", "transformers"]
    with pytest.raises(SystemExit, match="unknown proposer 'gpt'"):
        suite.available_proposers(["gpt"], None)
    entries = suite.select(suite.MAIN + suite.ABLATIONS, ["bin_packing_or"], ["gp", "transformers"])
    assert [(e.proposer, e.variant) for e in entries][:2] == [("gp", "default"), ("transformers", "default")]
    assert {e.proposer for e in entries if e.variant != "default"} == {"gp"}  # ablations are of the GP default
    config = suite.run_config(entries[1], 1, 2, "/models/x")
    assert str(config.proposer) == "transformers" and config.transformers.model == "/models/x"


def test_every_benchmark_writes_its_block_into_the_results_page() -> None:
    """Each script's block sits in bench/RESULTS.md, bench_ibp.py's included; the README holds only the short
    summaries (`*-summary` blocks) that a script generates next to its table, and links the rest."""
    import common

    assert common.RESULTS_PAGE == BENCH / "RESULTS.md"
    assert common.replace_readme_section is common.replace_results_section  # the name bench_ibp.py imports
    sources = "\n".join(p.read_text() for p in sorted(BENCH.glob("*.py")))
    markers = set(re.findall(r'(?:replace_(?:results|readme)_section\(|_MARKER = )"([\w-]+)"', sources))
    markers.add(suite_report.MARKER)
    assert {"results", "bench", "bench-ibp", "bench-tui", "soak"} <= markers
    page = common.RESULTS_PAGE.read_text()
    readme = (BENCH.parent / "README.md").read_text()
    summaries = {m for m in markers if m.endswith("-summary")}
    assert {"kill-summary", "real-lm-summary"} <= summaries
    for marker in sorted(markers - summaries):
        assert f"<!-- {marker}:start -->" in page and f"<!-- {marker}:end -->" in page, marker
        assert f"<!-- {marker}:start -->" not in readme, f"README.md still holds the {marker} block"
    for marker in sorted(summaries):  # each summary has its table on the results page, and is filled in
        assert marker.removesuffix("-summary") in markers and f"<!-- {marker}:start -->" not in page, marker
        assert re.search(rf"<!-- {marker}:start -->\n\S.*?\n<!-- {marker}:end -->", readme, re.S), marker
    assert set(re.findall(r"<!-- ([\w-]+):start -->", readme)) == summaries  # no block no script writes
