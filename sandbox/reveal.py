"""Let the candidates' uid reach the Python install when it lives under a directory that uid cannot enter.

    masked = reveal(needed_paths(), uid=65534, gid=65534)   # in the worker's mount namespace, as root

A usual container layout puts Python under the root user's home (mode
0700): the worker, still root, imports from it, but a candidate that has
dropped to an unprivileged uid cannot even traverse `/root`, so every
module the worker did not preload fails with ModuleNotFoundError.

`reveal` finds, for each path the worker imports from, the outermost
ancestor that the candidates' uid cannot search, and mounts a small empty
tmpfs over it (mode 0755) holding only a skeleton of directories down to
the needed trees, which are cloned back in at the same paths. The
candidate then sees the Python install where it always was, and nothing
else that lived under the masked directory: no `~/.ssh`, no dotfiles, no
siblings of the prefix. It changes only the worker's own mount namespace,
before the tree is remounted read-only.
"""

from __future__ import annotations

import ctypes
import os
import stat
from collections.abc import Iterable

from sandbox import procs

_OPEN_TREE, _MOVE_MOUNT = 428, 429  # the same on every architecture (added in Linux 5.2)
_OPEN_TREE_CLONE, _OPEN_TREE_CLOEXEC = 1, os.O_CLOEXEC
_AT_FDCWD, _AT_RECURSIVE, _MOVE_MOUNT_F_EMPTY_PATH = -100, 0x8000, 0x4
_MS_NOSUID, _MS_NODEV = 2, 4
MASK_OPTIONS = "size=1m,nr_inodes=4096,mode=0755"  # directories only: no file is ever written there


def searchable(path: str, uid: int, gid: int) -> bool:
    """Tell whether `uid`/`gid` (no supplementary groups) may traverse the directory `path`, by its mode bits."""
    info = os.stat(path)
    if uid == 0:
        return True
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def blocked_ancestor(path: str, uid: int, gid: int) -> str | None:
    """Return the outermost proper ancestor of `path` that `uid` cannot search, or None."""
    parts = os.path.realpath(path).split(os.sep)[1:]
    current = ""
    for part in parts[:-1]:
        current = f"{current}/{part}"
        if not searchable(current, uid, gid):
            return current
    return None


def unreachable(paths: Iterable[str], uid: int, gid: int) -> list[str]:
    """Return the existing `paths` whose ancestors keep `uid` out (what `reveal` would need to mask)."""
    return sorted({p for p in _existing(paths) if blocked_ancestor(p, uid, gid) is not None})


def plan_masks(paths: Iterable[str], uid: int, gid: int) -> dict[str, list[str]]:
    """Map each directory to mask to the needed trees under it (outermost trees only, real paths)."""
    trees = sorted({os.path.realpath(p) for p in _existing(paths)})
    outermost = [t for t in trees if not any(t != o and t.startswith(o + os.sep) for o in trees)]
    masks: dict[str, list[str]] = {}
    for tree in outermost:
        blocked = blocked_ancestor(tree, uid, gid)
        if blocked is not None:
            masks.setdefault(blocked, []).append(tree)
    # A mask inside another mask's directory would be hidden by it: keep the outer one only.
    for inner in [m for m in masks if any(m != o and m.startswith(o + os.sep) for o in masks)]:
        outer = next(o for o in masks if inner != o and inner.startswith(o + os.sep))
        masks[outer].extend(masks.pop(inner))
    return masks


def reveal(paths: Iterable[str], uid: int, gid: int) -> list[str]:
    """Mask every blocking directory with a tmpfs that holds only the needed trees; return the masked directories.

    Must run in a mount namespace of the caller's own (it changes what this
    process and its children see). Raises OSError if a step fails; what
    was mounted before the failure stays, harmlessly, in this namespace.
    """
    masks = plan_masks(paths, uid, gid)
    for directory, trees in masks.items():
        # Clone the trees first: once the tmpfs covers `directory` they are out of sight.
        clones = [(tree, _open_tree(tree)) for tree in trees]
        try:
            _check(procs.libc.mount(b"evoloop-mask", directory.encode(), b"tmpfs",
                                    ctypes.c_ulong(_MS_NOSUID | _MS_NODEV), MASK_OPTIONS.encode()), f"mount {directory}")
            for tree, fd in clones:
                os.makedirs(tree, mode=0o755, exist_ok=True)
                _check(procs.libc.syscall(ctypes.c_long(_MOVE_MOUNT), ctypes.c_int(fd), b"", ctypes.c_int(_AT_FDCWD),
                                          tree.encode(), ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH)), f"move_mount {tree}")
        finally:
            for _, fd in clones:
                os.close(fd)
    return sorted(masks)


def _existing(paths: Iterable[str]) -> list[str]:
    return [p for p in paths if os.path.isabs(p) and os.path.isdir(p)]


def _open_tree(path: str) -> int:
    """Return a detached, recursive clone of the mount tree at `path` (open_tree(2))."""
    fd = int(procs.libc.syscall(ctypes.c_long(_OPEN_TREE), ctypes.c_int(_AT_FDCWD), path.encode(),
                                ctypes.c_uint(_OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_RECURSIVE)))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"open_tree {path}: {os.strerror(code)}")
    return fd


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")
