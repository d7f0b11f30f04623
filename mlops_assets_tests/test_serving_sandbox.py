"""The serving group end to end on the sandbox: a real MNIST training job (SLURM), registered
in the real MLflow server and copied to SeaweedFS (standing in for MinIO), then
`model_mnist_served`: the InferenceService applied to the Kubernetes API STAND-IN (no
controller runs there, so nothing in it ever starts a pod), and KServe 0.21's own Python model
server started on loopback on the registered model.pt, measured under load and scraped by the
real Prometheus (job `kserve`, file_sd).

Proves: one materialization trains nothing new, registers, copies and serves, and every serving
check passes with measured figures; an unchanged re-run reuses the running server; an endpoint
that serves the wrong model fails `served_predictions_right`, naming the accuracy and the
misses."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from mlops_assets.catalog.schema import Catalog
from mlops_assets.platform import active, build_resources
from mlops_assets_tests.conftest import (
    _free_port,
    check_evaluations,
    forget_registered,
    materialize_with,
    materialized_meta,
)

pytestmark = pytest.mark.sandbox

RESOURCES = ("hpc", "s3", "mlflow", "kubernetes", "prometheus")
SERVED_CHECKS = {
    "served_deploy_within_budget",
    "served_ready_within_budget",
    "served_p95_latency_within_threshold",
    "served_throughput_at_least",
    "served_requests_in_prometheus",
    "served_predictions_right",
}


@pytest.fixture(scope="module")
def cat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Catalog]:
    """The active catalog with its own registered name, prefix and InferenceService, and its
    own server state directory; the server it starts is stopped at the end."""
    base = active().catalog
    tag = uuid.uuid4().hex[:8]
    reg = base.registry.mnist.model_copy(
        update={"registered_name": f"mnist-serve-{tag}", "prefix": f"mnist-serve-{tag}"}
    )
    served = base.serving.mnist
    state = str(tmp_path_factory.mktemp("serving"))
    # a port of its own: the main command's server may hold the catalog's
    local = served.local.model_copy(update={"state_dir": state, "port": _free_port()})
    mine = {"local": local, "isvc_name": f"mnist-{tag}"}
    c = base.model_copy(
        update={
            "registry": base.registry.model_copy(update={"mnist": reg}),
            "serving": base.serving.model_copy(update={"mnist": served.model_copy(update=mine)}),
        }
    )
    yield c
    from mlops_assets.defs.serving.definitions import local_server

    local_server(c.serving.mnist).stop()
    forget_registered(c, isvc=True)


def _defs(c: Catalog) -> list[Any]:
    from mlops_assets.defs.registry.definitions import minio_asset, registered_asset
    from mlops_assets.defs.serving.definitions import (
        live_checks,
        served_asset,
        served_recorded_checks,
    )

    return [
        registered_asset(c),
        minio_asset(c),
        served_asset(c),
        served_recorded_checks(),
        live_checks(c),
    ]


def _run(c: Catalog, instance: dg.DagsterInstance, items: list[Any]) -> dg.ExecuteInProcessResult:
    return materialize_with(c, instance, items, RESOURCES)


_meta = materialized_meta
_checks = check_evaluations


@pytest.fixture(scope="module")
def served(
    cat: Catalog, mnist_trained: tuple[dg.DagsterInstance, dict[str, Any]]
) -> tuple[dg.DagsterInstance, dg.ExecuteInProcessResult]:
    instance, _ = mnist_trained
    return instance, _run(cat, instance, _defs(cat))


def test_register_copy_serve_with_every_check_measured(
    cat: Catalog, served: tuple[dg.DagsterInstance, dg.ExecuteInProcessResult]
) -> None:
    _, result = served
    cfg = cat.serving.mnist
    meta = _meta(result, "model_mnist_served")
    copied = _meta(result, "model_mnist_minio")
    assert meta["version"] == copied["version"] and meta["model_sha256"] == copied["model_sha256"]
    assert meta["storage_uri"] == f"s3://models/{cat.registry.mnist.prefix}/{meta['version']}"
    assert meta["applied"] == "created" and meta["reused"] is False
    assert 0 < meta["ready_seconds"] < cfg.ready_budget_s
    assert meta["load_completed"] == cfg.load_requests and meta["load_errors"] == 0
    assert 0 < meta["load_p50_ms"] <= meta["load_p95_ms"]
    # the server counted at least the load's requests, and Prometheus caught up with it
    assert meta["server_predict_count"] >= cfg.load_requests
    assert meta["prometheus_predict_count"] >= meta["server_predict_count"]
    checks = _checks(result)
    assert set(checks) >= SERVED_CHECKS
    assert {n: checks[n].passed for n in SERVED_CHECKS} == dict.fromkeys(SERVED_CHECKS, True)
    acc = checks["served_predictions_right"].metadata["measured"].value
    assert acc >= cfg.min_accuracy
    # the manifest as the (stand-in) API holds it: v2, the version's storage URI
    kube = build_resources(cat)["kubernetes"]
    obj = kube.get(
        f"/apis/serving.kserve.io/v1beta1/namespaces/{cfg.namespace}/inferenceservices/"
        f"{cfg.isvc_name}"
    )
    model = obj["spec"]["predictor"]["model"]
    assert model["storageUri"] == meta["storage_uri"] and model["protocolVersion"] == "v2"
    assert obj["metadata"]["labels"]["mlops-assets/version"] == meta["version"]
    print(
        f"served version {meta['version']}: ready {meta['ready_seconds']} s, p50 "
        f"{meta['load_p50_ms']} ms, p95 {meta['load_p95_ms']} ms, "
        f"{meta['load_throughput_rps']} req/s, held-out accuracy {acc}, Prometheus "
        f"{meta['prometheus_predict_count']} after {meta['prometheus_wait_s']} s"
    )


def test_an_unchanged_rerun_registers_nothing_and_keeps_the_server(
    cat: Catalog, served: tuple[dg.DagsterInstance, dg.ExecuteInProcessResult]
) -> None:
    from mlops_assets.defs.serving.definitions import local_server

    instance, first = served
    before = local_server(cat.serving.mnist).running()
    assert before is not None
    again = _run(cat, instance, _defs(cat))
    reg = _meta(again, "model_mnist_registered")
    meta = _meta(again, "model_mnist_served")
    assert reg["created"] is False
    assert meta["reused"] is True and meta["applied"] == "updated"
    assert meta["version"] == _meta(first, "model_mnist_served")["version"]
    after = local_server(cat.serving.mnist).running()
    assert after is not None and after.pid == before.pid


def test_an_endpoint_serving_the_wrong_model_fails_the_held_out_check(
    cat: Catalog,
    served: tuple[dg.DagsterInstance, dg.ExecuteInProcessResult],
    tmp_path: Path,
) -> None:
    """The server is swapped for one whose output rows are rotated (it answers label + 1):
    the live check asks the endpoint, not the metadata, and names what it saw."""
    from mlops_assets.core.probes.model_endpoint import wait_ready
    from mlops_assets.defs.serving.definitions import PAYLOAD, local_server

    instance, result = served
    cfg = cat.serving.mnist
    meta = _meta(result, "model_mnist_served")
    srv = local_server(cfg)
    good = srv.dir / "models" / meta["version"] / "model.pt"
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    subprocess.run(
        [
            cfg.local.python,
            "-c",
            "import sys, torch; s = torch.load(sys.argv[1]); "
            "s['fc2.weight'] = s['fc2.weight'].roll(1, 0); "
            "s['fc2.bias'] = s['fc2.bias'].roll(1, 0); torch.save(s, sys.argv[2])",
            str(good),
            str(wrong / "model.pt"),
        ],
        check=True,
    )
    srv.stop()
    srv.start(cfg.local.python, PAYLOAD, str(wrong), f"{meta['version']}:{meta['model_sha256']}")
    assert wait_ready(srv.url, cfg.model_name, time.monotonic() + 120) is not None
    from mlops_assets.defs.serving.definitions import live_checks, served_asset

    res = build_resources(cat)
    check = dg.materialize(
        [served_asset(cat), live_checks(cat)],
        resources={k: res[k] for k in RESOURCES},
        instance=instance,
        selection=dg.AssetSelection.checks(
            dg.AssetCheckKey(dg.AssetKey("model_mnist_served"), "served_predictions_right")
        ),
        raise_on_error=False,
    )
    ev = _checks(check)["served_predictions_right"]
    assert ev.passed is False
    value = ev.metadata["measured"].value
    assert value < 0.2, value
    detail = ev.metadata["detail"].value
    assert "held-out digits" in detail and "first misses (label->predicted)" in detail
    assert "7->8" in detail or "1->2" in detail or "0->1" in detail, detail


def test_sandbox_up_drops_dead_targets_and_down_stops_the_announced_server(
    cat: Catalog,
    served: tuple[dg.DagsterInstance, dg.ExecuteInProcessResult],
    sandbox: Path,
) -> None:
    """The model server outlives its run, so the sandbox owns its end: `up` removes a target
    file whose server is gone (left by a crash, or a state directory kept from an earlier boot;
    it made prometheus_targets_up fail in CI), keeping the live one; `down` stops the server
    announced there and removes its file. Runs last here: it stops this module's server."""
    import json
    import os

    from mlops_assets.defs.serving.definitions import local_server

    srv = local_server(cat.serving.mnist)
    now = srv.running()
    assert now is not None and srv.sd_file is not None and srv.sd_file.is_file()
    dead = srv.sd_file.with_name(f"kserve-{_free_port()}.json")
    dead.write_text(json.dumps([{"targets": [dead.stem.replace("kserve-", "127.0.0.1:")]}]))
    old = time.time() - 600  # past the 2 minutes a starting server is given
    os.utime(dead, (old, old))
    sandbox_sh = str(Path(__file__).resolve().parent.parent / "deploy" / "sandbox" / "sandbox.sh")
    try:
        up = subprocess.run(
            ["bash", sandbox_sh, "up", "prometheus"], capture_output=True, text=True, timeout=300
        )
        assert up.returncode == 0, up.stderr[-2000:]
        assert not dead.exists() and f"removing {dead.name}" in up.stderr
        assert srv.sd_file.is_file(), "the live server's target was dropped"
        down = subprocess.run(
            ["bash", sandbox_sh, "down", "kserve"], capture_output=True, text=True, timeout=300
        )
        assert down.returncode == 0, down.stderr[-2000:]
        assert f"stopping the model server on 127.0.0.1:{srv.port} (pid {now.pid})" in down.stderr
        assert srv.running() is None and not srv.sd_file.exists()
    finally:
        dead.unlink(missing_ok=True)
