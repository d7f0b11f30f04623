"""Issue 16 item 3 on the sandbox's real SLURM: `smoke_ddp_training` submits ONE batch job over
two nodes of the smoke partition (`--nodes=2 --ntasks-per-node=1`), whose script runs the
payload once per node through `srun`; the ranks meet at the first node of the job's nodelist,
train MNIST over gloo on the nodes' CPUs (the GPUs are fake) and rank 0 reports through Pipes.
Needs the multi-node sandbox (nodes in their own network and UTS namespaces): a smoke
partition with at least 2 usable GPU nodes. On a partition with one usable node the same
asset trains on that node alone and says the multi-node part is untested (a WARN)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets.core.parse.slurm.nodes import SINFO_NODE_FORMAT
from mlops_assets.core.slurm_jobs import usable_partition_nodes
from mlops_assets.platform import active, build_resources
from mlops_assets_tests.sandbox_nodes import skip_or_fail
from mlops_assets_tests.test_smoke_slurm_sandbox import (
    failure,
    gpus_declared_real,
    run,
    smoke_asset,
)

pytestmark = pytest.mark.sandbox
ASSET = "smoke_ddp_training"


ONE_NODE_PARTITION = "h100"  # deploy/sandbox/slurm.inc.sh: gpu-03 alone


def usable_nodes(partition: str | None = None) -> list[str]:
    """The smoke partition's (or `partition`'s) usable GPU nodes, as the asset counts them."""
    cat = active().catalog
    out = subprocess.run(
        ["sinfo", "-h", "-N", "-o", SINFO_NODE_FORMAT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return usable_partition_nodes(out, partition or cat.smoke.partition, cat.smoke.jobs.ddp.gpus)


def need_two_nodes() -> list[str]:
    """The smoke partition's usable GPU nodes, at least two (a failure under CI=true)."""
    nodes = usable_nodes()
    if len(nodes) < 2:
        skip_or_fail(
            f"the smoke partition has {len(nodes)} usable GPU node(s) {nodes}: multi-node DDP "
            "needs the multi-node sandbox (issue 16)"
        )
    return nodes


@pytest.fixture
def staged_mnist(sandbox: Path, cli: Any) -> None:
    staged = cli(
        "materialize", "--select", "dataset_mnist", "--format", "json", env={"DAGSTER_HOME": ""}
    )
    assert staged.returncode == 0, staged.stdout[-2000:] + staged.stderr[-2000:]


def materialized(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    assert result.success, failure(result)
    mat = result.asset_materializations_for_node(ASSET)[0]
    return {k: v.value for k, v in mat.metadata.items()}


def test_ddp_smoke_trains_across_two_nodes_in_one_job(staged_mnist: None) -> None:
    nodes = need_two_nodes()
    cat = active().catalog
    meta = materialized(run(smoke_asset(ASSET)))
    result = meta["result"]
    ran_on = [r["node"] for r in result["ranks"]]
    # one SLURM job, two nodes, one rank on each, every one of them in the job's nodelist
    assert meta["slurm_state"] == "COMPLETED" and meta["slurm_exit_code"] == 0
    job_nodes = meta["slurm_nodes"].split(",")
    assert len(job_nodes) == 2 and sorted(ran_on) == sorted(job_nodes), (ran_on, job_nodes)
    assert set(job_nodes) <= set(nodes)
    assert meta["slurm_alloc_gpus"] == 2 * cat.smoke.jobs.ddp.gpus, "GRES on both nodes"
    assert meta["world_size"] == 2 and meta["distinct_nodes"] == 2
    assert meta["distinct_hostnames"] == 2, "each node has its own UTS namespace and hostname"
    assert meta["master"].split(":")[0] == result["expected_nodes"][0], "the nodelist's first"
    # the figures, each verified
    assert meta["backend"] == "gloo" and meta["device"] == "cpu" and meta["cpu_fallback"] is True
    assert meta["allreduce_exact"] is True and meta["params_identical"] is True
    assert meta["accuracy"] > cat.smoke.ddp.min_accuracy
    assert meta["total_seconds"] < cat.smoke.ddp.max_seconds, "Training Complete within 600 s"
    assert result["comm_warnings"] == [], result["comm_warnings"]
    assert meta["samples_per_s"] > 0 and meta["single_node_samples_per_s"] > 0
    assert meta["speedup"] > 0 and meta["scaling_efficiency"] > 0
    # fake GPUs and a sandbox speedup are said, nothing else is wrong
    assert meta["verdict"] == "WARN", meta.get("messages")
    assert all("fake GPUs" in m or "not judged" in m for m in result["messages"]), result[
        "messages"
    ]
    assert not any(k.endswith(("tflops", "gbps")) for k in meta), "no GPU figure is invented"


def test_ddp_smoke_on_a_one_node_partition_says_multi_node_is_untested(
    staged_mnist: None,
) -> None:
    """The one-node case is chosen, not waited for: the smoke runs on the sandbox's one-node
    partition `h100` (gpu-03 alone), through a catalog that names it."""
    nodes = usable_nodes(ONE_NODE_PARTITION)
    if len(nodes) != 1:
        skip_or_fail(
            f"partition {ONE_NODE_PARTITION} has {len(nodes)} usable GPU nodes, this case needs 1"
        )
    cat = active().catalog
    one = cat.model_copy(
        update={"smoke": cat.smoke.model_copy(update={"partition": ONE_NODE_PARTITION})}
    )
    meta = materialized(
        dg.materialize(
            [smoke_asset(ASSET, one)],
            resources={"hpc": build_resources(one)["hpc"]},  # its jobs go to that partition
            instance=dg.DagsterInstance.ephemeral(),
            raise_on_error=False,
        )
    )
    result = meta["result"]
    assert meta["slurm_state"] == "COMPLETED" and meta["slurm_nodes"] == nodes[0]
    assert [r["node"] for r in result["ranks"]] == nodes, "srun ran the one rank on that node"
    assert meta["allreduce_exact"] is True and meta["params_identical"] is True
    assert meta["accuracy"] > active().catalog.smoke.ddp.min_accuracy
    assert meta["verdict"] == "WARN"
    assert any(
        m.startswith("ran on 1 node(s), 2 asked: the partition has 1 usable node(s)")
        for m in result["messages"]
    ), result["messages"]
    assert meta["speedup"] is None, "no speedup over one node on one node"
    assert json.dumps(result["comm_warnings"]) == "[]"


def test_ddp_smoke_with_gpus_declared_real_fails_on_every_rank_with_no_cuda_device(
    staged_mnist: None,
) -> None:
    """Production's config (no allow_cpu) on the sandbox's driverless GPUs: rank 0 reports
    "no CUDA device" through Pipes from inside the srun step, the other ranks stop at once,
    and the job fails with that reason: no silent fallback to gloo."""
    result = run(smoke_asset(ASSET, gpus_declared_real()))
    assert not result.success
    text, meta = failure(result)
    assert "FAILED with exit code 1" in text and "no CUDA device" in text, text
    # the failure names every node of the allocation: right after a short job, accounting's
    # job line can still hold the batch host alone (core/slurm_jobs.outcome_from_sacct)
    allocated = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", str(meta["slurm_job_id"]), "--format=NNodes"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert allocated and len(meta["slurm_nodes"].split(",")) == int(allocated[0]) >= 1, meta
    assert "backend" not in meta and "accuracy" not in meta, "nothing trained"
