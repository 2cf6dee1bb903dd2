"""Landlock rulesets through ctypes: read-only code, one writable scratch directory, no TCP, no signals out.

    abi = abi_version()                       # 0 where the kernel has no Landlock
    fd = build_ruleset(abi, read=[...], write=[scratch], devices=["/dev/null"])
    restrict_self(fd)                         # in the child, after PR_SET_NO_NEW_PRIVS

The worker builds the ruleset once; each child enforces it on itself. Every
access right the kernel's ABI knows is handled, so whatever no rule grants
is denied: no reads outside the listed trees (secrets, /proc, the loop's
archive), no writes outside scratch, no exec. From ABI 4 TCP bind and
connect are denied, and from ABI 6 the child can neither signal processes
outside its domain nor reach abstract UNIX sockets created outside it.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable

from sandbox import procs

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR, MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1}  # ABI >= 5: all 16 bits
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # the rights a rule on a file may carry
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

READ = READ_FILE | READ_DIR
WRITE = (
    READ | WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO | MAKE_SYM | REFER
    | TRUNCATE
)
DEVICE = READ_FILE | WRITE_FILE | TRUNCATE  # /dev/null and friends: open for writing truncates


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is packed: 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _syscall(number: int, *args: object) -> int:
    """Make a raw system call, raising OSError when it returns -1."""
    result = int(procs.libc.syscall(ctypes.c_long(number), *args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return result


def abi_version() -> int:
    """Return the kernel's Landlock ABI version, 0 where Landlock is absent or disabled."""
    try:
        return _syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    except OSError:  # ENOSYS (not built in) or EOPNOTSUPP (not enabled at boot)
        return 0


def handled_fs(abi: int) -> int:
    """Return every file system right that ABI `abi` knows."""
    return _FS_BY_ABI.get(abi, (1 << 16) - 1)


def build_ruleset(abi: int, read: Iterable[str], write: Iterable[str], devices: Iterable[str]) -> int:
    """Create a ruleset granting READ under `read`, WRITE under `write` and DEVICE on `devices`; return its fd.

    Paths that do not exist are skipped. The fd is close-on-exec.
    """
    assert abi >= 1, abi
    handled = handled_fs(abi)
    attr = _RulesetAttr(handled_access_fs=handled)
    size = 8
    if abi >= 4:
        attr.handled_access_net, size = NET_BIND_TCP | NET_CONNECT_TCP, 16
    if abi >= 6:
        attr.scoped, size = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL, 24
    ruleset = _syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        for paths, rights in ((read, READ), (write, WRITE), (devices, DEVICE)):
            for path in paths:
                _allow(ruleset, path, rights & handled)
    except OSError:
        os.close(ruleset)
        raise
    return ruleset


def _allow(ruleset: int, path: str, rights: int) -> None:
    """Add a path-beneath rule for `path` (a directory tree, or one file)."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not os.path.isdir(path):
            rights &= _FILE_RIGHTS
        rule = _PathBeneathAttr(allowed_access=rights, parent_fd=fd)
        _syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule), ctypes.c_uint32(0))
    finally:
        os.close(fd)


def restrict_self(ruleset: int) -> None:
    """Enforce `ruleset` on this process (single-threaded, no_new_privs already set)."""
    _syscall(_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
