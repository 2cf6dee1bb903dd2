"""Linux process helpers for the sandbox: prctl flags, memory readings, reaping.

Everything here is Linux-only (prctl, /proc); the sandbox does not run elsewhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import time
from collections.abc import Iterable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
_PR_SET_CHILD_SUBREAPER = 36
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
libc = ctypes.CDLL(None, use_errno=True)


def prctl(option: int, value: int) -> None:
    """Call prctl(2) with one argument, raising OSError on failure."""
    if libc.prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def become_subreaper() -> None:
    """Adopt this process's orphaned descendants instead of letting init adopt them.

    A candidate can fork and then `setsid()` to leave the process group that
    the worker kills; as a subreaper the worker still sees such processes as
    its own children, so `reap_children` can find and kill them.
    """
    prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when `parent`, the process that forked it, dies."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the flag was set: nobody would deliver the signal
        os._exit(1)


def vm_size_bytes() -> int:
    """Return this process's virtual address-space size (what RLIMIT_AS caps)."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[0]) * _PAGE_SIZE


def anon_rss_bytes() -> int:
    """Return this process's resident anonymous memory.

    A forked child's RSS starts near this figure, not the full RSS: fork
    copies the mappings of anonymous pages, while file-backed pages (shared
    libraries) count only once the child touches them.
    """
    with open("/proc/self/statm", "rb") as f:
        fields = f.read().split()
    return (int(fields[1]) - int(fields[2])) * _PAGE_SIZE  # resident - shared


def parent_pids() -> dict[int, int]:
    """Map every live pid to its parent's pid, scanning /proc."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # exited while we looked
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        out[int(name)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
    return out


def descendants(roots: Iterable[int]) -> set[int]:
    """Return every process below `roots` (not the roots), zombies included, from one scan of /proc."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parent_pids().items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def command_line(pid: int) -> str:
    """Return a process's command line for a message ("" once it has exited; "[name]" for a zombie or kernel thread)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().rstrip(b"\0").split(b"\0")
        if argv != [b""]:
            return " ".join(a.decode(errors="replace") for a in argv)
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f"[{f.read().decode(errors='replace').strip()}]"
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Tell whether `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] != b"Z"


def _live_children() -> list[int]:
    """Return the pids whose parent is this process."""
    me = os.getpid()
    return [pid for pid, ppid in parent_pids().items() if ppid == me]


def reap_children(timeout_s: float) -> int:
    """SIGKILL and reap every child of this process; return how many outlived `timeout_s`.

    `waitpid(-1, WNOHANG)` answers cheaply in the common case: ECHILD means
    nothing is left. Only when live children remain is /proc scanned. Each
    round kills one generation; grandchildren of a killed process become ours
    (we are a subreaper) and are found in the next round.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return 0
        if pid:
            continue
        live = _live_children()
        if time.monotonic() > deadline:
            log.warning("%d leftover candidate processes would not die: %s", len(live), live)
            return len(live)
        for child in live:
            with contextlib.suppress(ProcessLookupError):  # it died meanwhile
                os.kill(child, signal.SIGKILL)
        time.sleep(0.001)
