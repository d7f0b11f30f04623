"""The smoke domain's definitions: assets keep their keys and lineage, automation comes from
the catalog, and the node sensor's decision names only the nodes that changed."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from mlops_assets.definitions import defs
from mlops_assets.defs.automation.definitions import light_check_keys, nightly_requests
from mlops_assets.defs.smoke.definitions import (
    GPU_NODES,
    GPU_NODES_NAME,
    NODE_ASSETS,
    NODE_JOB,
    container_keys,
    node_run_requests,
    not_probed_busy,
)
from mlops_assets.platform import active

SMOKE = (
    "smoke_gpu",
    "smoke_multi_gpu_nccl",
    "smoke_mnist_training",
    "smoke_ddp_training",
    "smoke_cifar10_ddp_training",
    "smoke_sft_training",
)


def test_smoke_assets_are_materializable_with_freshness_and_automation() -> None:
    graph = defs().resolve_asset_graph()
    for key in SMOKE:
        node = graph.get(dg.AssetKey(key))
        assert node.is_materializable and node.group_name == "smoke"
        assert node.freshness_policy is not None and node.automation_condition is not None
    assert "dataset_mnist" in {
        p.to_user_string() for p in graph.get(dg.AssetKey("smoke_mnist_training")).parent_keys
    }


def test_sft_smoke_reads_the_staged_model_and_dataset_and_says_stand_in() -> None:
    """MLOPS-1.2's loop: one result for the cluster, downstream of the catalog's staged model
    and dataset (a new version of either re-runs it), in the smoke container on the sandbox
    and in the Oumi image in production; the sandbox's stand-in model is named as such."""
    from mlops_assets.catalog.loader import load_catalog
    from mlops_assets.defs.smoke.definitions import sft_asset

    graph = defs().resolve_asset_graph()
    node = graph.get(dg.AssetKey("smoke_sft_training"))
    parents = {p.to_user_string() for p in node.parent_keys}
    assert {"model_smollm_135m", "dataset_no_robots", "gpu_nodes"} <= parents
    assert node.partitions_def is None and node.group_name == "smoke"
    label = node.automation_condition.get_label() if node.automation_condition else ""
    assert "model_smollm_135m" in str(label) and "dataset_no_robots" in str(label)
    sandbox = sft_asset(active().catalog)
    description = sandbox.specs_by_key[dg.AssetKey("smoke_sft_training")].description or ""
    assert "stand-in" in description and "not `oumi train`" in description
    prod = sft_asset(load_catalog(profile="production").catalog)
    spec = prod.specs_by_key[dg.AssetKey("smoke_sft_training")]
    assert "container_oumi" in {d.asset_key.to_user_string() for d in spec.deps}
    assert "stand-in" not in (spec.description or "")


def test_cifar_ddp_smoke_reads_the_staged_cifar10_across_nodes_and_says_stand_in() -> None:
    """MLOPS-2.1 as a multi-node smoke like smoke_ddp_training: one result for the cluster,
    downstream of the staged CIFAR-10 (a new one re-runs it); on the sandbox its description
    says the accuracy bar is the generated stand-in's, in production it states the task's."""
    from mlops_assets.catalog.loader import load_catalog
    from mlops_assets.defs.smoke.definitions import cifar_ddp_asset

    graph = defs().resolve_asset_graph()
    node = graph.get(dg.AssetKey("smoke_cifar10_ddp_training"))
    parents = {p.to_user_string() for p in node.parent_keys}
    assert {"dataset_cifar10", "gpu_nodes", "slurm"} <= parents
    assert node.partitions_def is None and node.group_name == "smoke"
    label = node.automation_condition.get_label() if node.automation_condition else ""
    assert "dataset_cifar10" in str(label)
    key = dg.AssetKey("smoke_cifar10_ddp_training")
    sandbox = cifar_ddp_asset(active().catalog)
    assert sandbox.metadata_by_key[key]["payload"] == "cifar_ddp.py"
    assert sandbox.metadata_by_key[key]["nodes"] == active().catalog.smoke.cifar_ddp.nodes == 2
    description = sandbox.specs_by_key[key].description or ""
    assert "stand-in" in description and "not CIFAR-10's" in description
    prod = cifar_ddp_asset(load_catalog(profile="production").catalog)
    text = prod.specs_by_key[key].description or ""
    assert "stand-in" not in text and "accuracy > 60%" in text and "within 900 s" in text
    assert "3 epoch(s), batch 128 per rank, SGD lr 0.01 momentum 0.9" in text


