"""Run configuration: one frozen dataclass per part, nested, from TOML plus overrides.

A TOML file has one table per part::

    proposer = "gp"
    [loop]
    budget = 5000
    [islands]
    num_islands = 10
    [sandbox]
    workers = 2
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from evolve.errors import ConfigError
from evolve.executor import ExecutorConfig
from evolve.proposers.gp import GPConfig
from finetune.config import FinetuneConfig
from evolve.proposers.lm import LlamaCppConfig, OpenAIConfig, SamplingConfig, TransformersConfig, VLLMConfig
from evolve.proposers.mixed import ProposerMix
from islands import IslandsConfig
from sandbox import Limits
from sandbox.isolation import IsolationConfig


@dataclass(frozen=True)
class LoopConfig:
    """How long to search and how candidates are batched."""

    budget: int = 2000  # samples (candidates proposed) over the whole run, resumes included
    time_limit_s: float | None = None  # stop after this much wall time in this session
    prompts_per_batch: int = 8  # prompts sampled from the islands per batch
    samples_per_prompt: int = 2  # candidates asked of the proposer per prompt
    seed: int = 0  # seeds the one RNG behind island sampling and the GP proposer
    # Evaluation cascade: a candidate that scores below its island's best on the first train input is
    # recorded `culled`, and its other inputs are not run. Only where there are several train inputs and
    # the sandbox's scores are real (not a spec whose `@evolve.score` scores in trusted code).
    cascade: bool = False

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise ConfigError(f"loop.budget must be >= 1, got {self.budget}")
        if self.time_limit_s is not None and self.time_limit_s <= 0:
            raise ConfigError(f"loop.time_limit_s must be > 0, got {self.time_limit_s}")
        if self.prompts_per_batch < 1 or self.samples_per_prompt < 1:
            raise ConfigError("loop.prompts_per_batch and loop.samples_per_prompt must be >= 1")


@dataclass(frozen=True)
class SandboxConfig:
    """How candidates are run."""

    workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))  # parallel evaluations
    timeout_s: float = 30.0  # wall clock per candidate, all train inputs together
    memory_mb: int = 1024  # address space a candidate may add to its worker's
    isolation: IsolationConfig = field(default_factory=IsolationConfig)  # [sandbox.isolation]: the layers

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"sandbox.workers must be >= 1, got {self.workers}")
        if self.timeout_s <= 0 or self.memory_mb < 16:
            raise ConfigError("sandbox.timeout_s must be > 0 and sandbox.memory_mb >= 16")

    @property
    def limits(self) -> Limits:
        """The limits of one candidate's run (all its train inputs together)."""
        return Limits(timeout_s=self.timeout_s, memory_mb=self.memory_mb)


@dataclass(frozen=True)
class RunConfig:
    """Everything that shapes a run; stored in the archive so `resume` reuses it."""

    proposer: ProposerMix = field(default_factory=lambda: ProposerMix.parse("gp"))  # one name, or a weighted mix such as "vllm:0.9,gp:0.1"
    loop: LoopConfig = field(default_factory=LoopConfig)
    islands: IslandsConfig = field(default_factory=IslandsConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    gp: GPConfig = field(default_factory=GPConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # every language-model proposer
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    llamacpp: LlamaCppConfig = field(default_factory=LlamaCppConfig)  # [llamacpp]: a GGUF model on this machine's CPU
    transformers: TransformersConfig = field(default_factory=TransformersConfig)
    vllm: VLLMConfig = field(default_factory=VLLMConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)  # [finetune]: LoRA rounds during the run
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # [executor]: local, or Ray (evolve.executor)

    def __post_init__(self) -> None:
        if isinstance(self.proposer, str):  # RunConfig(proposer="vllm:0.9,gp:0.1") and every config file
            object.__setattr__(self, "proposer", ProposerMix.parse(self.proposer))

    def to_dict(self) -> dict[str, Any]:
        """Return plain data (what TOML and the archive hold): the proposer mix as its text."""
        return {**dataclasses.asdict(self), "proposer": str(self.proposer)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        return _build(cls, data, "")

    def replace(self, **parts: Mapping[str, Any]) -> RunConfig:
        """Return a copy with some fields of some parts overridden ({part: {field: value}})."""
        merged = self.to_dict()
        for part, values in parts.items():
            if isinstance(values, Mapping):
                merged[part] = {**merged[part], **values}
            else:
                merged[part] = values
        return RunConfig.from_dict(merged)


def load_config(path: Path | None) -> RunConfig:
    """Read a TOML config file (None: the defaults)."""
    if path is None:
        return RunConfig()
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return RunConfig.from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    """Build a dataclass from a mapping, rejecting unknown keys and wrong types by name."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or 'config'}: expected a table, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        key = f"{where}.{name}" if where else name
        if hint is ProposerMix:
            if not isinstance(value, str):
                raise ConfigError(f"{key}: expected a string such as \"gp\" or \"vllm:0.9,gp:0.1\", got {value!r}")
            kwargs[name] = ProposerMix.parse(value)
        elif dataclasses.is_dataclass(hint):
            kwargs[name] = _build(cast(type, hint), value, key)
        else:
            kwargs[name] = _coerce(value, hint, key)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where + ': ' if where else ''}{exc}") from exc


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check a scalar against its annotation; ints are accepted where floats are."""
    origin = typing.get_origin(hint)
    options = typing.get_args(hint) if origin in (typing.Union, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for option in options:
        base = typing.get_origin(option) or option
        if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if base is typing.Literal and value in typing.get_args(option):
            return value
        if base is tuple and isinstance(value, (list, tuple)):
            return tuple(value)
        if isinstance(base, type) and isinstance(value, base) and not (base is int and isinstance(value, bool)):
            return value
    literals = [v for o in options if typing.get_origin(o) is typing.Literal for v in typing.get_args(o)]
    if literals:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, literals))}")
    raise ConfigError(f"{where}: {value!r} is not a valid {getattr(hint, '__name__', hint)}")
