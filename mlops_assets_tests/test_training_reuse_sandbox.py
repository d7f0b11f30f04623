"""Issue 19: a re-materialization of `smoke_mnist_training` with unchanged inputs trains
nothing. Real SLURM (the training job), real BeeGFS paths on the sandbox and the CLI, in one
DAGSTER_HOME that also holds the dataset and image materializations the training depends on,
as the README's main command leaves it. The decision itself is unit-tested in
core/test_core_training_reuse.py; here: the first run records its inputs, the re-run reuses it
without a SLURM job, and a checkpoint changed on disk is never reused."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.sandbox

ASSET = "smoke_mnist_training"
UPSTREAM = ("dataset_mnist", "container_pytorch_24_07")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def session(sandbox: Path, cli_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    s = cli_session(tmp_path_factory.mktemp("reuse-home"))
    rows, res = s.run("materialize", *UPSTREAM, ASSET)
    assert rows[(ASSET, "materialized")]["passed"], res.stdout[-3000:] + res.stderr[-3000:]
    return s


def test_a_training_records_what_it_was_trained_on(session: Any) -> None:
    meta = session.metadata(ASSET)
    assert meta["reused"] is False and meta["slurm_state"] == "COMPLETED"
    assert meta["train_reason"].startswith("no digest recorded for") or meta["train_reason"] in (
        "no earlier training recorded",
    ), meta["train_reason"]
    inputs = meta["training_inputs"]
    assert set(inputs) == {"code", "config", *UPSTREAM}
    assert inputs["code"] == meta["code_digest"]
    assert inputs["dataset_mnist"] == session.metadata("dataset_mnist")["manifest_digest"]
    assert (
        inputs["container_pytorch_24_07"] == session.metadata("container_pytorch_24_07")["sha256"]
    )
    out = Path(meta["output_dir"])
    assert meta["outputs_sha256"] == {
        str(out / "model.pt"): sha256(out / "model.pt"),
        str(out / "metrics.json"): sha256(out / "metrics.json"),
    }


def test_an_unchanged_rerun_trains_nothing(session: Any) -> None:
    first = session.metadata(ASSET)
    rows, res = session.run("materialize", ASSET)
    assert rows[(ASSET, "materialized")]["passed"], res.stdout[-3000:]
    again = session.metadata(ASSET)
    assert again["reused"] is True, again.get("reuse_reason")
    assert again["reuse_reason"].startswith(f"inputs unchanged since job {first['slurm_job_id']}")
    # the same job's figures and time: no SLURM job ran, and the evidence keeps its age
    for key in ("slurm_job_id", "trained_at", "accuracy", "output_dir", "training_inputs"):
        assert again[key] == first[key], key


def test_a_checkpoint_changed_on_disk_is_trained_again(session: Any) -> None:
    before = session.metadata(ASSET)
    model = Path(before["output_dir"]) / "model.pt"
    model.write_bytes(model.read_bytes() + b"\0")  # bit rot, or someone's edit
    rows, res = session.run("materialize", ASSET)
    assert rows[(ASSET, "materialized")]["passed"], res.stdout[-3000:]
    after = session.metadata(ASSET)
    assert after["reused"] is False and after["slurm_job_id"] != before["slurm_job_id"]
    assert after["train_reason"] == f"its output {model} is missing or changed"