def test_schedules_and_sensor_from_the_catalog() -> None:
    d = defs()
    cat = active().catalog
    schedules = {s.name: s for s in d.schedules or []}
    assert schedules["light_checks_schedule"].cron_schedule == cat.automation.light_checks_cron
    assert (
        schedules["nightly_full_validation_schedule"].cron_schedule
        == cat.automation.full_validation_cron
    )
    sensor = next(s for s in d.sensors or [] if s.name == "slurm_gpu_node_sensor")
    assert sensor.minimum_interval_seconds == cat.smoke.node_sensor_interval_s


def test_light_job_runs_only_light_checks_and_the_nightly_job_everything() -> None:
    d = defs()
    everything = d.resolve_asset_graph().asset_check_keys
    light = d.resolve_job_def("light_checks").asset_layer.asset_graph.asset_check_keys
    assert light and len(light) < len(everything)
    assert (
        dg.AssetCheckKey(dg.AssetKey("gpu_nodes"), "gpu_nvidia_smi_matches_gres_per_node")
        not in light
    )  # a job per node: not light
    assert dg.AssetCheckKey(dg.AssetKey("slurm"), "slurm_controller_responds") in light
    assert (
        d.resolve_job_def("full_validation").asset_layer.asset_graph.asset_check_keys == everything
    )
    assert {
        k.to_user_string()
        for k in d.resolve_job_def(NODE_JOB).asset_layer.asset_graph.executable_asset_keys
    } == {"smoke_gpu", "smoke_multi_gpu_nccl"}


def test_light_checks_are_the_checks_whose_metadata_says_light() -> None:
    """The light job is read from the resolved graph's check metadata (checking.py writes
    mlops/light from CheckSpec.light), so every domain's light checks are in it, and only
    those: no list of domains decides."""
    d = defs()
    graph = d.resolve_asset_graph()
    light = {
        ck: graph.get_check_spec(ck).metadata.get("mlops/light") for ck in graph.asset_check_keys
    }
    marked = {ck for ck, v in light.items() if getattr(v, "value", v) == "true"}
    assert 0 < len(marked) < len(light)
    assert set(light_check_keys(d)) == marked
    assert set(d.resolve_job_def("light_checks").asset_layer.asset_graph.asset_check_keys) == marked
    domains = {str(graph.get(ck.asset_key).group_name) for ck in marked}
    assert {"hpc", "cloud", "network", "storage", "datasets", "models", "containers"} <= domains


def test_gres_change_on_one_of_three_nodes_requests_that_node_only() -> None:
    cat = active().catalog
    before = (
        "gpu01|gpu|idle|64|512000|gpu:4|none\n"
        "gpu02|gpu|mixed|64|512000|gpu:4|none\n"
        "gpu03|gpu|drained|64|512000|gpu:4|fan"
    )
    after = before.replace("gpu02|gpu|mixed|64|512000|gpu:4", "gpu02|gpu|mixed|64|512000|gpu:8")
    first = node_run_requests(cat, None, before, 0)
    assert first.requests == [] and first.new_partitions == ["gpu01", "gpu02", "gpu03"], (
        "every GPU node becomes a partition"
    )
    from mlops_assets.core.node_watch import decode_cursor

    tick = node_run_requests(
        cat, decode_cursor(first.cursor), after, 1, known_partitions=first.new_partitions
    )
    assert [(c.node, c.reason) for c in tick.found] == [("gpu02", "gres_changed")]
    assert tick.new_partitions == []
    assert [(r.partition_key, r.tags["mlops/node"], r.job_name) for r in tick.requests] == [
        ("gpu02", "gpu02", NODE_JOB)
    ]


def test_per_node_smoke_is_partitioned_by_gpu_node() -> None:
    graph = defs().resolve_asset_graph()
    for key in NODE_ASSETS:
        pdef = graph.get(dg.AssetKey(key)).partitions_def
        assert isinstance(pdef, dg.DynamicPartitionsDefinition) and pdef.name == GPU_NODES_NAME
    assert graph.get(dg.AssetKey("smoke_mnist_training")).partitions_def is None, (
        "one MNIST result for the cluster"
    )
    assert defs().resolve_job_def(NODE_JOB).partitions_def == GPU_NODES


