"""evoloop on a Ray cluster: sandbox pools as one actor per node, language-model proposers as GPU actors.

    evolve run bin_packing_or --executor ray --ray-address auto

Its modules `pool`, `node` and `proposer` import Ray (the `ray` extra); this
package's helpers import them on demand and say how to install Ray when it is
missing. `evolve.executor` and a local run never import it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evolve.errors import ConfigError
from evolve.executor import RAY_HINT, ExecutorConfig
from sandbox import IsolationConfig, Limits

if TYPE_CHECKING:
    from evolve.config import RunConfig
    from evolve.distributed.pool import RayPool
    from evolve.proposers.base import Proposer

# Proposers that run as Ray actors (vllm and transformers on GPU nodes, llamacpp on any); `openai` already talks
# to a server and stays in the driver.
REMOTE_PROPOSERS = ("llamacpp", "transformers", "vllm")


def _ray_missing(exc: ImportError) -> bool:
    return (exc.name or "").split(".")[0] == "ray"


def _import(module: str, name: str) -> Any:
    """Import `name` from evolve.distributed.`module` (which imports Ray), or raise ConfigError with the hint."""
    try:
        return getattr(importlib.import_module(f"evolve.distributed.{module}"), name)
    except ImportError as exc:
        if _ray_missing(exc):
            raise ConfigError(f"--executor ray needs Ray, which is not installed; {RAY_HINT}") from None
        raise


def ray_pool(config: ExecutorConfig, limits: Limits, isolation: IsolationConfig) -> RayPool:
    """Start a RayPool, or raise ConfigError with the install hint when Ray is missing."""
    return _import("pool", "RayPool")(config, limits, isolation)


def remote_proposer(name: str, config: RunConfig, api_key: str | None = None) -> Proposer:
    """Return a language-model proposer that runs in a Ray actor (started on its first batch)."""
    return _import("proposer", "RemoteProposer")(name, config, api_key)
