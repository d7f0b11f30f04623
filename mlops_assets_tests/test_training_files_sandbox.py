"""The package's training scripts and configs staged to BeeGFS on the sandbox: all bytes the
first time, none on an unchanged re-run, a damaged staged file named and repaired from the
mirror without sending anything, and the staged script trains on the staged MNIST as the
training user with the staged config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import mlops_assets
from mlops_assets.catalog.loader import load_catalog
from mlops_assets.core.probes import file_sync
from mlops_assets.core.transport.hostexec import SshRunner, SshSettings

pytestmark = pytest.mark.sandbox

CATALOG = load_catalog(profile="sandbox").catalog
KEY = "training_files"
DIRS = CATALOG.hpc.beegfs.role_directories()
SCRIPTS = Path(DIRS["scripts"]) / "training"
CONFIGS = Path(DIRS["configs"]) / "training"


def test_stage_rerun_repair_and_train(sandbox: Path, cli_session: Any, tmp_path: Path) -> None:
    for d in ("scripts", "configs"):  # from nothing: target and upload mirror
        shutil.rmtree(Path(DIRS[d]) / "training", ignore_errors=True)
        shutil.rmtree(Path(DIRS[d]) / ".training.upload", ignore_errors=True)
    package = sum(
        file_sync.package_tree(t).manifest.total_bytes for t in file_sync.TRAINING_TREES.values()
    )
    st = cli_session(tmp_path)

    rows, res = st.run("materialize", KEY)
    assert res.returncode == 0 and rows[(KEY, f"{KEY}_manifest_verifies")]["passed"], rows
    md = st.metadata(KEY)
    assert md["bytes_transferred"] == package > 0 and md["targets_changed"] == 2, md
    assert (SCRIPTS / "train_mnist.py").read_bytes() == (
        Path(mlops_assets.__file__).parent / "training/scripts/train_mnist.py"
    ).read_bytes()
    assert (CONFIGS / ".mlops-manifest.json").is_file() and (
        SCRIPTS / "train_mnist.py"
    ).owner() == CATALOG.hpc.beegfs.training_user

    rows, _ = st.run("materialize", KEY)
    md = st.metadata(KEY)
    assert md["bytes_transferred"] == 0 and md["targets_changed"] == 0, md

    with open(CONFIGS / "mnist.json", "a") as fh:
        fh.write(" ")
    rows, res = st.run("validate", KEY)
    row = rows[(KEY, f"{KEY}_manifest_verifies")]
    assert (
        not row["passed"]
        and res.returncode == 1
        and f"{CONFIGS}: changed: mnist.json" in row["detail"]
    ), row
    rows, _ = st.run("materialize", KEY)
    md = st.metadata(KEY)
    assert (
        rows[(KEY, f"{KEY}_manifest_verifies")]["passed"]
        and md["bytes_transferred"] == 0
        and md["targets_changed"] == 1
    ), md

    # the staged files are usable: MLOPS-1.1's script + config on the staged MNIST (CPU, 1 epoch)
    login = CATALOG.hpc.access.login
    runner = SshRunner(
        SshSettings(login.host, login.port, login.user, login.key_path, login.known_hosts)
    )
    out = f"{DIRS['jobs']}/test-train-mnist"
    try:
        res2 = runner.run(
            [
                "sh",
                "-c",
                'cd -- "$1" && shift && exec "$@"',
                "sh",
                CATALOG.hpc.beegfs.root,
                CATALOG.hpc.python,
                "scripts/training/train_mnist.py",
                "--config",
                "configs/training/mnist.json",
                "--set",
                "device=cpu",
                "--set",
                "epochs=1",
                "--set",
                f"output_dir={out}",
                "--set",
                "min_accuracy=0.8",
            ],
            timeout_s=300,
        )
        assert res2.ok, res2.stderr[-2000:]
        metrics = json.loads(res2.stdout.strip().splitlines()[-1])
        assert (
            metrics["accuracy"] >= 0.8
            and metrics["train_items"] == CATALOG.datasets["mnist"].splits["train"]
        ), metrics
        assert (Path(metrics["output"]) / "model.pt").is_file()
        print(
            f"staged train_mnist.py, 1 CPU epoch: accuracy {metrics['accuracy']}, "
            f"{metrics['training_time_seconds']} s"
        )
    finally:
        runner.run(["rm", "-rf", "--", out])
        runner.close()
