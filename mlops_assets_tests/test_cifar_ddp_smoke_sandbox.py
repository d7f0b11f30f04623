"""MLOPS-2.1 on the sandbox's real SLURM: `smoke_cifar10_ddp_training` submits ONE batch job
over two nodes of the smoke partition (`--nodes=2 --ntasks-per-node=1`), whose script runs
cifar_ddp.py once per node through `srun`; the ranks meet at the first node of the job's
nodelist, train torchvision's ResNet-18 over gloo on the nodes' CPUs (the GPUs are fake) on
the CIFAR-10 that `dataset_cifar10` staged on BeeGFS (the mirror's generated stand-in), and
rank 0 reports through Pipes and writes model.pt + metrics.json to BeeGFS. Needs the
multi-node sandbox, as test_ddp_smoke_sandbox.py does (its helpers are reused)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets_tests.test_ddp_smoke_sandbox import need_two_nodes
from mlops_assets_tests.test_smoke_slurm_sandbox import (
    failure,
    gpus_declared_real,
    run,
    smoke_asset,
)

pytestmark = pytest.mark.sandbox
ASSET = "smoke_cifar10_ddp_training"


def materialized(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    assert result.success, failure(result)
    mat = result.asset_materializations_for_node(ASSET)[0]
    return {k: v.value for k, v in mat.metadata.items()}


@pytest.fixture
def staged_cifar10(sandbox: Path, cli: Any) -> None:
    staged = cli(
        "materialize", "--select", "dataset_cifar10", "--format", "json", env={"DAGSTER_HOME": ""}
    )
    assert staged.returncode == 0, staged.stdout[-2000:] + staged.stderr[-2000:]


def test_cifar_ddp_smoke_trains_resnet18_across_two_nodes_in_one_job(
    staged_cifar10: None,
) -> None:
    from mlops_assets.platform import active

    need_two_nodes()
    cat = active().catalog
    c = cat.smoke.cifar_ddp
    meta = materialized(run(smoke_asset(ASSET)))
    result = meta["result"]
    # one SLURM job, two nodes, one rank on each, every rank's host reported
    assert meta["slurm_state"] == "COMPLETED" and meta["slurm_exit_code"] == 0
    job_nodes = meta["slurm_nodes"].split(",")
    ran_on = [r["node"] for r in result["ranks"]]
    assert len(job_nodes) == 2 and sorted(ran_on) == sorted(job_nodes), (ran_on, job_nodes)
    assert meta["slurm_alloc_gpus"] == 2 * cat.smoke.jobs.cifar_ddp.gpus, "GRES on both nodes"
    assert meta["distinct_nodes"] == 2 and meta["distinct_hostnames"] == 2
    # the task on the stand-in, each figure verified
    assert meta["model"] == f"resnet18 ({c.stem} stem)"
    assert meta["backend"] == "gloo" and meta["device"] == "cpu" and meta["cpu_fallback"] is True
    assert meta["allreduce_exact"] is True and meta["params_identical"] is True
    assert meta["train_samples"] == c.train_samples and meta["test_samples"] == 1000
    losses = result["epoch_losses"]
    assert len(losses) == c.epochs and losses[-1] < losses[0], losses
    assert meta["accuracy"] > c.min_accuracy
    assert meta["total_seconds"] < c.max_seconds <= 90, "the whole run well under 90 s"
    assert meta["samples_per_s"] > 0 and meta["single_node_samples_per_s"] > 0
    assert len(result["rank_max_rss_bytes"]) == 2
    assert max(result["rank_max_rss_bytes"]) < cat.smoke.jobs.cifar_ddp.mem_mb << 20
    assert result["comm_warnings"] == [], result["comm_warnings"]
    # the checkpoint and metrics.json on BeeGFS, under the job's id
    out = Path(meta["output_dir"])
    assert out.name == f"job-{meta['slurm_job_id']}" and (out / "model.pt").stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == meta["accuracy"] and metrics["data_stand_in"] is True
    # fake GPUs, the stand-in and an unjudged sandbox speedup are said, nothing else is wrong
    assert meta["verdict"] == "WARN", result["messages"]
    assert all(
        "fake GPUs" in m or "not judged" in m or "GENERATED CIFAR-10 stand-in" in m
        for m in result["messages"]
    ), result["messages"]
    assert not any(k.endswith(("tflops", "gbps")) for k in meta), "no GPU figure is invented"


def test_cifar_ddp_smoke_with_gpus_declared_real_fails_with_no_cuda_device(
    staged_cifar10: None,
) -> None:
    """Production's config (no allow_cpu) on the driverless GPUs: rank 0 says "no CUDA
    device" through Pipes, the other rank stops at once, nothing trains or is written."""
    result = run(smoke_asset(ASSET, gpus_declared_real()))
    assert not result.success
    text, meta = failure(result)
    assert "FAILED with exit code 1" in text and "no CUDA device" in text, text
    assert "accuracy" not in meta and "checkpoint" not in meta, "nothing trained"
