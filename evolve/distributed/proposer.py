"""A language-model proposer living in a Ray actor on a GPU node, restarted by Ray if it dies.

    proposer = RemoteProposer("vllm", config)      # nothing starts yet
    proposer.propose(prompts, n=4)                 # the actor starts on a node with a free GPU

The islands and the archive stay with the driver: prompts go to the actor,
candidate texts (plain strings, parsed by the driver as always) come back.
An actor that dies is restarted by Ray (`executor.proposer_restarts` times)
and the call that was running is retried there; past that, the run stops
with a ProposerError and `evolve resume` continues it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import ray

from evolve.config import RunConfig
from evolve.errors import ConfigError
from evolve.proposers.base import AdapterUser, Prompt, Proposal, ProposerError, ProposerInterrupted
from evolve.proposers.build import lm_proposer

log = logging.getLogger(__name__)

SCHEDULE_TIMEOUT_S = 600.0  # for a node with the GPUs asked for to take the actor
CALL_TIMEOUT_S = 3600.0  # one batch, the first one loading the model included
WAIT_POLL_S = 0.25  # how often a waiting propose() looks for an interrupt


class ProposerActor:
    """Runs one language-model proposer (built from the run's config) inside a Ray actor."""

    def __init__(self, name: str, config: dict[str, Any], api_key: str | None) -> None:
        self.proposer = lm_proposer(name, RunConfig.from_dict(config), api_key)
        self.instance = uuid.uuid4().hex  # a restart is a new instance, counting tokens from zero

    def ready(self) -> tuple[str, int]:
        """Return the node id and process id this actor runs in."""
        return ray.get_runtime_context().get_node_id(), os.getpid()

    def propose(self, prompts: Sequence[Prompt], n: int) -> tuple[list[Proposal], str, int]:
        """Return the proposals, this instance and its tokens generated so far."""
        return self.proposer.propose(prompts, n), self.instance, self.proposer.generated_tokens

    def use_adapter(self, path: str, control_share: float) -> None:
        users = self.proposer.adapter_users()
        if not users:
            raise ProposerError(f"the {self.proposer.name} proposer cannot switch adapters")
        for user in users:
            user.use_adapter(path, control_share=control_share)

    def close(self) -> None:
        self.proposer.close()


class RemoteProposer:
    """The Proposer seam over `executor.proposer_replicas` ProposerActors; started lazily, on the first call.

    A batch's prompts are split in contiguous, nearly equal parts, one per
    replica (each on its own GPU), and answered in parallel; replica i is
    seeded with the run's seed + i, so a run stays reproducible.
    """

    def __init__(self, name: str, config: RunConfig, api_key: str | None = None) -> None:
        self.name = name
        self.model = str(getattr(config, name).model)
        if not self.model:  # the rest is checked where the model lives, when the actors start
            raise ConfigError(f"the {name} proposer needs --model (a path or name its Ray node can load)")
        self.generated_tokens = 0  # over every actor's life, restarts included
        self._config, self._api_key = config, api_key
        self._actors: list[Any] = []
        self._interrupted = threading.Event()
        self._tokens_seen: dict[int, tuple[str, int]] = {}  # replica -> (actor instance, its own count) at its last answer

    def _started(self) -> list[Any]:
        if self._actors:
            return self._actors
        executor, seed = self._config.executor, self._config.loop.seed
        actors = [
            ray.remote(ProposerActor).options(
                num_gpus=executor.proposer_gpus, num_cpus=0,  # placed by its GPUs; 0 GPUs: anywhere
                max_restarts=executor.proposer_restarts, max_task_retries=executor.proposer_restarts,
            ).remote(self.name, self._config.replace(loop={"seed": seed + i}).to_dict(), self._api_key)
            for i in range(executor.proposer_replicas)
        ]
        try:
            nodes = ray.get([a.ready.remote() for a in actors], timeout=SCHEDULE_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            for actor in actors:
                ray.kill(actor)
            raise ProposerError(
                f"Ray could not place {len(actors)} {self.name} proposer(s) in {SCHEDULE_TIMEOUT_S:g}s (each asks for "
                f"{executor.proposer_gpus:g} GPU(s)): add GPU nodes, or lower executor.proposer_replicas or proposer_gpus"
            ) from None
        except ray.exceptions.RayError as exc:
            raise ProposerError(f"the {self.name} proposer could not start on Ray: {_first_line(exc)}") from exc
        log.info("%s proposer on Ray node(s) %s", self.name, ", ".join(node[:8] for node, _ in nodes))
        self._actors = actors
        return actors

    def propose(self, prompts: Sequence[Prompt], n: int) -> list[Proposal]:
        actors = self._started()
        parts = _split(list(prompts), len(actors))
        calls = [(i, actors[i].propose.remote(part, n)) for i, part in enumerate(parts) if part]
        refs = [ref for _, ref in calls]
        self._interrupted.clear()
        try:
            self._wait(refs)
            answers = ray.get(refs, timeout=CALL_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise ProposerError(f"the {self.name} proposer did not answer in {CALL_TIMEOUT_S:g}s") from None
        except ray.exceptions.RayTaskError as exc:  # the proposer itself raised: its own error, one line
            raise ProposerError(_first_line(getattr(exc, "cause", None) or exc)) from None
        except ray.exceptions.RayError as exc:  # an actor died past its restarts
            raise ProposerError(f"the {self.name} proposer's Ray actor died: {_first_line(exc)}; "
                                "continue with `evolve resume`") from exc
        out: list[Proposal] = []
        for (replica, _), (answered, instance, tokens) in zip(calls, answers, strict=True):
            seen_instance, seen = self._tokens_seen.get(replica, ("", 0))
            self.generated_tokens += tokens - (seen if seen_instance == instance else 0)  # a restart counts from zero
            self._tokens_seen[replica] = (instance, tokens)
            out.extend(answered)
        return out

    def _wait(self, refs: list[Any]) -> None:
        """Wait for every call, looking for an interrupt between polls; an interrupt cancels them all."""
        deadline = time.monotonic() + CALL_TIMEOUT_S
        pending = list(refs)
        while pending and time.monotonic() < deadline:
            if self._interrupted.is_set():
                for ref in refs:
                    ray.cancel(ref, force=False)  # the actor's task raises; the actor itself lives on
                raise ProposerInterrupted("the batch was abandoned")
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=WAIT_POLL_S)

    def interrupt(self) -> None:
        self._interrupted.set()

    def notices(self) -> list[str]:
        return []

    def use_adapter(self, path: str, control_share: float = 0.0) -> None:
        """Switch every replica to the adapter at `path` (a directory their nodes can read: shared storage)."""
        ray.get([a.use_adapter.remote(str(path), control_share) for a in self._started()], timeout=CALL_TIMEOUT_S)

    def adapter_users(self) -> Sequence[AdapterUser]:
        return (self,)

    def close(self) -> None:
        """Stop the actors (a later call starts them again)."""
        if ray.is_initialized():  # else Ray (and every actor with it) is gone already
            for actor in self._actors:
                ray.kill(actor)
        self._actors = []

    def actor_pids(self) -> list[int]:
        """Return the process id of each replica's actor (for operators and tests)."""
        return [pid for _, pid in ray.get([a.ready.remote() for a in self._started()], timeout=60)]


def _split(items: list[Prompt], parts: int) -> list[list[Prompt]]:
    """Cut `items` into `parts` contiguous pieces whose sizes differ by at most one."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:300]
