"""One loop per archive: the lock a loop holds for as long as it evolves a run.

    with run_lock(db):      # RunBusy if another process evolves db
        ...

`evolve finetune` takes it too (it writes the archive while no loop runs),
and `is_running` tells readers (status, the TUI) whether a loop holds it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class RunBusy(Exception):
    """Another process is running this archive's loop."""


@contextmanager
def run_lock(db: Path) -> Iterator[None]:
    """Hold the archive's lock file for as long as a loop runs on it."""
    lock_path = Path(f"{db}.lock")
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusy(f"{db} is being evolved by another process; watch it with `evolve status {db}`") from None
        yield
    finally:
        os.close(fd)


def is_running(db: Path) -> bool:
    """Tell whether a loop holds the archive's lock right now."""
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
