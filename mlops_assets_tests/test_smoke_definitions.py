"""The smoke domain's definitions: assets keep their keys and lineage, automation comes from
the catalog, and the node sensor's decision names only the nodes that changed."""

from __future__ import annotations

import dagster as dg

from mlops_assets.definitions import defs
from mlops_assets.defs.smoke.definitions import NODE_JOB, node_run_requests
from mlops_assets.platform import active

SMOKE = ("smoke_gpu", "smoke_multi_gpu_nccl", "smoke_mnist_training")


def test_smoke_assets_are_materializable_with_freshness_and_automation() -> None:
    graph = defs().resolve_asset_graph()
    for key in SMOKE:
        node = graph.get(dg.AssetKey(key))
        assert node.is_materializable and node.group_name == "smoke"
        assert node.freshness_policy is not None and node.automation_condition is not None
    assert "dataset_mnist" in {p.to_user_string() for p in graph.get(dg.AssetKey("smoke_mnist_training")).parent_keys}


def test_schedules_and_sensor_from_the_catalog() -> None:
    d = defs()
    cat = active().catalog
    schedules = {s.name: s for s in d.schedules or []}
    assert schedules["light_checks_schedule"].cron_schedule == cat.smoke.light_checks_cron
    assert schedules["nightly_full_validation_schedule"].cron_schedule == cat.smoke.full_validation_cron
    sensor = next(s for s in d.sensors or [] if s.name == "slurm_gpu_node_sensor")
    assert sensor.minimum_interval_seconds == cat.smoke.node_sensor_interval_s


def test_light_job_runs_only_light_checks_and_the_nightly_job_everything() -> None:
    d = defs()
    everything = d.resolve_asset_graph().asset_check_keys
    light = d.resolve_job_def("light_checks").asset_layer.asset_graph.asset_check_keys
    assert light and len(light) < len(everything)
    assert dg.AssetCheckKey(dg.AssetKey("gpu_nodes"), "gpu_nvidia_smi_matches_gres_per_node") not in light  # a job per node: not light
    assert dg.AssetCheckKey(dg.AssetKey("slurm"), "slurm_controller_responds") in light
    assert d.resolve_job_def("full_validation").asset_layer.asset_graph.asset_check_keys == everything
    assert {k.to_user_string() for k in d.resolve_job_def(NODE_JOB).asset_layer.asset_graph.executable_asset_keys} == {"smoke_gpu", "smoke_multi_gpu_nccl"}


def test_gres_change_on_one_of_three_nodes_requests_that_node_only() -> None:
    cat = active().catalog
    before = "gpu01|gpu|idle|64|512000|gpu:4|none\ngpu02|gpu|mixed|64|512000|gpu:4|none\ngpu03|gpu|drained|64|512000|gpu:4|fan"
    after = before.replace("gpu02|gpu|mixed|64|512000|gpu:4", "gpu02|gpu|mixed|64|512000|gpu:8")
    first, cursor, _ = node_run_requests(cat, None, before, 0)
    assert first == []
    from mlops_assets.core.node_watch import decode_cursor

    requests, _, found = node_run_requests(cat, decode_cursor(cursor), after, 1)
    assert [(c.node, c.reason) for c in found] == [("gpu02", "gres_changed")]
    assert [r.tags["mlops/node"] for r in requests] == ["gpu02"]
    assert requests[0].run_config["ops"]["smoke_gpu"]["config"]["node"] == "gpu02"
