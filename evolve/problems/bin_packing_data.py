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
    """Parse an OR-Library bin-packing file (P, then name / `capacity n best` / n sizes).

    A malformed file raises ValueError naming the instance and the line.
    """
    tokens = [(t, number) for number, line in enumerate(text.splitlines(), start=1) for t in line.split()]
    if not tokens:
        raise ValueError("the file is empty")

    def integer(pos: int, what: str, instance: str) -> int:
        if pos >= len(tokens):
            raise ValueError(f"instance {instance!r}: the file ends where its {what} should be")
        token, line = tokens[pos]
        try:
            value = float(token)
        except ValueError:
            raise ValueError(f"instance {instance!r} (line {line}): {what} {token!r} is not a number") from None
        if not value.is_integer() or value < 0:
            raise ValueError(f"instance {instance!r} (line {line}): {what} {token!r} is not a whole number")
        return int(value)

    count, pos, out = integer(0, "number of instances", "(header)"), 1, {}
    for k in range(count):
        if pos >= len(tokens):
            raise ValueError(f"the header says {count} instances, the file holds {k}")
        name = tokens[pos][0]
        capacity, n = integer(pos + 1, "capacity", name), integer(pos + 2, "item count", name)
        integer(pos + 3, "best known number of bins", name)
        pos += 4
        items = [integer(pos + i, f"item {i + 1} of {n}", name) for i in range(n)]
        pos += n
        out[name] = checked_instance(name, {"capacity": capacity, "num_items": n, "items": items})
    if pos < len(tokens):
        raise ValueError(f"line {tokens[pos][1]}: more data after the {count} instances the header announces")
    return out


def looks_like_instances(value: Any) -> bool:
    """Tell whether `value` is {name: {"capacity", "items", ...}}: one dataset of bin-packing instances."""
    return isinstance(value, dict) and bool(value) and all(isinstance(v, dict) for v in value.values()) \
        and any("items" in v for v in value.values())


def checked_instance(name: str, raw: Any) -> Instance:
    """Return a FunSearch instance {capacity, num_items, items}; num_items defaults to the item count.

    Raises ValueError naming the instance when it cannot be packed as given.
    """
    if not isinstance(raw, dict) or "capacity" not in raw or "items" not in raw:
        raise ValueError(f"instance {name!r} needs 'capacity' and 'items'")
    capacity, items = raw["capacity"], raw["items"]
    if isinstance(capacity, bool) or not isinstance(capacity, (int, float)) or not capacity > 0:
        raise ValueError(f"instance {name!r}: capacity {capacity!r} is not a positive number")
    if not isinstance(items, list) or not all(isinstance(i, (int, float)) and not isinstance(i, bool) for i in items):
        raise ValueError(f"instance {name!r}: items must be a list of numbers")
    too_big = [i for i in items if not 0 < i <= capacity]
    if too_big:
        raise ValueError(f"instance {name!r}: item {too_big[0]!r} does not fit a bin of capacity {capacity}")
    num_items = raw.get("num_items", len(items))
    if num_items != len(items):
        raise ValueError(f"instance {name!r}: num_items is {num_items!r} but it has {len(items)} items")
    return {**raw, "capacity": capacity, "num_items": len(items), "items": items}


def or_test() -> dict[str, Dataset]:
    """OR1-OR4 from OR-Library."""
    return {f"OR{k}": read_orlib(_data_file(f"binpack{k}.txt")) for k in range(1, 5)}


def weibull_test() -> dict[str, Dataset]:
    """FunSearch's Weibull 5k test set, as one dataset of five instances."""
    raw = json.loads(_data_file("weibull_5k.json"))
    return {"Weibull 5k": {name: checked_instance(name, inst) for name, inst in raw.items()}}


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
    return _weibull(np.random.default_rng(TRAIN_SEED + 1), [f"train_{d}" for d in range(datasets)], instances, items)


def weibull_valid() -> dict[str, Dataset]:
    """Generated like the train split but the size of the test set (5 instances of 5,000 items), drawn apart from both."""
    return _weibull(np.random.default_rng(TRAIN_SEED + 2), ["Weibull 5k valid"], 5, 5000)


def _weibull(rng: np.random.Generator, names: list[str], instances: int, items: int) -> dict[str, Dataset]:
    """One dataset per name, of `instances` instances of `items` sizes each, drawn from `rng` in that order."""
    return {
        name: {
            f"w{items}_{d}_{i}": {
                "capacity": 100,
                "num_items": items,
                "items": np.clip(np.round(45 * rng.weibull(3, size=items)), 1, 100).astype(int).tolist(),
            }
            for i in range(instances)
        }
        for d, name in enumerate(names)
    }


def excess_percent(dataset: Dataset, score: float) -> float:
    """Return the excess of the mean bin count over the mean L1 bound, in percent.

    `score` is minus the mean number of bins over the dataset's instances (as
    the spec's entry returns it); the bound is ceil(sum(items) / capacity).
    This is the figure of FunSearch's Table 1.
    """
    bound = float(np.mean([math.ceil(sum(i["items"]) / i["capacity"]) for i in dataset.values()]))
    return 100.0 * (-score - bound) / bound
