"""What a run's archive recorded at its start, read back: the spec and the configuration.

    spec = recorded_spec(archive)        # the spec's source as stored, not the file as it is now
    config = recorded_config(archive, {"loop": {"budget": 5000}})
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evolve.archive import Archive, ArchiveError
from evolve.config import RunConfig
from evolve.spec import Spec, load_spec, parse_spec, read_inputs_file


def recorded_spec(archive: Archive) -> Spec:
    """Reload the spec a run was started with (its source as stored in the archive)."""
    info = archive.run_info()["spec"]
    if info["builtin"]:
        return load_spec(info["name"])
    inputs_file = info.get("inputs_file")
    extra = read_inputs_file(Path(inputs_file)) if inputs_file else None
    return parse_spec(info["source"], Path(info["path"]), name=info["name"], extra_inputs=extra)


def recorded_config(archive: Archive, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Return the run's stored configuration, with `overrides` ({part: {field: value}}) applied."""
    info = archive.run_info()
    if "config" not in info:
        raise ArchiveError(f"{archive.path} is not an evoloop archive (its run record has no configuration)")
    return RunConfig.from_dict(info["config"]).replace(**(overrides or {}))
