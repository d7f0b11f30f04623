"""MLOPS-2.1's payload (cifar_ddp.py) run for real on this machine, through the MNIST DDP
payload's harness (test_ddp_payload.py: two processes with the SLURM variables srun gives two
nodes' tasks, gloo over loopback, the HPC side's torch and torchvision). The data is the
sandbox mirror's generated CIFAR-10 stand-in, made here by the mirror's own generator
(deploy/sandbox/standins/hub_data.py) in the real pickle layout; the sizes and the bar are the
sandbox catalog's, so this is the run the sandbox's SLURM job makes, minus SLURM."""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from mlops_assets.core.slurm_jobs import smoke_payload_config
from mlops_assets.platform import active
from mlops_assets_tests.payloads.test_ddp_payload import PAYLOADS, STANDINS, launch, torch_python

PAYLOAD = "cifar_ddp.py"


@pytest.fixture(scope="module")
def cifar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mirror's generated CIFAR-10 (5 x 1,000 train + 1,000 test) as dataset_cifar10
    stages it: `<dir>/cifar-10-batches-py/`, readme.html included (it says stand-in)."""
    sys.path.insert(0, str(STANDINS))
    import hub_data

    tgz, _batches = hub_data.cifar_files()
    root = tmp_path_factory.mktemp("cifar10")
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
        tar.extractall(root, filter="data")
    assert (root / "cifar-10-batches-py" / "data_batch_5").is_file()
    return root


def sandbox_config(cifar: Path, models: Path, **changes: Any) -> dict[str, Any]:
    """What the sandbox's asset sends (the catalog's smoke.cifar_ddp), with this test's
    dataset and models directories and the nodes the harness starts."""
    cfg = smoke_payload_config(active().catalog, "cifar_ddp")
    return {
        **cfg,
        "dataset_dir": str(cifar),
        "models_dir": str(models),
        "nodes_available": 2,
        **changes,
    }


def run_two(sets: dict[str, Any]) -> tuple[dict[str, Any], str, int, dict[str, Any], int]:
    lead, worker = launch(torch_python(), [0, 1], 2, sets, payload=PAYLOAD, timeout_s=240)
    return lead[0], lead[1], lead[2], worker[0], worker[2]


def test_two_ranks_train_resnet18_on_the_stand_in_and_every_figure_is_reported(
    cifar: Path, tmp_path: Path
) -> None:
    cat = active().catalog.smoke.cifar_ddp
    cfg = sandbox_config(cifar, tmp_path / "models")
    lead, err, rc, worker, worker_rc = run_two(cfg)
    assert (rc, worker_rc) == (0, 0), lead.get("messages")
    print(json.dumps({k: v for k, v in lead.items() if k != "ranks"}, indent=1))
    assert lead["model"] == f"resnet18 ({cat.stem} stem)" and lead["parameters"] > 11_000_000
    assert lead["backend"] == "gloo" and lead["device"] == "cpu" and lead["cpu_fallback"] is True
    # every rank's host, the exact collective, identical parameters
    assert [(r["rank"], r["node"]) for r in lead["ranks"]] == [(0, "nodea"), (1, "nodeb")]
    assert all(r["hostname"] for r in lead["ranks"])
    assert lead["allreduce_exact"] is True and lead["params_identical"] is True
    # the sandbox's sizes, and what they gave
    assert lead["train_samples"] == cat.train_samples and lead["test_samples"] == 1000
    assert lead["epochs"] == cat.epochs == len(lead["epoch_losses"]) == len(lead["epoch_seconds"])
    assert lead["epoch_losses"][-1] < lead["epoch_losses"][0], "the loss falls"
    assert lead["accuracy"] > cat.min_accuracy, "the stand-in's bar; chance is 10 %"
    assert lead["samples_per_s"] > 0 and lead["single_node_samples_per_s"] > 0
    assert lead["speedup"] == pytest.approx(
        lead["samples_per_s"] / lead["single_node_samples_per_s"], rel=0.01
    )
    assert lead["total_seconds"] < cat.max_seconds <= 90, "the whole job well under 90 s"
    assert len(lead["rank_max_rss_bytes"]) == 2 and min(lead["rank_max_rss_bytes"]) > 0
    assert max(lead["rank_max_rss_bytes"]) < active().catalog.smoke.jobs.cifar_ddp.mem_mb << 20
    assert lead["comm_warnings"] == []
    # the checkpoint and metrics.json, as mnist_train writes them
    out = Path(lead["output_dir"])
    assert out == tmp_path / "models" / "cifar10-resnet18" / "job-4242"
    assert Path(lead["checkpoint"]) == out / "model.pt" and (out / "model.pt").stat().st_size > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == lead["accuracy"] and metrics["loss"] == lead["epoch_losses"][-1]
    assert metrics["data_stand_in"] is True and metrics["nodes"] == ["nodea", "nodeb"]
    reload = subprocess.run(
        [
            torch_python(),
            "-c",
            f"import sys, torch; sys.path.insert(0, {str(PAYLOADS)!r}); import cifar_ddp; "
            f"m = cifar_ddp.resnet18(torch, {{'stem': {cat.stem!r}}}); "
            f"m.load_state_dict(torch.load({str(out / 'model.pt')!r})); print('reloaded')",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert reload.stdout.strip() == "reloaded", reload.stderr[-2000:]
    # nothing failed; what this machine cannot judge is said, and so is the stand-in
    assert lead["data_stand_in"] is True
    assert lead["verdict"] == "WARN", lead["messages"]
    msgs = lead["messages"]
    assert any("GENERATED CIFAR-10 stand-in" in m and "not CIFAR-10" in m for m in msgs), msgs
    assert any("fake GPUs" in m for m in msgs) and any(
        "smoke.cifar_ddp.min_speedup" in m for m in msgs
    )
    assert "Training Complete" in err and "mlops stderr mark" not in err
    assert worker["role"] == "worker" and worker["node"] == "nodeb"


def test_a_run_that_cannot_learn_fails_its_bar_with_the_figures_named(
    cifar: Path, tmp_path: Path
) -> None:
    """Sabotage: lr 0, so the weights never move and accuracy stays near chance."""
    cat = active().catalog.smoke.cifar_ddp
    sets = sandbox_config(cifar, tmp_path, lr=0.0, epochs=1, train_samples=256)
    lead, _, rc, _, worker_rc = run_two(sets)
    assert (rc, worker_rc) == (1, 0), "rank 0 reports the failure; the worker trained fine"
    assert lead["verdict"] == "FAIL" and lead["accuracy"] < 0.3
    assert f"test accuracy {lead['accuracy']} not above {cat.min_accuracy}" in lead["error"]
    assert Path(lead["checkpoint"]).is_file(), "the checkpoint of a failed run is still written"


def test_without_the_staged_dataset_every_rank_says_what_to_materialize(tmp_path: Path) -> None:
    lead, _, rc, worker, worker_rc = run_two(
        {"dataset_dir": str(tmp_path / "none"), "models_dir": str(tmp_path), "allow_cpu": True}
    )
    assert (rc, worker_rc) == (1, 1)
    assert "stage the dataset first (materialize dataset_cifar10)" in lead["error"]
    assert worker["error"].startswith("rank 0 aborted the run: FileNotFoundError")
    assert worker["payload_seconds"] < 60, "told at once, not after the rendezvous timeout"


def test_the_shipped_kit_runs_it_and_a_batch_naming_other_code_is_refused(tmp_path: Path) -> None:
    """As the smoke client ships its kit, run by a bare interpreter (-I: no mlops_assets):
    cifar_ddp finds mnist_ddp's machinery there; a pickle naming any global but numpy's
    array is refused before anything runs."""
    from mlops_assets.resources.shipping import SMOKE, kit

    ship = tmp_path / "mlops_payloads"
    ship.mkdir()
    for name, row in kit(SMOKE).items():
        (ship / name).write_bytes(row.local().read_bytes())
    evil = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    evil.parent.mkdir()
    evil.write_bytes(pickle.dumps(subprocess.Popen, protocol=3))  # names subprocess.Popen
    code = (
        f"import sys, json; sys.path.insert(0, {str(ship)!r}); import cifar_ddp, mnist_ddp; "
        "assert cifar_ddp.CIFAR.finish is not None and mnist_ddp.MNIST.finish is None\n"
        f"try:\n    cifar_ddp.read_batch({str(evil)!r})\n"
        "except Exception as exc:\n    print(json.dumps([type(exc).__name__, str(exc)]))"
    )
    proc = subprocess.run(
        [torch_python(), "-I", "-c", code], capture_output=True, text=True, timeout=60, cwd=ship
    )
    assert proc.returncode == 0, proc.stderr
    kind, msg = json.loads(proc.stdout)
    assert kind == "UnpicklingError" and "refusing subprocess.Popen" in msg
