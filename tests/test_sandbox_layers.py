"""The layers themselves: the seccomp program's decisions, detection, refusal without isolation, doctor."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from conftest import evolve

from evolve.config import ConfigError, load_config
from sandbox import IsolationConfig, Limits, SandboxError, SandboxPool
from sandbox.seccomp import AARCH64, CLONE_THREAD, RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS, X86_64, Arch, filter_for

NONE = IsolationConfig(namespaces=False, landlock=False, seccomp=False, drop_privileges=False)
PID = 4242


def _run_bpf(program: list[tuple[int, int, int, int]], nr: int, args: tuple[int, ...] = (), arch: int = 0) -> int:
    """Interpret a classic-BPF seccomp program (the opcodes it uses) on one system call."""
    data = {0: nr, 4: arch}
    for i, value in enumerate((*args, 0, 0, 0, 0, 0, 0)[:6]):
        data[16 + 8 * i] = value & 0xFFFFFFFF
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        if code == 0x20:  # ld [k]
            acc, pc = data[k], pc + 1
        elif code in (0x15, 0x35, 0x45):  # jeq, jge, jset
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += 1 + (jt if taken else jf)
        elif code == 0x06:  # ret k
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


@pytest.mark.parametrize("arch", [X86_64, AARCH64], ids=lambda a: a.name)
def test_seccomp_program_decides_as_documented(arch: Arch) -> None:
    program = filter_for(PID, arch)
    nr = arch.numbers

    def decide(name: str, *args: int, audit: int = arch.audit) -> int:
        return _run_bpf(program, nr[name], args, audit)

    eperm, enosys = RET_ERRNO | errno.EPERM, RET_ERRNO | errno.ENOSYS
    assert decide("clone", 0x3D0F00) == RET_ALLOW  # glibc's pthread_create flags: CLONE_THREAD among them
    assert decide("clone", 17) == RET_KILL_PROCESS  # fork: SIGCHLD, no CLONE_THREAD
    assert decide("clone", CLONE_THREAD | 0x10000000) == RET_KILL_PROCESS  # a thread in a new user namespace
    assert decide("clone3") == enosys
    for name in ("execve", "ptrace", "unshare", "setns", "mount", "bpf", "io_uring_setup", "process_vm_readv"):
        assert decide(name) == RET_KILL_PROCESS, name
    for name in ("socket", "socketpair", "setsid", "pidfd_open"):
        assert decide(name) == eperm, name
    assert decide("kill", PID, 9) == RET_ALLOW and decide("kill", 0, 9) == RET_ALLOW
    assert decide("kill", -PID, 9) == RET_ALLOW  # its own process group
    assert decide("kill", 1, 9) == eperm and decide("kill", -1, 9) == eperm and decide("kill", PID + 1, 9) == eperm
    assert decide("tgkill", PID, PID + 3, 6) == RET_ALLOW and decide("tgkill", 1, 1, 9) == eperm
    assert decide("prlimit64", 0) == RET_ALLOW and decide("prlimit64", 1) == eperm
    assert decide("execve", audit=0x40000003) == RET_KILL_PROCESS  # another architecture's calling convention
    assert _run_bpf(program, 0, (), arch.audit) == RET_ALLOW  # read (0 on x86_64) / io_setup (aarch64)
    if arch is X86_64:
        assert decide("fork") == RET_KILL_PROCESS and decide("vfork") == RET_KILL_PROCESS
        assert _run_bpf(program, 0x40000000 | 59, (), arch.audit) == RET_KILL_PROCESS  # x32 execve


def test_a_pool_refuses_to_run_without_isolation() -> None:
    with pytest.raises(SandboxError, match="refusing to run candidates with no isolation.*--allow-unisolated"):
        SandboxPool(1, isolation=NONE)


def test_unisolated_runs_only_when_asked_and_says_so() -> None:
    with SandboxPool(1, Limits(timeout_s=10.0), IsolationConfig(**{**NONE.to_json(), "allow_unisolated": True})) as pool:
        assert not pool.layers.isolated
        assert pool.layers.describe().startswith("rlimits; missing: namespaces: disabled")
        assert pool.evaluate("def evaluate(x):\n    return x\n", "evaluate", {"a": 2}).scores == {"a": 2.0}


def test_each_layer_can_be_turned_off_alone() -> None:
    with SandboxPool(1, Limits(timeout_s=10.0), IsolationConfig(seccomp=False)) as pool:
        assert not pool.layers.seccomp and pool.layers.isolated
        fork = pool.evaluate("import os\ndef evaluate(x):\n    os.fork()\n    return 1.0\n", "evaluate", {"a": 1})
        assert fork.ok  # without seccomp the fork goes through (and the group kill takes the copy)


def test_isolation_is_configured_in_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[sandbox.isolation]\nseccomp = false\nscratch_mb = 8\n")
    isolation = load_config(path).sandbox.isolation
    assert (isolation.seccomp, isolation.scratch_mb, isolation.landlock) == (False, 8, True)
    path.write_text("[sandbox.isolation]\nscratch_mb = 0\n")
    with pytest.raises(ConfigError, match="scratch_mb"):
        load_config(path)


def test_run_refuses_without_isolation_unless_the_flag_is_given(tmp_path: Path, small_config: Path) -> None:
    config = tmp_path / "none.toml"
    config.write_text(small_config.read_text() + "\n[sandbox.isolation]\nnamespaces = false\nlandlock = false\n"
                      "seccomp = false\ndrop_privileges = false\n")
    args = ["run", "bin_packing_or", "--budget", "16", "--workers", "1", "--config", str(config)]
    refused = evolve(*args, "--db", str(tmp_path / "a.db"))
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "--allow-unisolated" in refused.stderr
    allowed = evolve(*args, "--db", str(tmp_path / "b.db"), "--allow-unisolated")
    assert allowed.returncode == 0, allowed.stderr
    assert "sandbox: rlimits; missing: namespaces: disabled by the configuration" in allowed.stdout


def test_doctor_names_the_layers_and_proves_them() -> None:
    proc = evolve("doctor", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    layers, probes = report["layers"], {p["name"]: p for p in report["probes"]}
    assert layers["isolated"] is True
    assert probes["allocate 100 GB"]["contained"]
    if layers["seccomp"]:
        assert probes["fork a process"]["contained"] and probes["open a socket"]["contained"]
    if layers["landlock_abi"]:
        assert probes["read outside the Python install"]["contained"] and probes["write outside scratch"]["contained"]
    stdlib = probes["import the standard library"]
    assert stdlib["allowed"] and stdlib["contained"], stdlib  # wherever Python lives (here: under a 0700 home)
    human = evolve("doctor")
    assert human.returncode == 0 and "sandbox: " in human.stdout and "rlimits" in human.stdout
    assert "import the standard" in human.stdout and "allowed" in human.stdout, human.stdout


LOOP_SIDE = ("evolve", "islands", "finetune", "tui", "sandbox")
UNPICKLERS = {("pickle", "loads"), ("pickle", "load"), ("pickle", "Unpickler"), ("marshal", "loads"),
              ("marshal", "load"), ("shelve", "open")}


def test_nothing_a_candidate_produces_is_unpickled_by_the_loop() -> None:
    # The worker unpickles requests from the trusted loop (sandbox/worker.py, in its own process);
    # every other module may run in the loop's process and must not deserialize anything but JSON.
    import ast

    root = Path(__file__).resolve().parent.parent
    found = []
    for package in LOOP_SIDE:
        for path in sorted((root / package).rglob("*.py")):
            if path == root / "sandbox" / "worker.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                    if (node.value.id, node.attr) in UNPICKLERS:
                        found.append(f"{path.relative_to(root)}:{node.lineno} {node.value.id}.{node.attr}")
                elif isinstance(node, ast.ImportFrom) and node.module in ("pickle", "marshal", "dill", "cloudpickle"):
                    found.append(f"{path.relative_to(root)}:{node.lineno} from {node.module} import ...")
    assert found == []
