"""The hostile suite: candidate programs that try to escape, each with the containment it must meet.

Each program is the body of `evaluate(x)`; `x` carries what the test set
up (a listening port, a secret's path, ...). Programs that try something
the sandbox should refuse usually catch the error and return `-errno`, so
that the expectation names the exact refusal rather than any failure.
"""

from __future__ import annotations

import errno
import os
import platform
from dataclasses import dataclass, field

from sandbox import Evaluation, FailureKind, Layers

HEADER = (
    "import ctypes, errno, os, select, signal, socket, sys, threading, time\n"
    "import numpy as np\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n\n"
)
TIMEOUT_S = 2.0  # the deadline of the cases that run forever
CLONE_NR = {"x86_64": 56, "aarch64": 220}.get(platform.machine(), 56)
CLONE3_NR, IO_URING_SETUP_NR = 435, 425
PTRACE_NR = {"x86_64": 101, "aarch64": 117}.get(platform.machine(), 101)
PROCESS_VM_READV_NR = {"x86_64": 310, "aarch64": 270}.get(platform.machine(), 310)


def program(body: str) -> str:
    """Wrap `body` as `evaluate(x)` under the common imports."""
    indented = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return f"{HEADER}def evaluate(x):\n{indented}\n"


def _refused(code: int) -> str:
    return f"score -{code} ({errno.errorcode[code]})"


@dataclass(frozen=True)
class Case:
    """One hostile program and what containing it means."""

    body: str
    failure: FailureKind | None = None  # the failure kind expected (None: it must score)
    score: float | None = None  # the exact score expected, when it scores
    at_most: float | None = None  # or an upper bound on the score
    negative: bool = False  # or any negative score (-errno: refused, whatever the errno)
    also: tuple[FailureKind, ...] = ()  # further acceptable failure kinds (layer-dependent)
    needs: tuple[str, ...] = ()  # layers the expectation relies on, each "a|b": any one of them suffices
    error: str = ""  # a fragment the error message must hold
    timeout: bool = False  # runs until its deadline: gets the short one
    alone: bool = False  # competes for a per-uid limit: run when no other candidate runs
    why: str = field(default="", compare=False)

    def check(self, ev: Evaluation) -> str | None:
        """Return None if `ev` shows the containment, else what is wrong."""
        if self.failure is not None or self.also:
            allowed = {self.failure, *self.also} - {None}
            if ev.failure not in allowed:
                return f"expected {sorted(k.value for k in allowed)}, got {ev.failure} {dict(ev.scores)} {ev.error!r}"
        elif not ev.ok:
            return f"expected a score, got {ev.failure.value}: {ev.error}"
        else:
            [value] = ev.scores.values()
            if self.score is not None and value != self.score:
                return f"expected score {self.score}, got {value}"
            if self.at_most is not None and value > self.at_most:
                return f"expected a score <= {self.at_most}, got {value}"
            if self.negative and not value < 0:
                return f"expected a refusal (negative score), got {value}"
        if self.error and self.error not in ev.error:
            return f"expected {self.error!r} in the error, got {ev.error!r}"
        return None

    def missing_layer(self, layers: Layers) -> str | None:
        """Name a need (a set of alternative layers) that none of the pool's layers meets, if any."""
        have = {
            "seccomp": layers.seccomp, "landlock": layers.landlock_abi > 0, "landlock-net": layers.landlock_abi >= 4,
            "landlock-scope": layers.landlock_abi >= 6, "tmpfs": layers.scratch_tmpfs,
            "rofs": layers.read_only_root, "netns": "net" in layers.namespaces,
            "pidns": "pid" in layers.namespaces and layers.fresh_proc,
            "uid": layers.run_as.startswith("uid"), "unprivileged": layers.run_as.startswith("uid") or os.getuid() != 0,
            "nproc": layers.run_as.startswith("uid") or "user" in layers.namespaces,
        }
        return next((need for need in self.needs if not any(have[alt] for alt in need.split("|"))), None)


TRY = "try:\n    {}\nexcept OSError as e:\n    return -float(e.errno or 1)\nreturn 1.0"


def _try(statement: str) -> str:
    """Run `statement`; return -errno if the kernel refuses it, 1.0 if it went through."""
    return TRY.format(statement.replace("\n", "\n    "))


def _raw(call: str) -> str:
    """Make a raw libc call; return -errno if it failed, else its result."""
    return f"r = {call}\nreturn float(r) if r >= 0 else -float(ctypes.get_errno())"


# Modules the worker does not preload (nor numpy/scipy import): a candidate imports them from the disk, as its own uid.
FRESH_MODULES = ("glob", "csv", "zoneinfo", "wave", "sched", "tomllib", "click", "pygments", "sympy")

