"""One loop per archive: the lock a loop holds for as long as it evolves a run.

    with run_lock(db):      # RunBusy if another process evolves db
        ...

`evolve finetune` takes it too (it writes the archive while no loop runs),
and `is_running` tells readers (status, the TUI) whether a loop holds it.

Two locks, both released by the kernel when the process dies: an flock on
`DB.lock`, and a Unix socket bound in the abstract namespace under the
archive file's device and inode. A user who deletes the lock file (it stays
after every run, and invites cleaning up) cannot remove the second one, so a
second loop is still refused. (The archive file itself is not flocked:
closing any descriptor of it would drop SQLite's own POSIX locks in this
process.)
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class RunBusy(Exception):
    """Another process is running this archive's loop."""


@contextmanager
def run_lock(db: Path) -> Iterator[None]:
    """Hold the archive's lock file for as long as a loop runs on it."""
    busy = RunBusy(f"{db} is being evolved by another process; watch it with `evolve status {db}`")
    lock_path = Path(f"{db}.lock")
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
    sock = None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        sock = _claim(db, tries=10)  # a status probe may hold it for a moment
        if sock is None:
            raise busy
        yield
    finally:
        if sock is not None:
            sock.close()
        os.close(fd)


def _name(db: Path) -> str | None:
    """Return the abstract socket name of an archive: its file's device and inode (None: no file yet)."""
    try:
        st = os.stat(db)
    except OSError:
        return None
    return f"\0evoloop-run-{st.st_dev}-{st.st_ino}"


def _claim(db: Path, tries: int = 1) -> socket.socket | None:
    """Bind the archive's abstract socket; None when another process holds it (no file yet: nothing to bind)."""
    name = _name(db)
    for attempt in range(tries):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if name is None:
            return sock
        try:
            sock.bind(name)
        except OSError:  # EADDRINUSE: a live loop holds it (or a status probe, for a moment)
            sock.close()
            if attempt + 1 < tries:
                time.sleep(0.02)
            continue
        return sock
    return None


def is_running(db: Path) -> bool:
    """Tell whether a loop holds the archive's lock right now."""
    probe = _claim(db)
    if probe is None:
        return True
    probe.close()
    lock_path = Path(f"{db}.lock")
    if not lock_path.exists():
        return False
    fd = os.open(lock_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