def test_nightly_runs_everything_once_and_the_node_smoke_per_node() -> None:
    graph = defs().resolve_asset_graph()
    reqs = nightly_requests(graph, ["gpu01", "gpu02"], "20261128T0200")
    full, *nodes = reqs
    assert full.partition_key is None and set(full.asset_check_keys or []) == set(
        graph.asset_check_keys
    )
    selected = {k.to_user_string() for k in full.asset_selection or []}
    assert (
        "smoke_mnist_training" in selected
        and "dataset_mnist" in selected
        and not selected & set(NODE_ASSETS)
    )
    assert [
        (r.partition_key, sorted(k.to_user_string() for k in r.asset_selection or []))
        for r in nodes
    ] == [("gpu01", sorted(NODE_ASSETS)), ("gpu02", sorted(NODE_ASSETS))]
    assert len({r.run_key for r in reqs}) == 3


def test_a_rematerialized_container_requests_its_smoke_jobs_and_infrastructure_does_not(
    tmp_path: Path,
) -> None:
    """The container -> smoke lineage through declarative automation, evaluated on a real
    instance: a new materialization of the smoke container asset requests every smoke asset
    (each node partition of the per-node ones), once; the MNIST data only the MNIST smokes
    (one node and DDP)."""
    d = defs()
    container = container_keys(active().catalog)[0]
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        inst.add_dynamic_partitions(GPU_NODES_NAME, ["gpu01", "gpu02"])
        smoke = dg.AssetSelection.groups("smoke")
        first = dg.evaluate_automation_conditions(defs=d, instance=inst, asset_selection=smoke)
        assert first.total_requested == 0, "nothing happened yet"
        inst.report_runless_asset_event(dg.AssetObservation("gpu_nodes"))
        inst.report_runless_asset_event(dg.AssetMaterialization("dataset_wikitext"))
        quiet = dg.evaluate_automation_conditions(
            defs=d, instance=inst, asset_selection=smoke, cursor=first.cursor
        )
        assert quiet.total_requested == 0, (
            "infrastructure and unrelated data do not trigger smoke jobs"
        )
        inst.report_runless_asset_event(dg.AssetMaterialization(container))
        after = dg.evaluate_automation_conditions(
            defs=d, instance=inst, asset_selection=smoke, cursor=quiet.cursor
        )
        requested = {k: after.get_num_requested(dg.AssetKey(k)) for k in SMOKE}
        assert requested == {
            "smoke_gpu": 2,
            "smoke_multi_gpu_nccl": 2,
            "smoke_mnist_training": 1,
            "smoke_ddp_training": 1,
            "smoke_cifar10_ddp_training": 1,
            "smoke_sft_training": 1,
        }, requested
        again = dg.evaluate_automation_conditions(
            defs=d, instance=inst, asset_selection=smoke, cursor=after.cursor
        )
        assert again.total_requested == 0, "requested once per new container materialization"
        inst.report_runless_asset_event(dg.AssetMaterialization("dataset_mnist"))
        data = dg.evaluate_automation_conditions(
            defs=d, instance=inst, asset_selection=smoke, cursor=again.cursor
        )
        assert {k: data.get_num_requested(dg.AssetKey(k)) for k in SMOKE} == {
            "smoke_gpu": 0,
            "smoke_multi_gpu_nccl": 0,
            "smoke_mnist_training": 1,
            "smoke_ddp_training": 1,
            "smoke_cifar10_ddp_training": 0,
            "smoke_sft_training": 0,
        }
        inst.report_runless_asset_event(dg.AssetMaterialization("dataset_cifar10"))
        cifar = dg.evaluate_automation_conditions(
            defs=d, instance=inst, asset_selection=smoke, cursor=data.cursor
        )
        assert {k for k in SMOKE if cifar.get_num_requested(dg.AssetKey(k))} == {
            "smoke_cifar10_ddp_training"
        }, "a new CIFAR-10 re-runs MLOPS-2.1 only"


def test_automation_status_is_one_catalog_key() -> None:
    """RUNNING by default in both profiles; `automation.running: false` stops every schedule
    and sensor the catalog governs (the metrics exporter keeps running)."""
    from mlops_assets.catalog.loader import load_catalog
    from mlops_assets.catalog.schema import Automation, Catalog
    from mlops_assets.defs.automation.definitions import build as automation
    from mlops_assets.defs.smoke.definitions import build as smoke

    def build(catalog: Catalog) -> dg.Definitions:
        return dg.Definitions.merge(smoke(catalog), automation(catalog, defs()))

    for profile in ("sandbox", "production"):
        assert load_catalog(profile=profile).catalog.automation.running is True
    on = build(active().catalog)
    off = build(active().catalog.model_copy(update={"automation": Automation(running=False)}))
    for d, sensor, schedule in (
        (on, dg.DefaultSensorStatus.RUNNING, dg.DefaultScheduleStatus.RUNNING),
        (off, dg.DefaultSensorStatus.STOPPED, dg.DefaultScheduleStatus.STOPPED),
    ):
        assert {s.name for s in d.sensors or []} == {
            "slurm_gpu_node_sensor",
            "smoke_orphan_sensor",
            "smoke_rerun_automation_sensor",
        }
        assert all(s.default_status == sensor for s in d.sensors or [])
        assert {s.name for s in d.schedules or []} == {
            "light_checks_schedule",
            "nightly_full_validation_schedule",
        }
        assert all(s.default_status == schedule for s in d.schedules or [])


