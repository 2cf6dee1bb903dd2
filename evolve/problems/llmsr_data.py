"""Trusted data helpers for the LLM-SR equation problems (oscillator1/2, bactgrow, stressstrain).

    from evolve.problems import llmsr_data
    inputs = llmsr_data.load_inputs("oscillator1", "test")  # {"test_id": {...}, "test_ood": {...}}

Only a spec's `@evolve.inputs` and `@evolve.metrics` functions import this
module, in the loop's process; candidates never pay for it.

Each input is LLM-SR's `data` mapping, `{"inputs": X, "outputs": y}` (X of
shape (N, columns), y of shape (N,)). On the test splits it also carries the
train split as `fit_inputs` / `fit_outputs`: the constants are always fitted
on train, and the score is minus the MSE on the input's own rows.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

PROBLEMS = ("oscillator1", "oscillator2", "bactgrow", "stressstrain")
SPLITS = ("train", "test_id", "test_ood")
# `test` is what `evolve baseline` and `evolve best --split test` report: both held-out splits.
TEST_SPLITS = {"test": ("test_id", "test_ood"), "test_id": ("test_id",), "test_ood": ("test_ood",)}

Table = tuple[tuple[str, ...], np.ndarray, np.ndarray]  # (column names, X (N, c), y (N,))


def data_dir(problem: str) -> Path:
    """Return the packaged directory of one problem's CSV files."""
    return Path(str(resources.files("evolve.problems").joinpath("data", "llmsr", problem)))


def read_table(path: Path) -> Table:
    """Read an LLM-SR CSV (optionally gzipped): a header row, the target in the last column."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        header = tuple(fh.readline().strip().split(","))
        values = np.loadtxt(fh, delimiter=",", dtype=np.float64, ndmin=2)
    if values.shape[1] != len(header) or len(header) < 2:
        raise ValueError(f"{path}: expected {len(header)} columns, found {values.shape[1]}")
    return header, values[:, :-1].copy(), values[:, -1].copy()


@functools.lru_cache(maxsize=32)
def table(problem: str, split: str) -> Table:
    """Return one packaged split of a built-in problem."""
    if problem not in PROBLEMS or split not in SPLITS:
        raise KeyError(f"{problem}/{split}")
    return read_table(data_dir(problem) / f"{split}.csv.gz")


def load_inputs(problem: str, split: str) -> dict[str, dict[str, np.ndarray]]:
    """Return {input name: data} for a split: train, test_id, test_ood or test (both)."""
    _, x_train, y_train = table(problem, "train")
    if split == "train":
        return {"train": {"inputs": x_train, "outputs": y_train}}
    out = {}
    for name in TEST_SPLITS[split]:  # KeyError for an unknown split: the loader's "no such split"
        _, x, y = table(problem, name)
        out[name] = {"inputs": x, "outputs": y, "fit_inputs": x_train, "fit_outputs": y_train}
    return out


def nmse(inputs: Mapping[str, Mapping[str, Any]], scores: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Turn scores (minus the MSE) into NMSE = MSE / var(y), LLM-SR's reported figure."""
    return {"nmse": {name: float(-score / np.var(inputs[name]["outputs"])) for name, score in scores.items()}}


def find_split_files(directory: Path) -> dict[str, Path]:
    """Return {split: file} for the `<split>.csv[.gz]` files in a directory."""
    found: dict[str, Path] = {}
    for path in sorted(Path(directory).iterdir()):
        for suffix in (".csv.gz", ".csv"):
            if path.name.endswith(suffix):
                found.setdefault(path.name[: -len(suffix)], path)
    return found


def inputs_from_csv(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Read LLM-SR data for a spec in LLM-SR's own format: {split: {"data": {"inputs", "outputs"}}}.

    `path` is one CSV file (taken as train) or a directory of `<split>.csv[.gz]`
    files, such as LLM-SR's `data/oscillator1/`. The splits are the files
    there; when there is no `test.csv`, `test` is the held-out splits together
    (`test_id` and `test_ood`, one input each), as for the built-in problems.
    """
    path = Path(path)
    files = find_split_files(path) if path.is_dir() else {"train": path}
    if "train" not in files:
        found = ", ".join(p.name for p in files.values()) or "no <split>.csv[.gz] file"
        raise ValueError(f"{path}: no train.csv or train.csv.gz (found: {found})")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for split, file in files.items():
        _, x, y = read_table(file)
        out[split] = {"data": {"inputs": x, "outputs": y}}
    held_out = [s for s in out if s != "train"]
    if "test" not in out and held_out:
        out["test"] = {s: out[s]["data"] for s in held_out}
    return out
