"""Load and generate the online bin-packing instances of the built-in problems.

Trusted loader code: it runs in the loop's process (from a spec's
`@evolve.inputs` function), never in the sandbox. An instance is a dict
`{"capacity": int, "num_items": int, "items": list[int]}`, as in FunSearch.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

import numpy as np

Instance = dict[str, Any]
Dataset = dict[str, Instance]  # instance name -> instance

TRAIN_SEED = 20231214  # fixed: every run trains on the same generated instances


def _data_file(name: str) -> str:
    return resources.files("evolve.problems").joinpath("data", name).read_text()


def read_orlib(text: str) -> Dataset:
    """Parse an OR-Library bin-packing file (P, then name / `capacity n best` / n sizes)."""
    tokens = text.split()
    count, pos, out = int(tokens[0]), 1, {}
    for _ in range(count):
        name = tokens[pos]
        capacity, n = int(tokens[pos + 1]), int(tokens[pos + 2])
        pos += 4  # name, capacity, n, best known
        items = [int(float(t)) for t in tokens[pos : pos + n]]
        pos += n
        assert len(items) == n, f"{name}: expected {n} items"
        out[name] = {"capacity": capacity, "num_items": n, "items": items}
    return out


def or_test() -> dict[str, Dataset]:
    """OR1-OR4 from OR-Library."""
    return {f"OR{k}": read_orlib(_data_file(f"binpack{k}.txt")) for k in range(1, 5)}


def weibull_test() -> dict[str, Dataset]:
    """FunSearch's Weibull 5k test set, as one dataset of five instances."""
    raw = json.loads(_data_file("weibull_5k.json"))
    return {
        "Weibull 5k": {
            name: {"capacity": inst["capacity"], "num_items": len(inst["items"]), "items": inst["items"]}
            for name, inst in raw.items()
        }
    }


def uniform_train(datasets: int = 4, instances: int = 5, items: int = 120) -> dict[str, Dataset]:
    """Generate OR-like instances: sizes uniform in [20, 100], capacity 150."""
    rng = np.random.default_rng(TRAIN_SEED)
    return {
        f"train_{d}": {
            f"u{items}_{d}_{i}": {
                "capacity": 150,
                "num_items": items,
                "items": rng.integers(20, 100, size=items, endpoint=True).tolist(),
            }
            for i in range(instances)
        }
        for d in range(datasets)
    }


def weibull_train(datasets: int = 4, instances: int = 1, items: int = 1000) -> dict[str, Dataset]:
    """Generate Weibull(45, 3) sizes clipped to [1, 100] and rounded, capacity 100."""
    rng = np.random.default_rng(TRAIN_SEED + 1)
    return {
        f"train_{d}": {
            f"w{items}_{d}_{i}": {
                "capacity": 100,
                "num_items": items,
                "items": np.clip(np.round(45 * rng.weibull(3, size=items)), 1, 100).astype(int).tolist(),
            }
            for i in range(instances)
        }
        for d in range(datasets)
    }


def excess_percent(dataset: Dataset, score: float) -> float:
    """Return the excess of the mean bin count over the mean L1 bound, in percent.

    `score` is minus the mean number of bins over the dataset's instances (as
    the spec's entry returns it); the bound is ceil(sum(items) / capacity).
    This is the figure of FunSearch's Table 1.
    """
    bound = float(np.mean([math.ceil(sum(i["items"]) / i["capacity"]) for i in dataset.values()]))
    return 100.0 * (-score - bound) / bound
