"""The per-child layers: prepared once by the worker, applied by each forked child.

    plan, layers = prepare(config, ns_info)   # worker, at start: scratch dir, ruleset, probes
    drop_privileges(plan); confine(plan)      # child, after its rlimits (see sandbox.child)
    wipe_scratch(plan)                        # worker, after the child is reaped

`prepare` probes every wanted layer in a throwaway child first, so a layer
the kernel refuses is reported missing (and left out) instead of failing
every candidate.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, field

from sandbox import landlock, procs, seccomp
from sandbox.isolation import IsolationConfig, Layers
from sandbox.namespaces import NamespaceInfo, needed_paths

log = logging.getLogger(__name__)

SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/etc/ld.so.cache", "/etc/localtime")
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # not readable by candidates
_CAP_VERSION_3 = 0x20080522


@dataclass
class ChildPlan:
    """What each child applies to itself, prepared by the worker."""

    scratch: str  # the child's private, writable directory (emptied after every run)
    scratch_ino: int = 0
    uid: int | None = None  # root only: the ids to drop to
    gid: int | None = None
    drop_caps: bool = False  # not root, but holding capabilities in a user namespace
    limit_threads: int | None = None  # RLIMIT_NPROC, where it counts only this worker's processes
    ruleset_fd: int | None = None  # Landlock
    filter: seccomp.Filter | None = None  # the seccomp filter, assembled for this architecture
    temporary_root: str | None = None  # a scratch parent we made on the host (no tmpfs): removed at exit
    keep_fds: frozenset[int] = field(default_factory=frozenset)


def prepare(config: IsolationConfig, ns: NamespaceInfo | None) -> tuple[ChildPlan, Layers]:
    """Build the child plan for `config` in this worker and report the layers that work."""
    missing = list(ns.missing) if ns else ["namespaces: disabled by the configuration"]
    root = ns.scratch_root if ns and ns.scratch_root else tempfile.mkdtemp(prefix="evoloop-scratch-")
    os.chmod(root, 0o755 if ns and ns.scratch_root else 0o711)  # the candidate's uid reaches scratch below it
    plan = ChildPlan(scratch=os.path.join(root, "run"), temporary_root=None if ns and ns.scratch_root else root)
    root_user = os.getuid() == 0
    if config.drop_privileges and root_user:
        plan.uid, plan.gid = config.uid, config.gid
    elif config.drop_privileges and ns and "user" in ns.namespaces:
        plan.drop_caps = True
    if plan.uid is not None or (ns and "user" in ns.namespaces):
        plan.limit_threads = config.max_threads
    _make_scratch(plan)
    # Set here once, inherited by every child: the candidate's temporary files and home go to scratch.
    os.environ.update(TMPDIR=plan.scratch, HOME=plan.scratch)
    tempfile.tempdir = plan.scratch
    if not root_user:
        procs.prctl(procs.PR_SET_DUMPABLE, 0)  # a same-uid candidate cannot ptrace or read this worker
    # What candidates import from: Python's trees, not evoloop's own checkout (it may hold archives).
    python_trees = [p for p in needed_paths() if os.path.realpath(p) != _PACKAGE_ROOT]
    if config.landlock:
        abi = landlock.abi_version()
        if abi:
            plan.ruleset_fd = landlock.build_ruleset(abi, [*python_trees, *SYSTEM_READ], [plan.scratch], DEVICES)
        else:
            missing.append("landlock: not supported by this kernel")
    if config.seccomp:
        arch = seccomp.native_arch()
        if arch is None:
            missing.append(f"seccomp: no filter written for {os.uname().machine}")
        else:
            plan.filter = seccomp.Filter(arch)
    _leave_out_refused(plan, _probe(plan, python_trees), missing)
    if config.drop_privileges and not root_user and not plan.drop_caps:
        missing.append("privilege drop: not root and no user namespace (candidates run as this user)")
    run_as = f"uid {plan.uid}" if plan.uid is not None else "capabilities dropped" if plan.drop_caps else ""
    layers = Layers(
        namespaces=tuple(ns.namespaces) if ns else (),
        read_only_root=bool(ns and ns.read_only_root),
        scratch=plan.scratch,
        scratch_tmpfs=plan.temporary_root is None,
        fresh_proc=bool(ns and ns.fresh_proc),
        run_as=run_as,
        landlock_abi=landlock.abi_version() if plan.ruleset_fd is not None else 0,
        seccomp=plan.filter is not None,
        missing=tuple(missing),
    )
    return plan, layers


def _leave_out_refused(plan: ChildPlan, failed: dict[str, str], missing: list[str]) -> None:
    """Take the layers the probe saw fail out of `plan`, noting why in `missing`."""
    if "identity" in failed:
        missing.append(f"privilege drop: {failed['identity']}")
        plan.uid = plan.gid = None
        plan.drop_caps = False
    if "landlock" in failed:
        missing.append(f"landlock: {failed['landlock']}")
        if plan.ruleset_fd is not None:
            os.close(plan.ruleset_fd)
        plan.ruleset_fd = None
    if "seccomp" in failed:
        missing.append(f"seccomp: {failed['seccomp']}")
        plan.filter = None
    if "imports" in failed:  # nothing to leave out: candidates get only the modules the worker preloaded
        missing.append(f"imports: {failed['imports']}")
    plan.keep_fds = frozenset() if plan.ruleset_fd is None else frozenset({plan.ruleset_fd})


def _make_scratch(plan: ChildPlan) -> None:
    """(Re)create the scratch directory, owned by the candidate's uid, private to it."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(plan.scratch, 0o700)
    if plan.uid is not None:
        os.chown(plan.scratch, plan.uid, plan.gid if plan.gid is not None else -1)
    os.chmod(plan.scratch, 0o700)
    plan.scratch_ino = os.stat(plan.scratch).st_ino