CASES: dict[str, Case] = {
    # -- what a candidate may do: import whatever the worker's interpreter can import.
    "import-modules-not-preloaded": Case(
        f"import importlib\nfresh = [m for m in {FRESH_MODULES!r} if m not in sys.modules]\n"
        "for name in fresh:\n    importlib.import_module(name)\nreturn float(len(fresh) >= 6)", score=1.0,
        why="stdlib and site-packages modules, wherever Python lives (sandbox.reveal)"),
    # -- time: every runaway ends at the wall-clock deadline, whatever it blocks or ignores.
    "cpu-loop": Case("while True:\n    pass", FailureKind.TIMEOUT, timeout=True),
    "sleep": Case("time.sleep(1000)", FailureKind.TIMEOUT, timeout=True),
    "signal-ignoring-loop": Case(
        "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU, signal.SIGALRM):\n"
        "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass", FailureKind.TIMEOUT, timeout=True),
    "all-signals-blocked": Case(
        "signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())\nwhile True:\n    pass",
        FailureKind.TIMEOUT, timeout=True),
    "c-level-pause": Case("libc.pause()", FailureKind.TIMEOUT, timeout=True),
    "c-level-deadlock": Case("lock = threading.Lock()\nlock.acquire()\nlock.acquire()", FailureKind.TIMEOUT, timeout=True),
    "c-level-read-forever": Case("r, w = os.pipe()\nos.read(r, 1)", FailureKind.TIMEOUT, timeout=True),
    "c-level-numeric-loop": Case("return float(sum(range(10**13)))", FailureKind.TIMEOUT, timeout=True),
    "closes-result-pipe-and-spins": Case(
        "for fd in range(3, 64):\n    try:\n        os.close(fd)\n    except OSError:\n        pass\nwhile True:\n    pass",
        FailureKind.TIMEOUT, timeout=True),
    # -- processes: no fork, clone, vfork or exec; threads only, and a bounded number.
    "fork": Case("os.fork()\nreturn 1.0", FailureKind.FORBIDDEN, needs=("seccomp",), error="SIGSYS"),
    "fork-bomb": Case("while True:\n    os.fork()", FailureKind.FORBIDDEN, needs=("seccomp",)),
    "double-fork-setsid-escape": Case(
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(1000)\nreturn 1.0",
        FailureKind.FORBIDDEN, needs=("seccomp",)),
    "raw-syscall-clone": Case(f"libc.syscall({CLONE_NR}, 17, 0, 0, 0, 0)\nreturn 1.0", FailureKind.FORBIDDEN,
                              needs=("seccomp",)),
    "raw-syscall-clone3": Case(_raw(f"libc.syscall({CLONE3_NR}, 0, 0)"), score=-errno.ENOSYS, needs=("seccomp",),
                               why="ENOSYS, so that glibc falls back to clone, whose flags the filter sees"),
    "vfork": Case("libc.vfork()\nreturn 1.0", FailureKind.FORBIDDEN, needs=("seccomp",)),
    "subprocess": Case("import subprocess\nsubprocess.run(['true'])\nreturn 1.0", FailureKind.FORBIDDEN,
                       needs=("seccomp",)),
    "os-system": Case("os.system('echo pwned > /tmp/pwned')\nreturn 1.0", FailureKind.FORBIDDEN, needs=("seccomp",)),
    "exec": Case("os.execv(sys.executable, [sys.executable, '-c', 'pass'])", FailureKind.FORBIDDEN,
        needs=("seccomp",)),
    "posix-spawn": Case("os.posix_spawn('/bin/true', ['true'], {})\nreturn 1.0", FailureKind.FORBIDDEN,
                        needs=("seccomp",)),
    "fork-from-a-thread": Case(
        "out = []\nt = threading.Thread(target=lambda: out.append(os.fork()))\nt.start()\nt.join()\nreturn 1.0",
        FailureKind.FORBIDDEN, needs=("seccomp",)),
    "thread-bomb": Case(
        "stop, n = threading.Event(), 0\ntry:\n    while n < 100000:\n"
        "        threading.Thread(target=stop.wait, daemon=True).start()\n        n += 1\n"
        "except (RuntimeError, MemoryError):\n    pass\nreturn float(n)", at_most=64, needs=("nproc",), alone=True,
        why="RLIMIT_NPROC (64) once the candidate's uid is its own"),
    "thread-left-running": Case("threading.Thread(target=time.sleep, args=(1000,)).start()\nreturn 7.0", score=7.0),
    # -- memory: the address-space cap turns bombs into `memory` failures.
    "memory-bytearray": Case("return float(len(bytearray(10**11)))", FailureKind.MEMORY),
    "memory-numpy": Case("return float(np.ones(10**11).sum())", FailureKind.MEMORY),
    "memory-growth": Case("keep = []\nwhile True:\n    keep.append(bytearray(1 << 20))", FailureKind.MEMORY),
    "memory-mmap": Case("import mmap\nm = mmap.mmap(-1, 1 << 40)\nreturn 1.0", FailureKind.ERROR,
                        also=(FailureKind.MEMORY,)),
    "memory-thread-stacks": Case(
        "threading.stack_size(256 << 20)\nfor _ in range(64):\n    threading.Thread(target=time.sleep, args=(100,)).start()\n"
        "return 1.0", FailureKind.ERROR, also=(FailureKind.MEMORY,), alone=True),
    # -- output: stdio goes nowhere; the result frame is bounded and checked.
    "stdout-flood": Case("while True:\n    print('x' * 65536)", FailureKind.TIMEOUT, timeout=True),
    "stderr-flood": Case("while True:\n    os.write(2, b'x' * 65536)", FailureKind.TIMEOUT, timeout=True),
    "result-flood": Case(
        "for fd in range(3, 32):\n    try:\n        os.fstat(fd)\n    except OSError:\n        continue\n"
        "    try:\n        os.write(fd, (1 << 31).to_bytes(4, 'big') + b'{' * 65536)\n    except OSError:\n        pass\n"
        "os._exit(0)", FailureKind.INVALID_OUTPUT, error="larger than"),
    "forged-nan-result": Case(
        "p = b'{\"scores\": {\"x\": NaN}}'\nfor fd in range(3, 32):\n    try:\n        os.write(fd, len(p).to_bytes(4, 'big') + p)\n"
        "    except OSError:\n        pass\nos._exit(0)", FailureKind.INVALID_OUTPUT, error="malformed result"),
    "torn-result-frame": Case(
        "for fd in range(3, 32):\n    try:\n        os.write(fd, (100).to_bytes(4, 'big') + b'{\"sco')\n    except OSError:\n"
        "        pass\nos._exit(0)", FailureKind.ERROR, error="without a result"),
    # -- disk: the scratch tmpfs is small in bytes and inodes; each file is capped too.
    "disk-exhaustion": Case(
        "i = 0\ntry:\n    while True:\n        with open(f'f{i}', 'wb') as f:\n            f.write(b'x' * (1 << 20))\n"
        "        i += 1\nexcept OSError as e:\n    return -float(e.errno)", score=-errno.ENOSPC, needs=("tmpfs",)),
    "inode-exhaustion": Case(
        "i = 0\ntry:\n    while True:\n        open(f'e{i}', 'w').close()\n        i += 1\nexcept OSError as e:\n"
        "    return -float(e.errno)", score=-errno.ENOSPC, needs=("tmpfs",)),
    "file-size-limit": Case(
        "with open('big', 'wb') as f:\n    try:\n        f.write(b'x' * (2 << 20))\n        f.flush()\n"
        "    except OSError as e:\n        return -float(e.errno)\nreturn 1.0", score=-errno.EFBIG),
    "write-host-tmp": Case(_try("open('/tmp/evoloop-pwned', 'w').write('x')"), negative=True,
        needs=("landlock|rofs",)),
    "write-var-tmp": Case(_try("open('/var/tmp/evoloop-pwned', 'w').write('x')"), negative=True,
        needs=("landlock|rofs",)),
    "write-dev-shm": Case(_try("open('/dev/shm/evoloop-pwned', 'w').write('x')"), negative=True,
        needs=("landlock|rofs",)),
    "patch-numpy-on-disk": Case(_try("open(np.__file__, 'a').write('\\nsum = None\\n')"), negative=True,
        needs=("landlock|rofs|uid",)),
    "write-next-to-the-loop": Case(_try("open(os.path.join(x['loop_dir'], 'pwned'), 'w').write('x')"), negative=True,
        needs=("landlock|rofs|uid",)),
    "symlink-out-of-scratch": Case(_try("os.symlink('/etc', 'etc')\nopen('etc/hostname').read()"), negative=True,
                                   needs=("landlock",)),
    "hardlink-out-of-scratch": Case(_try("os.link('/etc/passwd', 'passwd')"), negative=True,
        needs=("landlock|rofs|uid",)),
    # -- secrets: nothing outside the Python install is readable; the environment is scrubbed.
    "read-secret-file": Case(_try("open(x['secret_path']).read()"), negative=True, needs=("landlock",),
                             why="the secret is world-readable: only Landlock stands in the way"),
    "read-etc-shadow": Case(_try("open('/etc/shadow').read()"), negative=True, needs=('landlock|unprivileged',)),
    "read-root-home": Case(_try("os.listdir('/root')"), negative=True, needs=('landlock|unprivileged',)),
    "read-beside-python-prefix": Case(
        "for path in x['planted']:\n    try:\n        open(path).read()\n        return 1.0\n"
        "    except OSError:\n        pass\nreturn -1.0", negative=True, needs=("landlock",),
        why="world-readable files planted next to Python's prefix and in the home directory that holds it"),
    "read-proc-environ": Case(
        "found = 0\nfor pid in range(1, 1 << 16):\n    try:\n        with open(f'/proc/{pid}/environ', 'rb') as f:\n"
        "            found += x['token'].encode() in f.read()\n    except OSError:\n        pass\nreturn float(found)", score=0.0,
        needs=("landlock|pidns|uid",)),
    "read-worker-memory": Case(_try("open('/proc/1/mem', 'rb').read(1)"), negative=True,
        needs=("landlock|pidns|unprivileged",)),
    "loop-environment": Case("return float(any(x['token'] in v for v in os.environ.values()))", score=0.0),
    # -- network: no sockets at all, and no interface up even if there were.
    "tcp-to-loopback": Case(_try("socket.create_connection(('127.0.0.1', x['port']), timeout=1)"), negative=True,
        needs=("seccomp|netns|landlock-net",)),
    "tcp-outside": Case(_try("socket.create_connection(('1.1.1.1', 80), timeout=1)"), negative=True,
        needs=("seccomp|netns|landlock-net",)),
    "udp-to-loopback": Case(_try("socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', x['port']))"),
                            negative=True, needs=('seccomp|netns',)),
    "dns": Case("try:\n    socket.getaddrinfo(b'pypi.org', 443)\nexcept OSError:\n    return -1.0\nreturn 1.0", score=-1.0,
        needs=("seccomp|netns",)),
    "abstract-unix-socket": Case(_try("socket.socket(socket.AF_UNIX).connect(x['abstract'])"), negative=True,
        needs=("seccomp|netns|landlock-scope",)),
    "raw-socket-syscall": Case(_raw("libc.socket(2, 1, 0)"), score=-errno.EPERM, needs=("seccomp",)),
    # -- the worker and other processes: no signals out, no tracing, no namespaces.
    "kill-parent": Case(_try("os.kill(os.getppid(), signal.SIGKILL)"), negative=True,
        needs=("seccomp|uid|landlock-scope",)),
    "kill-minus-one": Case(_try("os.kill(-1, signal.SIGKILL)"), negative=True, needs=('seccomp|uid|landlock-scope',)),
    "kill-every-pid": Case(
        "n = 0\nfor pid in range(1, 1 << 15):\n    if pid != os.getpid():\n        try:\n            os.kill(pid, signal.SIGKILL)\n"
        "            n += 1\n        except OSError:\n            pass\nreturn float(n)", score=0.0,
        needs=("seccomp|pidns|landlock-scope",)),
    "setsid": Case(_try("os.setsid()"), negative=True),
    "ptrace-parent": Case(f"libc.syscall({PTRACE_NR}, 16, os.getppid(), 0, 0)\nreturn 1.0", FailureKind.FORBIDDEN,
                          needs=("seccomp",)),
    "read-parent-memory": Case(f"libc.syscall({PROCESS_VM_READV_NR}, os.getppid(), 0, 0, 0, 0, 0)\nreturn 1.0",
                               FailureKind.FORBIDDEN, needs=("seccomp",)),
    "user-namespace": Case("libc.unshare(0x10000000)\nreturn 1.0", FailureKind.FORBIDDEN, needs=("seccomp",)),
    "io-uring": Case(f"libc.syscall({IO_URING_SETUP_NR}, 8, 0)\nreturn 1.0", FailureKind.FORBIDDEN,
        needs=("seccomp",)),
    "raise-own-limits": Case(
        "import resource\ntry:\n    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
        "except (ValueError, OSError):\n    return -1.0\nreturn 1.0", score=-1.0),
    # -- crashes end as errors, never in the worker.
    "segfault": Case("ctypes.string_at(0)", FailureKind.ERROR, error="SIGSEGV"),
    "abort": Case("os.abort()", FailureKind.ERROR, error="SIGABRT"),
    "deep-recursion": Case("sys.setrecursionlimit(10**8)\ndef f(n):\n    return list(map(f, [n + 1]))\nreturn f(0)",
                           FailureKind.ERROR, also=(FailureKind.MEMORY,)),
    "exit-mid-run": Case("os._exit(0)", FailureKind.ERROR, error="without a result"),
    # -- state: each candidate starts from the worker's pristine copy.
    "monkeypatch-numpy": Case(
        "np.sum = lambda *a, **k: 1e9\nsys.modules['numpy'].mean = lambda *a, **k: 1e9\n"
        "np.random.seed(666)\nreturn 1.0", score=1.0),
    "litter-scratch": Case("os.mkdir('d')\nopen('d/f', 'w').write('x')\nos.chmod('d', 0)\nreturn 1.0", score=1.0,
                           why="the next candidate still gets an empty scratch directory"),
}

assert len(CASES) >= 40, len(CASES)
