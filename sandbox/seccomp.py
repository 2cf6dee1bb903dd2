"""A seccomp filter for candidate processes, assembled by hand as classic BPF.

    fil = Filter(native_arch())         # in the worker, once
    set_no_new_privs()                  # in the child, after fork
    fil.install(os.getpid())

It is a deny list: numpy, scipy and plain Python keep every system call they
use, while these are refused:

- killed at once (the run ends as `forbidden`, by SIGSYS): creating
  processes (fork, vfork, clone without CLONE_THREAD or with a namespace
  flag), exec, ptrace and cross-process memory access, namespaces (unshare,
  setns), mounts, io_uring (its operations bypass seccomp), BPF, perf,
  kernel keyrings and modules, and other administrative calls;
- failed with EPERM: sockets, setsid/setpgid, signals to any process but
  itself (kill, tgkill, rt_sigqueueinfo, pidfds), prlimit on another process;
- failed with ENOSYS: clone3, so that glibc falls back to clone, whose flags
  a classic BPF filter can read (clone3 passes them in memory).

Threads stay allowed (clone with CLONE_THREAD); RLIMIT_NPROC and the address
space cap bound how many.
"""

from __future__ import annotations

import ctypes
import errno
import platform
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox import procs

# BPF opcodes (linux/filter.h, linux/bpf_common.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
# Return actions (linux/seccomp.h).
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
# Offsets into struct seccomp_data: nr, arch, then args[6] as u64 (low half first: little endian).
_NR, _ARCH = 0, 4


def _arg(i: int) -> int:
    return 16 + 8 * i


CLONE_THREAD = 0x00010000
_CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
_X32_SYSCALL_BIT = 0x40000000
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
_SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1, 1 << 2

_KILLED = (
    "fork vfork execve execveat ptrace process_vm_readv process_vm_writev process_madvise kcmp unshare setns "
    "mount umount2 pivot_root chroot fsopen fsconfig fsmount fspick move_mount open_tree mount_setattr "
    "open_by_handle_at name_to_handle_at bpf perf_event_open userfaultfd io_uring_setup io_uring_enter "
    "io_uring_register kexec_load kexec_file_load init_module finit_module delete_module keyctl add_key "
    "request_key acct swapon swapoff reboot quotactl syslog vhangup sethostname setdomainname iopl ioperm "
    "modify_ldt uselib lookup_dcookie"
).split()
_REFUSED = "socket socketpair setsid setpgid tkill pidfd_open pidfd_send_signal pidfd_getfd".split()
_SIGNAL_TGID_FIRST = ("tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")  # arg 0 is the target process


@dataclass(frozen=True)
class Arch:
    """One architecture's audit id and system call numbers."""

    name: str
    audit: int
    numbers: dict[str, int]
    x32_bit: bool  # reject the x32 ABI's numbers (x86_64 only)
    seccomp_nr: int


X86_64 = Arch("x86_64", 0xC000003E, {
    "fork": 57, "vfork": 58, "clone": 56, "clone3": 435, "execve": 59, "execveat": 322, "socket": 41,
    "socketpair": 53, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "unshare": 272,
    "setns": 308, "setsid": 112, "setpgid": 109, "kill": 62, "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129,
    "rt_tgsigqueueinfo": 297, "prlimit64": 302, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
    "bpf": 321, "perf_event_open": 298, "kexec_load": 246, "kexec_file_load": 320, "init_module": 175,
    "finit_module": 313, "delete_module": 176, "keyctl": 250, "add_key": 248, "request_key": 249,
    "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438, "open_by_handle_at": 304,
    "name_to_handle_at": 303, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "move_mount": 429,
    "open_tree": 428, "mount_setattr": 442, "acct": 163, "swapon": 167, "swapoff": 168, "reboot": 169,
    "quotactl": 179, "syslog": 103, "process_madvise": 440, "kcmp": 312, "vhangup": 153, "sethostname": 170,
    "setdomainname": 171, "iopl": 172, "ioperm": 173, "modify_ldt": 154, "uselib": 134, "lookup_dcookie": 212,
}, x32_bit=True, seccomp_nr=317)

