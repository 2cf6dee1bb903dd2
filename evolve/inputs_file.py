"""Read the file given to `--inputs`, in the layouts researchers already have.

    splits = read_inputs_file(Path("binpack3.txt"))   # {"train": {"binpack3": {instance: {...}}}}

- JSON: `{split: {name: value}}`, or a flat `{name: value}` taken as `train`.
  FunSearch's bin-packing JSON, `{instance: {"capacity", "items"}}` (as its
  Weibull 5k set), is one dataset: one input named after the file, each
  instance completed with `num_items` as FunSearch's notebook has it.
  `{dataset: {instance: ...}}` (the notebook's `datasets`) is one input per
  dataset.
- OR-Library bin-packing text (`binpack1.txt` .. `binpack8.txt`): one input
  named after the file, holding its instances.
- LLM-SR CSV: one file (train), or a directory of `<split>.csv[.gz]` files
  (see `evolve.problems.llmsr_data.inputs_from_csv`).

Trusted code: it runs in the loop's process. A malformed file raises
`InputsFileError` naming the file and the input (or instance) at fault;
`evolve.spec` turns it into a `SpecError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Splits = dict[str, Mapping[str, Any]]


class InputsFileError(ValueError):
    """An inputs file that cannot be used: where (file, line) and how to fix it."""

    def __init__(self, path: Path, line: int | None, message: str, fix: str = "") -> None:
        self.path, self.line, self.message, self.fix = path, line, message, fix
        super().__init__(message)


def read_inputs_file(path: Path) -> Splits:
    """Return {split: {input name: value}} from an inputs file or an LLM-SR data directory."""
    path = Path(path)
    if path.is_dir() or path.name.endswith((".csv", ".csv.gz")):
        from evolve.problems.llmsr_data import inputs_from_csv

        try:
            return dict(inputs_from_csv(path))
        except (OSError, ValueError, EOFError) as exc:
            raise InputsFileError(path, None, f"cannot read LLM-SR data: {exc}", "pass a CSV with a header row, the target last") from exc
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputsFileError(path, None, f"cannot read the inputs file: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if _looks_like_orlib(text):
            return {"train": {path.stem: _orlib(path, text)}}
        raise InputsFileError(path, exc.lineno, f"not valid JSON: {exc.msg}",
                        "write a JSON object {name: value}, or pass OR-Library bin-packing text or an LLM-SR CSV") from exc
    if not isinstance(data, dict) or not data:
        raise InputsFileError(path, 1, "the inputs file must hold a non-empty JSON object", "write {name: value} or {'train': {...}}")
    return _bin_packing(path, data) or as_splits(data)


def as_splits(declared: Mapping[str, Any]) -> Splits:
    """Accept {split: {name: value}} or a flat {name: value} (taken as train)."""
    if "train" in declared and isinstance(declared["train"], Mapping):
        return {k: v for k, v in declared.items() if isinstance(v, Mapping)}
    return {"train": declared}


def _looks_like_orlib(text: str) -> bool:
    first = text.split(None, 1)[:1]
    return bool(first) and first[0].isdigit()


def _orlib(path: Path, text: str) -> dict[str, Any]:
    from evolve.problems.bin_packing_data import read_orlib

    try:
        return read_orlib(text)
    except ValueError as exc:
        raise InputsFileError(path, None, f"input {path.stem!r} (OR-Library bin packing): {exc}",
                        "fix the file: a count P, then per instance its name, `capacity n best`, and n sizes") from exc


def _bin_packing(path: Path, data: dict[str, Any]) -> Splits | None:
    """Read FunSearch's bin-packing JSON layouts; None when `data` is neither."""
    from evolve.problems.bin_packing_data import checked_instance, looks_like_instances

    if looks_like_instances(data):
        datasets = {path.stem: data}
    elif all(looks_like_instances(v) for v in data.values()):
        datasets = data
    elif any(looks_like_instances(v) for v in data.values()) and not any(isinstance(v, Mapping) and k == "train"
                                                                          for k, v in data.items()):
        bad = next(k for k, v in data.items() if not looks_like_instances(v))
        raise InputsFileError(path, None, f"input {bad!r} is not a set of bin-packing instances like the others",
                        "give every dataset {instance: {'capacity': c, 'items': [...]}}")
    else:
        return None
    out = {}
    for name, instances in datasets.items():
        try:
            out[name] = {k: checked_instance(k, v) for k, v in instances.items()}
        except ValueError as exc:
            raise InputsFileError(path, None, f"input {name!r}: {exc}", "fix the instance in the file") from exc
    return {"train": out}