def test_nodes_the_gpu_check_skipped_as_busy_are_smoked_once_they_come_free() -> None:
    """The check's `not_probed_busy` extra, read back from a real instance's event log, makes
    the sensor ask for a busy-then-free node's smoke jobs (issue 21: busy nodes are never
    waited for, they are probed later)."""
    from mlops_assets.checking import encode
    from mlops_assets.core.checks import Evaluation, Severity
    from mlops_assets.core.node_watch import decode_cursor

    cat = active().catalog
    ev = Evaluation(
        "gpu_nodes",
        "gpu_nvidia_smi_matches_gres_per_node",
        True,
        Severity.ERROR,
        "8x NVIDIA H100",
        "GPU count == GRES, healthy",
        "nvidia-smi inside a job on each GPU node",
        "",
        1.0,
        extra={"not_probed_busy": "gpu02,gpu03", "nodes_probed": 1},
    )
    with dg.instance_for_test() as instance:
        assert not_probed_busy(instance) == set()
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey("gpu_nodes"),
                check_name="gpu_nvidia_smi_matches_gres_per_node",
                passed=True,
                metadata=encode(ev),
            )
        )
        waiting = not_probed_busy(instance)
    assert waiting == {"gpu02", "gpu03"}
    before = "gpu01|gpu|idle|64|512000|gpu:8|none\ngpu02|gpu|allocated|64|512000|gpu:8|none\n"
    before += "gpu03|gpu|mixed|64|512000|gpu:8|none\n"
    after = before.replace("gpu02|gpu|allocated", "gpu02|gpu|idle")
    first = node_run_requests(cat, None, before, 0)
    tick = node_run_requests(cat, decode_cursor(first.cursor), after, 1, waiting=waiting)
    assert [(c.node, c.reason) for c in tick.found] == [("gpu02", "freed")]
    assert [r.partition_key for r in tick.requests] == ["gpu02"]


def test_training_inputs_name_code_config_and_each_upstream_record() -> None:
    """What core/training_reuse compares: the config digest moves with the payload's extras
    and the SLURM job, the code digest is the shipped code's, and an upstream with no
    materialization in this instance is unknown (None), so it never reuses."""
    from mlops_assets.core.slurm_jobs import smoke_payload_config
    from mlops_assets.defs.smoke.definitions import _training_inputs
    from mlops_assets.resources.shipping import code_digest

    cat = active().catalog
    job, extras = cat.smoke.jobs.mnist, smoke_payload_config(cat, "mnist")
    with dg.DagsterInstance.ephemeral() as instance:
        base = _training_inputs(instance, "mnist_train.py", job, extras, None, ["dataset_mnist"])
        assert base == {"code": code_digest("mnist_train.py"), "config": base["config"]} | {
            "dataset_mnist": None
        }
        assert base == _training_inputs(
            instance, "mnist_train.py", job, dict(extras), None, ["dataset_mnist"]
        )
        more = _training_inputs(
            instance, "mnist_train.py", job, {**extras, "epochs": 9}, None, ["dataset_mnist"]
        )
        longer = job.model_copy(update={"time_limit_min": 999})
        assert more["config"] != base["config"]
        assert _training_inputs(instance, "mnist_train.py", longer, extras, None, [])[
            "config"
        ] not in (base["config"], more["config"])
        dg.materialize([_recorded("dataset_mnist", {"manifest_digest": "abc"})], instance=instance)
        assert (
            _training_inputs(instance, "mnist_train.py", job, extras, None, ["dataset_mnist"])[
                "dataset_mnist"
            ]
            == "abc"
        )


def _recorded(key: str, metadata: dict[str, str]) -> dg.AssetsDefinition:
    @dg.asset(name=key)
    def _a() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=metadata)

    return _a