# aarch64 uses the generic table (asm-generic/unistd.h): no fork, vfork, iopl, ioperm, modify_ldt or uselib.
AARCH64 = Arch("aarch64", 0xC00000B7, {
    "clone": 220, "clone3": 435, "execve": 221, "execveat": 281, "socket": 198, "socketpair": 199,
    "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "unshare": 97, "setns": 268,
    "setsid": 157, "setpgid": 154, "kill": 129, "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138,
    "rt_tgsigqueueinfo": 240, "prlimit64": 261, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
    "bpf": 280, "perf_event_open": 241, "kexec_load": 104, "kexec_file_load": 294, "init_module": 105,
    "finit_module": 273, "delete_module": 106, "keyctl": 219, "add_key": 217, "request_key": 218,
    "userfaultfd": 282, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "pidfd_open": 434, "pidfd_send_signal": 424, "pidfd_getfd": 438, "open_by_handle_at": 265,
    "name_to_handle_at": 264, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "move_mount": 429,
    "open_tree": 428, "mount_setattr": 442, "acct": 89, "swapon": 224, "swapoff": 225, "reboot": 142,
    "quotactl": 60, "syslog": 116, "process_madvise": 440, "kcmp": 272, "vhangup": 58, "sethostname": 161,
    "setdomainname": 162, "lookup_dcookie": 18,
}, x32_bit=False, seccomp_nr=277)

ARCHES = {"x86_64": X86_64, "amd64": X86_64, "aarch64": AARCH64, "arm64": AARCH64}


def native_arch() -> Arch | None:
    """Return this machine's architecture table, or None where the filter is not written for it."""
    return ARCHES.get(platform.machine().lower())


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


Insn = tuple[int, int, int, int]  # (code, jt, jf, k) with jumps resolved


class _Assembler:
    """Collect instructions with symbolic jump targets, then resolve them to relative offsets."""

    def __init__(self) -> None:
        self.items: list[tuple[int, str | int, str | int, int]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int, jt: str | int = 0, jf: str | int = 0) -> None:
        self.items.append((code, jt, jf, k & 0xFFFFFFFF))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.items)

    def assemble(self) -> list[Insn]:
        out = []
        for i, (code, jt, jf, k) in enumerate(self.items):
            offsets = [self.labels[t] - i - 1 if isinstance(t, str) else t for t in (jt, jf)]
            assert all(0 <= o < 256 for o in offsets), (i, offsets)  # classic BPF jumps forward, 8 bits
            out.append((code, offsets[0], offsets[1], k))
        return out


