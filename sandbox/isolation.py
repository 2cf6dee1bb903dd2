"""Which isolation layers a sandbox wants (IsolationConfig) and which it got (Layers).

    pool = SandboxPool(2, isolation=IsolationConfig(seccomp=True))
    print(pool.layers.describe())   # "namespaces(mnt,net,pid,ipc,uts) ro-root scratch-tmpfs ..."

Every layer is detected when a worker starts; one the kernel or the user
lacks is left out and named in `Layers.missing`. A pool refuses to start
when none of the strong layers is active, unless `allow_unisolated` is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

UNISOLATED_HINT = "pass --allow-unisolated to `evolve run` (or set sandbox.isolation.allow_unisolated) to run anyway"


@dataclass(frozen=True)
class IsolationConfig:
    """The layers to apply around each candidate; each is skipped where unavailable."""

    namespaces: bool = True  # outer wrapper: user (where allowed), mount, net, pid, ipc and uts namespaces
    read_only_root: bool = True  # remount the whole file tree read-only inside the mount namespace
    landlock: bool = True  # file system (read-only allowlist, write to scratch only), TCP, signals, abstract sockets
    seccomp: bool = True  # no process creation, exec, ptrace, namespaces, sockets; signals only to itself
    drop_privileges: bool = True  # when root: run candidates as `uid`/`gid`; otherwise drop capabilities
    uid: int = 65534  # nobody
    gid: int = 65534  # nogroup
    scratch_mb: int = 64  # size of the worker's scratch tmpfs (the candidate's writable directory)
    scratch_inodes: int = 2048  # files and directories the scratch tmpfs can hold
    max_threads: int = 64  # RLIMIT_NPROC for the candidate's uid (bounds thread bombs once not root)
    allow_unisolated: bool = False  # run even when no strong layer is available

    def __post_init__(self) -> None:
        if self.scratch_mb < 1 or self.scratch_inodes < 16:
            raise ValueError("isolation.scratch_mb must be >= 1 and isolation.scratch_inodes >= 16")
        if self.max_threads < 1:
            raise ValueError(f"isolation.max_threads must be >= 1, got {self.max_threads}")
        if not (0 <= self.uid < 2**32 - 1 and 0 <= self.gid < 2**32 - 1):
            raise ValueError("isolation.uid and isolation.gid must be valid ids")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IsolationConfig:
        return cls(**data)


@dataclass(frozen=True)
class Layers:
    """What a worker actually applies, as detected at its start (sent in its ready message)."""

    namespaces: tuple[str, ...] = ()  # e.g. ("user", "mnt", "net", "pid", "ipc", "uts")
    read_only_root: bool = False
    scratch: str = ""  # the candidate's writable directory
    scratch_tmpfs: bool = False  # scratch is a size- and inode-capped tmpfs of its own
    fresh_proc: bool = False  # /proc shows only the worker's PID namespace
    run_as: str = ""  # "uid 65534" when candidates drop to it, "caps dropped" or "" (unchanged)
    landlock_abi: int = 0  # 0: not applied
    seccomp: bool = False
    missing: tuple[str, ...] = field(default_factory=tuple)  # "layer: why" for each wanted layer left out

    @property
    def isolated(self) -> bool:
        """Tell whether any strong layer (beyond rlimits and the session) is active."""
        return bool(self.namespaces or self.landlock_abi or self.seccomp or self.run_as.startswith("uid"))

    def active(self) -> list[str]:
        """Name the active layers, outermost first."""
        out = []
        if self.namespaces:
            out.append(f"namespaces({','.join(self.namespaces)})")
        if self.read_only_root:
            out.append("read-only root")
        if self.scratch_tmpfs:
            out.append("scratch tmpfs")
        if self.fresh_proc:
            out.append("own /proc")
        out.append("rlimits")
        if self.run_as:
            out.append(self.run_as)
        if self.landlock_abi:
            out.append(f"landlock v{self.landlock_abi}")
        if self.seccomp:
            out.append("seccomp")
        return out

    def describe(self) -> str:
        """One line for a run's header: active layers, then what is missing."""
        text = " + ".join(self.active())
        if self.missing:
            text += "; missing: " + "; ".join(self.missing)
        return text

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["isolated"] = self.isolated
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Layers:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("namespaces", "missing"):
            known[key] = tuple(known.get(key, ()))
        return cls(**known)
