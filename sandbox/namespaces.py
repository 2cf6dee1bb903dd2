"""The worker's outer wrapper, applied once at its start: namespaces, a read-only tree, a scratch tmpfs.

    info = enter(config)    # in `python -m sandbox.worker`, before numpy is imported

`enter` unshares a user namespace (where allowed), then mount, network,
PID, IPC and UTS namespaces, makes the Python install reachable by the
candidates' uid (sandbox.reveal), remounts the whole file tree read-only,
mounts a size- and inode-capped tmpfs for scratch, then forks. The calling process stays
outside as a small launcher that waits for the worker and exits with its
status; the worker continues as PID 1 of the new PID namespace, with a
/proc of its own. If the launcher dies, the kernel kills the worker
(PDEATHSIG) and with it every process of the namespace.

The new network namespace has only a loopback interface, and it is down:
no network at all, not even the loop's servers on 127.0.0.1. Each step
that fails is recorded in `NamespaceInfo.missing` and skipped.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from typing import NoReturn

from sandbox import procs, reveal

log = logging.getLogger(__name__)

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
_NAMES = {CLONE_NEWUSER: "user", CLONE_NEWNS: "mnt", CLONE_NEWNET: "net", CLONE_NEWPID: "pid",
          CLONE_NEWIPC: "ipc", CLONE_NEWUTS: "uts"}
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 2, 4, 8, 0x4000, 1 << 18
_MOUNT_SETATTR, _AT_FDCWD, _AT_RECURSIVE = 442, -100, 0x8000
_MOUNT_ATTR_RDONLY, _MOUNT_ATTR_NOSUID = 0x1, 0x2


@dataclass
class NamespaceInfo:
    """What `enter` achieved."""

    namespaces: list[str] = field(default_factory=list)
    read_only_root: bool = False
    scratch_root: str = ""  # the tmpfs mount point ("" if there is none)
    fresh_proc: bool = False
    masked: list[str] = field(default_factory=list)  # directories masked so that candidates reach Python (reveal)
    missing: list[str] = field(default_factory=list)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)  # noqa: E731
    _check(procs.libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _unshare(uid: int, gid: int, candidate: tuple[int, int]) -> list[str]:
    """Enter new namespaces; return their names. Raises OSError if none can be made.

    A user namespace comes first where the kernel allows one. Unprivileged,
    it is what makes the others possible; as root it keeps the worker's
    capabilities inside its namespaces and gives the candidates' uid a
    process count of its own (RLIMIT_NPROC counts per user namespace), so
    a thread bomb in one worker cannot starve another.
    """
    base = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS
    if uid == 0:
        c_uid, c_gid = candidate
        # Root inside maps to root outside (the worker reads the Python install as before); the candidates' ids too.
        uid_map = "0 0 1\n" + (f"{c_uid} {c_uid} 1\n" if c_uid else "")
        gid_map = "0 0 1\n" + (f"{c_gid} {c_gid} 1\n" if c_gid else "")
        maps = (uid_map, gid_map)
        if _unshare_user_mapped_from_outside(base, maps):
            return [name for bit, name in _NAMES.items() if (base | CLONE_NEWUSER) & bit]
        _check(procs.libc.unshare(ctypes.c_int(base)), "unshare")  # root, where user namespaces are refused
        return [name for bit, name in _NAMES.items() if base & bit]
    _check(procs.libc.unshare(ctypes.c_int(base | CLONE_NEWUSER)), "unshare")
    # Unprivileged, a process may map only its own ids, from inside, setgroups denied first.
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1\n"), ("gid_map", f"{gid} {gid} 1\n")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    return [name for bit, name in _NAMES.items() if (base | CLONE_NEWUSER) & bit]


def _unshare_user_mapped_from_outside(flags: int, maps: tuple[str, str]) -> bool:
    """As root: unshare a user namespace (with `flags`) and have a helper left outside write its id maps.

    Several ranges may only be mapped by a process with CAP_SETUID in the
    parent namespace, which this one no longer is once it has unshared.
    Returns False (nothing changed) where the kernel refuses user namespaces.
    """
    ready_r, ready_w = os.pipe()
    helper = os.fork()
    if helper == 0:  # stays in the parent namespaces
        code = 1
        try:
            os.close(ready_w)
            if os.read(ready_r, 1):
                target = os.getppid()
                for name, text in zip(("uid_map", "gid_map"), maps, strict=True):
                    with open(f"/proc/{target}/{name}", "w") as f:
                        f.write(text)
                code = 0
        finally:
            os._exit(code)
    os.close(ready_r)
    unshared = procs.libc.unshare(ctypes.c_int(flags | CLONE_NEWUSER)) == 0
    os.write(ready_w, b"1" if unshared else b"")
    os.close(ready_w)
    _, status = os.waitpid(helper, 0)
    if unshared and os.waitstatus_to_exitcode(status) != 0:
        # In a user namespace without ids there is no way back: stop rather than run half-set-up.
        log.error("could not map the sandbox worker's user namespace")
        os._exit(3)
    return unshared


def _read_only_root() -> None:
    """Make every mount in this namespace read-only (and nosuid), recursively."""
    attr = _MountAttr(attr_set=_MOUNT_ATTR_RDONLY | _MOUNT_ATTR_NOSUID)  # nodev would break /dev/null
    _check(procs.libc.syscall(ctypes.c_long(_MOUNT_SETATTR), ctypes.c_int(_AT_FDCWD), b"/",
                              ctypes.c_uint(_AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))),
           "mount_setattr /")


def _scratch_mount_point(needed: list[str]) -> str:
    """Return /tmp (masking the host's /tmp) unless something the worker needs lives there."""
    tmp = os.path.realpath("/tmp")
    if any(os.path.realpath(p) == tmp or os.path.realpath(p).startswith(tmp + os.sep) for p in needed):
        return tempfile.mkdtemp(prefix="evoloop-scratch-")
    return "/tmp"


def enter(
    scratch_mb: int, scratch_inodes: int, read_only: bool, needed: list[str], candidate: tuple[int, int]
) -> NamespaceInfo:
    """Wrap this process in namespaces and fork; return (in the worker, PID 1) what was achieved.

    `needed` lists the paths the worker reads (its Python and packages), kept
    visible. On failure to unshare, returns without forking.
    """
    info = NamespaceInfo()
    point = _scratch_mount_point(needed)  # before the tree turns read-only: it may make a directory
    try:
        info.namespaces = _unshare(os.getuid(), os.getgid(), candidate)
    except OSError as exc:
        info.missing.append(f"namespaces: {exc.strerror}")
        if point != "/tmp":
            os.rmdir(point)
        return info
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE, None)  # nothing we mount propagates back to the host
    if os.getuid() == 0 and candidate[0] != 0:  # candidates will drop to another uid: let it reach Python
        try:
            info.masked = reveal.reveal(needed, *candidate)
        except OSError as exc:
            info.missing.append(f"python reachable by uid {candidate[0]}: {exc.strerror}")
    if read_only:
        try:
            _read_only_root()
            info.read_only_root = True
        except OSError as exc:
            info.missing.append(f"read-only root: {exc.strerror}")
    try:
        _mount("evoloop-scratch", point, "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
               f"size={scratch_mb}m,nr_inodes={scratch_inodes},mode=0755")
        info.scratch_root = point
    except OSError as exc:
        info.missing.append(f"scratch tmpfs: {exc.strerror}")
    launcher = os.getpid()
    pid = os.fork()
    if pid:
        _wait_as_launcher(pid, point if point != "/tmp" else None)
    procs.prctl(procs.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == launcher:  # only when the PID namespace was not made
        log.warning("the worker is not PID 1 of a new PID namespace")
    try:
        _mount("proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None)
        info.fresh_proc = True
    except OSError as exc:
        info.missing.append(f"own /proc: {exc.strerror}")
    return info


def _wait_as_launcher(pid: int, made_dir: str | None) -> NoReturn:
    """Hold no pipe of the worker's, wait for it to exit, and exit with its status."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)  # the loop's pipes now belong to the worker alone: EOF when it dies
    os.closerange(3, 1 << 16)
    _, status = os.waitpid(pid, 0)
    if made_dir:
        with contextlib.suppress(OSError):
            os.rmdir(made_dir)
    code = os.waitstatus_to_exitcode(status)
    os._exit(code if code >= 0 else 128 - code)


def needed_paths() -> list[str]:
    """Return the trees the worker imports from: Python's prefixes and sys.path entries."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, *[p for p in sys.path if p]}
    return sorted(p for p in paths if os.path.isabs(p))