def filter_for(pid: int, arch: Arch) -> list[Insn]:
    """Assemble the filter for the process `pid` (its own pid: signals to itself stay allowed)."""
    nr, a = arch.numbers, _Assembler()
    a.op(_LD_W_ABS, _ARCH)
    a.op(_JEQ_K, arch.audit, 0, "kill")
    a.op(_LD_W_ABS, _NR)
    if arch.x32_bit:
        a.op(_JGE_K, _X32_SYSCALL_BIT, "kill", 0)
    for name in _KILLED:
        if name in nr:
            a.op(_JEQ_K, nr[name], "kill", 0)
    for name in _REFUSED:
        a.op(_JEQ_K, nr[name], "eperm", 0)
    a.op(_JEQ_K, nr["clone3"], "enosys", 0)
    a.op(_JEQ_K, nr["clone"], "clone", 0)
    a.op(_JEQ_K, nr["kill"], "kill_call", 0)
    a.op(_JEQ_K, nr["prlimit64"], "prlimit", 0)
    for name in _SIGNAL_TGID_FIRST:
        a.op(_JEQ_K, nr[name], "self_only", 0)
    a.op(_RET_K, RET_ALLOW)
    a.label("clone")  # threads only: CLONE_THREAD set and no namespace flag
    a.op(_LD_W_ABS, _arg(0))
    a.op(_JSET_K, CLONE_THREAD, 0, "kill")
    a.op(_JSET_K, _CLONE_NAMESPACES, "kill", "allow")
    a.label("kill_call")  # kill(pid, sig): itself, or its own process group (0 or -pid after setsid)
    a.op(_LD_W_ABS, _arg(0))
    a.op(_JEQ_K, pid, "allow", 0)
    a.op(_JEQ_K, 0, "allow", 0)
    a.op(_JEQ_K, -pid, "allow", "eperm")
    a.label("prlimit")  # prlimit64(pid, ...): 0 or itself
    a.op(_LD_W_ABS, _arg(0))
    a.op(_JEQ_K, 0, "allow", 0)
    a.op(_JEQ_K, pid, "allow", "eperm")
    a.label("self_only")
    a.op(_LD_W_ABS, _arg(0))
    a.op(_JEQ_K, pid, "allow", "eperm")
    a.label("kill")
    a.op(_RET_K, RET_KILL_PROCESS)
    a.label("eperm")
    a.op(_RET_K, RET_ERRNO | errno.EPERM)
    a.label("enosys")
    a.op(_RET_K, RET_ERRNO | errno.ENOSYS)
    a.label("allow")
    a.op(_RET_K, RET_ALLOW)
    return a.assemble()


def set_no_new_privs() -> None:
    """Forbid gaining privileges through exec from now on (needed by seccomp and Landlock)."""
    procs.prctl(_PR_SET_NO_NEW_PRIVS, 1)


_PID_MARK = 0x7EADBEEF  # stands for the child's pid until it is known (pids stay below 2**22)


class Filter:
    """The filter assembled once in the worker; each child fills in its own pid and installs it."""

    def __init__(self, arch: Arch) -> None:
        self.arch = arch
        program = filter_for(_PID_MARK, arch)
        self._array = (_SockFilter * len(program))(*(_SockFilter(*insn) for insn in program))
        self._self = [i for i, insn in enumerate(program) if insn[3] == _PID_MARK]
        self._group = [i for i, insn in enumerate(program) if insn[3] == -_PID_MARK & 0xFFFFFFFF]
        self._prog = _SockFprog(len(program), ctypes.cast(self._array, ctypes.POINTER(_SockFilter)))

    def install(self, pid: int) -> None:
        """Install the filter for process `pid` on the calling thread (after set_no_new_privs)."""
        for i in self._self:
            self._array[i].k = pid
        for i in self._group:
            self._array[i].k = -pid & 0xFFFFFFFF
        _install(self._prog, self.arch)


def install(program: Sequence[Insn], arch: Arch) -> None:
    """Install `program` as this thread's seccomp filter (after set_no_new_privs), raising OSError."""
    array = (_SockFilter * len(program))(*(_SockFilter(*insn) for insn in program))
    _install(_SockFprog(len(program), ctypes.cast(array, ctypes.POINTER(_SockFilter))), arch)


def _install(prog: _SockFprog, arch: Arch) -> None:
    # SPEC_ALLOW: keep speculative store bypass as it was; forcing its mitigation
    # would slow the candidate's numeric code and guards nothing here (the
    # candidate can read its own memory anyway).
    libc = procs.libc
    if libc.syscall(ctypes.c_long(arch.seccomp_nr), ctypes.c_long(_SECCOMP_SET_MODE_FILTER),
                    ctypes.c_long(_SECCOMP_FILTER_FLAG_SPEC_ALLOW), ctypes.byref(prog)) == 0:
        return
    if libc.prctl(ctypes.c_int(_PR_SET_SECCOMP), ctypes.c_ulong(_SECCOMP_MODE_FILTER), ctypes.byref(prog),
                  ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"seccomp filter refused: {errno.errorcode.get(code, code)}")
