"""core.probes.staging on the real payload: the shipped manifest verifier (core/manifest.py,
shipped as mlops_manifest.py) run by a LocalRunner against a staged tree in tmp_path, as
the probes run it on the HPC side over SSH."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from mlops_assets.core import manifest
from mlops_assets.core.checks import ProbeFailed
from mlops_assets.core.probes import staging
from mlops_assets.core.transport.hostexec import LocalRunner


@pytest.fixture
def staged(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(payload dir, staged tree, its manifest) as staging leaves them."""
    payloads = tmp_path / "payloads"
    payloads.mkdir()
    shutil.copy(manifest.__file__, payloads / "mlops_manifest.py")
    tree = tmp_path / "data"
    tree.mkdir()
    (tree / "a.bin").write_bytes(b"x" * 2_000_000)
    (tree / "b.txt").write_text("hello")
    mpath = tree / manifest.MANIFEST_NAME
    manifest.write_manifest(mpath, manifest.build_manifest(tree))
    return payloads, tree, mpath


def test_verify_staged_passes_then_names_the_changed_file(
    staged: tuple[Path, Path, Path],
) -> None:
    payloads, tree, mpath = staged
    run = LocalRunner()
    ok = staging.verify_staged(run, sys.executable, str(payloads), str(tree), str(mpath), "d")
    assert ok.passed and ok.measured == 0, ok
    (tree / "b.txt").write_text("HELLO")
    bad = staging.verify_staged(run, sys.executable, str(payloads), str(tree), str(mpath), "d")
    assert not bad.passed and "b.txt" in bad.detail, bad


def test_verifier_that_cannot_run_says_where_and_why(staged: tuple[Path, Path, Path]) -> None:
    payloads, tree, mpath = staged
    with pytest.raises(ProbeFailed, match="manifest verification did not run on") as info:
        staging.verify_staged(
            LocalRunner(), "/nonexistent/python3", str(payloads), str(tree), str(mpath), "d"
        )
    assert "hpc.python" in info.value.hint


def test_staged_size_reads_the_manifest_and_names_a_missing_one(
    staged: tuple[Path, Path, Path],
) -> None:
    _, tree, mpath = staged
    out = staging.staged_size(LocalRunner(), str(mpath), 2.0, "d")
    assert out.passed and out.measured == 2.0, out
    assert not staging.staged_size(LocalRunner(), str(mpath), 100.0, "d").passed
    with pytest.raises(ProbeFailed, match="d has no manifest at"):
        staging.staged_size(LocalRunner(), str(tree / "nope.json"), 2.0, "d")
