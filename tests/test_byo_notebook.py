"""A FunSearch-style notebook as a spec: cells taken in order, imports from earlier cells, later cells left alone.

    .venv/bin/pytest tests/test_byo_notebook.py

The notebooks here are written for this test in the layout of FunSearch's
published ones: a markdown cell, a cell that imports numpy and builds data,
the spec cell with commented-out decorators, then cells that try a heuristic
(redefining the evolved function) and would fail if they ran.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from evolve.session import evaluate_functions
from evolve.spec import SpecError, load_spec
from sandbox import SandboxPool
from conftest import evolve

DATA_CELL = """import numpy as np
import itertools

# Two small instances in the layout of the notebook's `datasets`.
datasets = {'tiny': {'a': {'capacity': 10, 'num_items': 4, 'items': [6, 5, 4, 5]}}}
"""

SPEC_CELL = '''"""Packs items online; the priority picks the bin."""


def pack(items, bins):
  for item in items:
    valid = np.nonzero((bins - item) >= 0)[0]
    bins[valid[np.argmax(priority(item, bins[valid]))]] -= item
  return bins


# @funsearch.run
def evaluate(instances: dict) -> float:
  used = []
  for name in instances:
    inst = instances[name]
    bins = pack(inst['items'], np.array([inst['capacity'] for _ in range(inst['num_items'])]))
    used.append((bins != inst['capacity']).sum())
  return -np.mean(used)


# @funsearch.evolve
def priority(item: float, bins: np.ndarray) -> np.ndarray:
  return -(bins - item)
'''

LATER_CELL = """def priority(item, bins):
  return -np.arange(len(bins))

raise RuntimeError('a cell after the spec ran')
"""

ORLIB = """2
 small_a
 10 4 2
2
9
1
8
 small_b
 10 3 2
7
3
3
"""


def notebook(path: Path, *cells: tuple[str, str]) -> Path:
    """Write an nbformat-4 notebook of (cell type, source) pairs, sources split in lines as Jupyter saves them."""
    path.write_text(json.dumps({
        "nbformat": 4, "nbformat_minor": 0, "metadata": {"kernelspec": {"name": "python3"}},
        "cells": [{"cell_type": kind, "metadata": {}, "source": text.splitlines(keepends=True),
                   **({"outputs": [], "execution_count": None} if kind == "code" else {})} for kind, text in cells],
    }))
    return path


@pytest.fixture
def bin_packing_notebook(tmp_path: Path) -> Path:
    return notebook(tmp_path / "packing.ipynb", ("markdown", "# Bin packing\n"), ("code", DATA_CELL),
                    ("markdown", "## Skeleton\n"), ("code", SPEC_CELL), ("code", LATER_CELL))


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(1) as p:
        yield p


def test_the_spec_cell_runs_with_the_imports_of_the_earlier_cell(bin_packing_notebook: Path, tmp_path: Path,
                                                                    pool: SandboxPool) -> None:
    orlib = tmp_path / "small.txt"
    orlib.write_text(ORLIB)
    spec = load_spec(bin_packing_notebook, orlib)
    assert spec.notes == ("packing.ipynb: the spec is cells 2 (imports only), 4; cell 5 comes after it, not run",)
    assert "datasets" not in spec.program_source and "import itertools" in spec.program_source
    assert spec.function_name == "priority" and spec.entry == "evaluate"
    # Best fit: a = [2, 9, 1, 8] -> {2, 8}, {9, 1}: 2 bins; b = [7, 3, 3] -> {7, 3}, {3}: 2 bins.
    [seed] = evaluate_functions(spec, {"seed": spec.function}, "train", pool)
    assert seed.evaluation.ok, seed.evaluation.error
    assert dict(seed.evaluation.scores) == {"small": -2.0}


def test_a_data_cell_whose_names_the_spec_uses_is_taken_whole(tmp_path: Path, pool: SandboxPool) -> None:
    spec_cell = SPEC_CELL + "\n\nINPUTS = {'tiny': datasets['tiny']}\n"
    path = notebook(tmp_path / "with_data.ipynb", ("code", DATA_CELL), ("code", spec_cell))
    spec = load_spec(path)
    assert spec.notes == ("with_data.ipynb: the spec is cells 1, 2",)
    [seed] = evaluate_functions(spec, {"seed": spec.function}, "train", pool)
    assert dict(seed.evaluation.scores) == {"tiny": -2.0}


def test_eval_of_a_notebook_says_which_cells_it_took(bin_packing_notebook: Path, tmp_path: Path) -> None:
    orlib = tmp_path / "small.txt"
    orlib.write_text(ORLIB)
    first_fit = tmp_path / "first_fit.py"
    first_fit.write_text("def priority(item, bins):\n  return -np.arange(len(bins))\n")
    proc = evolve("eval", str(bin_packing_notebook), str(first_fit), "--inputs", str(orlib), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["scores"] == {"small": -2.5}  # first fit: a -> {2, 1}, {9}, {8}; b -> 2
    assert "the spec is cells 2 (imports only), 4" in proc.stderr


def test_a_spec_using_a_name_defined_only_later_is_refused_naming_the_cell(tmp_path: Path) -> None:
    spec_cell = SPEC_CELL.replace("return -(bins - item)", "return helper(bins - item)")
    path = notebook(tmp_path / "later.ipynb", ("code", "import numpy as np\n"), ("code", spec_cell),
                    ("markdown", "helpers\n"), ("code", "def helper(x):\n  return -x\n"))
    with pytest.raises(SpecError, match=r"uses `helper` \(cell 4\), defined only after it; move cell 4 above"):
        load_spec(path)
    proc = evolve("baseline", str(path))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "later.ipynb" in proc.stderr and "cell 4" in proc.stderr


@pytest.mark.parametrize(("cells", "fragment"), [
    ([("markdown", "nothing\n"), ("code", "x = 1\n")], "no code cell holds an @evolve.run"),
    ([("code", "import numpy as np\n"), ("code", SPEC_CELL.replace("  used = []", "  used = [\n"))],
     "cell 2, line 13: syntax error"),
    ([("code", "import numpy as np\n"), ("code", SPEC_CELL + "\nboom = 1 / 0\n")],
     "cell 2, line 25: running the spec failed: ZeroDivisionError"),
    ([("code", "%matplotlib inline\nimport numpy as np\n"), ("code", SPEC_CELL + "\ndef priority(i, b):\n  return b\n")],
     "`priority` is defined 2 times (cell 2, line 22 and cell 2, line 25)"),
])
def test_notebook_mistakes_name_the_cell(tmp_path: Path, cells: list[tuple[str, str]], fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(notebook(tmp_path / "nb.ipynb", *cells))
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_file_that_is_not_a_notebook_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_text("{not json")
    proc = evolve("baseline", str(path))
    assert proc.returncode == 2 and "broken.ipynb: not a notebook: invalid JSON" in proc.stderr, proc.stderr
