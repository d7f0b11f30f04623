"""MLOPS-1.2's fine-tuning loop (`smoke_sft_training`) on the sandbox's real SLURM, over the
real sshd login node: the staged stand-in SmolLM and no_robots are read where the model_ and
dataset_ assets put them on the BeeGFS stand-in, the job trains on its CPU (fake GPUs) with
the HPC Python's torch, and the materialization says stand-in, plain torch, not Oumi. The same
job with lr 0 does not learn and fails naming its figures, with no materialization."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core import smoke_rules as rules
from mlops_assets.platform import active, build_resources

pytestmark = pytest.mark.sandbox
ASSET = "smoke_sft_training"


def sft_asset(catalog: Catalog | None = None) -> dg.AssetsDefinition:
    from mlops_assets.defs.smoke.definitions import sft_asset as build

    return build(catalog or active().catalog)


def materialize(asset: dg.AssetsDefinition) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [asset],
        resources={"hpc": build_resources(active().catalog)["hpc"]},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def staged(sandbox: Path, cli: Any) -> None:
    """The model and dataset the job reads, staged by their own assets."""
    sel = "model_smollm_135m,dataset_no_robots"
    res = cli("materialize", "--select", sel, "--format", "json", env={"DAGSTER_HOME": ""})
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]


def test_sft_smoke_trains_the_stand_in_in_a_real_slurm_job_and_the_loss_falls(
    staged: None,
) -> None:
    cat = active().catalog
    sft, job = cat.smoke.sft, cat.smoke.jobs.sft
    result = materialize(sft_asset())
    assert result.success, [
        e.step_failure_data.user_failure_data
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]
    meta: dict[str, Any] = {
        k: v.value for k, v in result.asset_materializations_for_node(ASSET)[0].metadata.items()
    }
    out = Path(str(meta.get("output_dir", "")))
    try:
        assert meta["slurm_state"] == "COMPLETED" and meta["slurm_alloc_gpus"] == job.gpus
        assert meta["device"] == "cpu" and meta["cpu_fallback"] is True
        assert meta["torch_threads"] == job.cpus
        assert meta["verdict"] == "PASS" and meta["stand_in"] is True
        assert meta["parameters"] == cat.models[sft.model].parameters == 139_584
        assert meta["last_loss"] < meta["first_loss"] * (1 - sft.min_loss_drop_fraction)
        assert meta["eval_loss_after"] < meta["eval_loss_before"]
        assert meta["checkpoint_reloads"] is True and meta["total_seconds"] < sft.max_seconds
        assert 0 < meta["max_rss_bytes"] < job.mem_mb * 2**20
        messages = meta["result"]["messages"]
        assert any(m.startswith(rules.STAND_IN) and "not Oumi" in m for m in messages)
        assert not rules.gpu_figures_in(meta), "no GPU figure is invented"
        assert out.name == f"job-{meta['slurm_job_id']}" and out.parent.name == f"{sft.model}-sft"
        assert str(out).startswith(cat.hpc.beegfs.directory("models"))
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["first_loss"] == meta["first_loss"] and metrics["verdict"] == "PASS"
        assert all(math.isfinite(w) for w in metrics["window_losses"])
        assert (out / "model.safetensors").stat().st_size > 500_000
    finally:
        if out.name.startswith("job-"):
            shutil.rmtree(out, ignore_errors=True)


def test_sft_smoke_with_lr_zero_fails_naming_the_figures(staged: None) -> None:
    """Sabotaged training through the catalog (smoke.sft.lr 0): the job runs, the loss stays
    at chance, the asset fails with first/last loss and the bar, and records nothing."""
    cat = active().catalog
    broken = cat.model_copy(
        update={
            "smoke": cat.smoke.model_copy(
                update={"sft": cat.smoke.sft.model_copy(update={"lr": 0.0})}
            )
        }
    )
    result = materialize(sft_asset(broken))
    assert not result.success
    assert not result.asset_materializations_for_node(ASSET), "a failed smoke must not look fresh"
    ev = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    data = ev.step_failure_data.user_failure_data
    assert data is not None, ev.step_failure_data.error
    text = data.description or ""
    assert "loss did not fall enough" in text, text
    assert f"{cat.smoke.sft.min_loss_drop_fraction:.0%}" in text
    meta: dict[str, Any] = {k: v.value for k, v in data.metadata.items()}
    out = meta.get("output_dir")
    if out:
        shutil.rmtree(str(out), ignore_errors=True)
