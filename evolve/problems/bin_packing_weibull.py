"""Online bin packing on Weibull-distributed items (FunSearch, Nature 2023).

Items arrive one at a time; each goes into the valid bin (remaining capacity
>= item) to which the evolved `priority` gives the highest score. As in
FunSearch, every instance starts with `num_items` empty bins, so a fresh bin
is one of the valid ones; best fit and first fit only take one when no
partly filled bin fits. Score per dataset: minus the mean number of bins used.
`priority` must return one number per valid bin; anything else is an
invalid-output failure (FunSearch would take a scalar as first fit).

Train: 4 generated datasets of one instance each (1000 items, sizes
Weibull(45, 3) clipped to [1, 100] and rounded, capacity 100). Valid: 5 more
generated instances of 5,000 items, the size of the test set, for choosing
among the best programs by train without looking at test. Test: FunSearch's Weibull 5k.
"""

import numpy as np

import evolve

# Primitive set for the genetic-programming proposer (the embedded default).
GP_PRIMITIVES = {
    "args": {"item": "scalar", "bins": "array"},
    "returns": "array",
    "operators": [
        "add", "sub", "mul", "div", "neg", "square", "sqrt", "exp", "log", "abs",
        "minimum", "maximum", "min", "max", "mean",
    ],
    "constants": [-2.0, 2.0],
}


class InvalidOutput(Exception):
    """The evolved function returned something other than one number per bin."""


def get_valid_bin_indices(item: float, bins: np.ndarray) -> np.ndarray:
    """Return indices of bins in which the item fits."""
    return np.nonzero((bins - item) >= 0)[0]


def online_binpack(items: list, bins: np.ndarray) -> np.ndarray:
    """Pack the items online; return the remaining capacity of every bin."""
    for item in items:
        valid = get_valid_bin_indices(item, bins)
        priorities = priority(item, bins[valid])
        if not isinstance(priorities, np.ndarray) or priorities.shape != valid.shape or priorities.dtype.kind not in "biuf":
            raise InvalidOutput(f"priority must return {len(valid)} numbers, got {type(priorities).__name__} "
                                f"{getattr(priorities, 'shape', '')}")
        bins[valid[np.argmax(priorities)]] -= item
    return bins


@evolve.run
def evaluate(instances: dict) -> float:
    """Return minus the mean number of bins used over the instances."""
    used = []
    for instance in instances.values():
        capacity = instance["capacity"]
        bins = np.full(instance["num_items"], capacity, dtype=float)
        bins = online_binpack(instance["items"], bins)
        used.append(int((bins != capacity).sum()))
    return -float(np.mean(used))


@evolve.evolve
def priority(item: float, bins: np.ndarray) -> np.ndarray:
    """Return the priority with which to add the item to each bin."""
    return -(bins - item)


@evolve.baseline
def first_fit(item: float, bins: np.ndarray) -> np.ndarray:
    """Prefer the first bin in which the item fits."""
    return -np.arange(len(bins), dtype=float)


@evolve.baseline
def best_fit(item: float, bins: np.ndarray) -> np.ndarray:
    """Prefer the bin left with the least space."""
    return -(bins - item)


@evolve.inputs
def load_inputs(split: str) -> dict:
    """Return {dataset name: {instance name: instance}} for a split."""
    from evolve.problems import bin_packing_data as data

    return {"train": data.weibull_train, "valid": data.weibull_valid, "test": data.weibull_test}[split]()


@evolve.metrics
def excess(split: str, inputs: dict, scores: dict) -> dict:
    """Report the excess over the lower bound ceil(sum/capacity), in percent."""
    from evolve.problems import bin_packing_data as data

    return {"excess_percent": {name: data.excess_percent(inputs[name], s) for name, s in scores.items()}}
