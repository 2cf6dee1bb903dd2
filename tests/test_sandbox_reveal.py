"""sandbox.reveal: candidates reach Python through directories their uid cannot enter, and nothing else there."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from sandbox import SandboxPool
from sandbox.reveal import blocked_ancestor, plan_masks, searchable, unreachable

NOBODY = 65534


def _tree(tmp_path: Path) -> tuple[Path, Path]:
    """tmp/private (0700, root's) / site (0755) holding a module; a world-readable key beside site."""
    private = tmp_path / "private"
    site = private / "lib" / "site"
    site.mkdir(parents=True)
    private.chmod(0o700)
    (private / "lib").chmod(0o755)
    site.chmod(0o755)
    module = site / "evoloop_reveal_probe.py"
    module.write_text("VALUE = 41\n")
    module.chmod(0o644)
    key = private / "id_rsa"
    key.write_text("evoloop-reveal-secret\n")
    key.chmod(0o644)
    return private, site


def test_searchable_follows_owner_group_and_other_bits(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    info = os.stat(d)
    stranger = max(info.st_uid, info.st_gid, NOBODY) + 1
    d.chmod(0o710)
    assert searchable(str(d), info.st_uid, stranger)  # the owner's x bit
    assert searchable(str(d), stranger, info.st_gid)  # the group's x bit
    assert not searchable(str(d), stranger, stranger)  # no x bit for others
    d.chmod(0o711)
    assert searchable(str(d), stranger, stranger)
    d.chmod(0o600)
    assert not searchable(str(d), info.st_uid, info.st_gid) or info.st_uid == 0
    assert searchable(str(d), 0, 0)  # root passes every mode check


def test_plan_masks_the_outermost_blocking_directory_for_the_outermost_trees(tmp_path: Path) -> None:
    private, site = _tree(tmp_path)
    inner = site / "pkg"
    inner.mkdir()
    masks = plan_masks([str(site), str(inner), "relative/entry", str(tmp_path / "absent")], NOBODY, NOBODY)
    blocked = blocked_ancestor(str(site), NOBODY, NOBODY)
    assert blocked is not None and Path(private).resolve().is_relative_to(blocked)
    assert masks == {blocked: [str(site.resolve())]}
    assert unreachable([str(site), str(tmp_path / "absent")], NOBODY, NOBODY) == [str(site)]
    assert plan_masks(["/usr/lib"], NOBODY, NOBODY) == {}


@pytest.mark.skipif(os.getuid() != 0, reason="only root drops candidates to another uid")
def test_a_candidate_imports_from_a_tree_under_a_private_directory_and_reads_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, site = _tree(tmp_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p))
    program = (
        "import os\n\ndef evaluate(x):\n    import evoloop_reveal_probe, glob, fractions\n"
        f"    assert os.getuid() == {NOBODY}\n"
        "    try:\n        open(x).read()\n        return -1.0\n    except OSError:\n        pass\n"
        "    return float(evoloop_reveal_probe.VALUE + 1)\n"
    )
    with SandboxPool(1) as pool:
        assert pool.layers.run_as == f"uid {NOBODY}", pool.layers.describe()
        assert not any(m.startswith("imports") for m in pool.layers.missing), pool.layers.missing
        evaluation = pool.evaluate(program, "evaluate", {"key": str(private / "id_rsa")})
    assert evaluation.ok, evaluation.error
    assert evaluation.scores == {"key": 42.0}


def test_the_interpreter_itself_is_reachable_or_reported(tmp_path: Path) -> None:
    # Wherever this machine keeps Python, a pool either lets candidates read its stdlib or says it cannot.
    stdlib = os.path.dirname(os.__file__)
    program = f"import os\n\ndef evaluate(x):\n    return float(len(os.listdir({stdlib!r})) > 10)\n"
    with SandboxPool(1) as pool:
        evaluation = pool.evaluate(program, "evaluate", {"x": 0})
        reported = [m for m in pool.layers.missing if m.startswith("imports")]
    assert evaluation.ok and evaluation.scores == {"x": 1.0} or reported, (evaluation, pool.layers.missing)
    if blocked_ancestor(sys.base_prefix, NOBODY, NOBODY) and os.getuid() == 0 and pool.layers.namespaces:
        assert evaluation.ok, "Python lies under a private directory: the worker must have revealed it"