def wipe_scratch(plan: ChildPlan) -> None:
    """Empty the scratch directory after a run, whatever the candidate left or chmod-ed there."""
    try:
        info = os.lstat(plan.scratch)
    except FileNotFoundError:
        info = None
    if info is None or info.st_ino != plan.scratch_ino or not stat.S_ISDIR(info.st_mode):
        # Only possible without Landlock (which keeps the directory itself out of reach).
        if info is not None and not stat.S_ISDIR(info.st_mode):
            os.unlink(plan.scratch)
        elif info is not None:
            shutil.rmtree(plan.scratch, onerror=_force)
        _make_scratch(plan)
        return
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(plan.scratch, 0o700)
    with os.scandir(plan.scratch) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, onerror=_force)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def _force(function: object, path: str, excinfo: object) -> None:
    """rmtree's error handler: give the owner back its rights on the parent, then retry."""
    with contextlib.suppress(OSError):
        os.chmod(os.path.dirname(path), 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def cleanup(plan: ChildPlan) -> None:
    """Remove a scratch directory made on the host (at worker exit)."""
    if plan.temporary_root:
        shutil.rmtree(plan.temporary_root, ignore_errors=True)


# -- in the child ------------------------------------------------------------------------


def drop_privileges(plan: ChildPlan) -> None:
    """Become the unprivileged uid (root), or give up every capability (user namespace)."""
    if plan.uid is not None and plan.gid is not None:
        os.setgroups([])
        os.setresgid(plan.gid, plan.gid, plan.gid)
        os.setresuid(plan.uid, plan.uid, plan.uid)  # from root to non-root: capabilities are cleared
    elif plan.drop_caps:
        header = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
        data = (ctypes.c_uint32 * 6)()
        if procs.libc.capset(ctypes.byref(header), ctypes.byref(data)) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"capset: {os.strerror(code)}")


def confine(plan: ChildPlan) -> None:
    """Set no_new_privs, enforce the Landlock ruleset, then install the seccomp filter (last)."""
    if plan.ruleset_fd is None and plan.filter is None:
        return
    seccomp.set_no_new_privs()
    if plan.ruleset_fd is not None:
        landlock.restrict_self(plan.ruleset_fd)
        os.close(plan.ruleset_fd)
    if plan.filter is not None:
        plan.filter.install(os.getpid())


def _probe(plan: ChildPlan, python_trees: list[str]) -> dict[str, str]:
    """Try each layer in a throwaway child; return {layer: why it failed} for those that did.

    Last, as a candidate would be, it lists each of `python_trees`: where one
    cannot be read, candidates cannot import what the worker did not preload.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        failed: dict[str, str] = {}
        try:
            os.close(read_fd)
            steps = (("identity", lambda: drop_privileges(plan)), ("nnp", seccomp.set_no_new_privs),
                     ("landlock", lambda: None if plan.ruleset_fd is None else landlock.restrict_self(plan.ruleset_fd)),
                     ("seccomp", lambda: None if plan.filter is None else plan.filter.install(os.getpid())))
            for name, step in steps:
                try:
                    step()
                except OSError as exc:
                    failed["landlock" if name == "nnp" else name] = exc.strerror or str(exc)
            for tree in python_trees:
                try:
                    os.listdir(tree)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    failed["imports"] = f"candidates cannot read {tree} ({exc.strerror})"
                    break
            os.write(write_fd, json.dumps(failed).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    try:
        result = json.loads(data)
    except ValueError:
        return {"landlock": "probe failed", "seccomp": "probe failed"}
    if result:
        log.warning("sandbox layers the probe saw fail: %s", result)
    return dict(result)
