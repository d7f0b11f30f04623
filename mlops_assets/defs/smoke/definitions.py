"""GPU and SLURM smoke jobs: each asset is a real SLURM batch job run through the
SlurmPipesClient (resources/slurm_pipes.py) with a payload from mlops_assets/payloads; the
payload's figures and sacct's (state, exit code, elapsed, AllocTRES, MaxRSS) become the
materialization's metadata, so the UI plots their history. A failed smoke job fails the
asset with the measured reason (on the sandbox: "no CUDA device") and records no
materialization, so freshness shows it stale.

Automation:
- `slurm_gpu_node_sensor`: one `sinfo` per tick; a GPU node that appears, returns from
  drain/down, or changes GRES gets `smoke_gpu` + `smoke_multi_gpu_nccl` on exactly that node
  (run config `node`, tag `mlops/node`); the cursor is the last seen node states;
- smoke assets re-run when an upstream (container image, MNIST dataset) is materialized again
  (AutomationCondition.eager);
- `light_checks_schedule` (catalog smoke.light_checks_cron) runs the checks marked light;
  `nightly_full_validation_schedule` (smoke.full_validation_cron) materializes and checks
  everything;
- every smoke result carries the catalog's smoke freshness policy.

Sensors and schedules start STOPPED: they submit real jobs; turn them on in the UI.
"""

import importlib
from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog, SmokeJob
from mlops_assets.checking import LIGHT_TAG, freshness_policy
from mlops_assets.core import node_watch
from mlops_assets.core.slurm import SINFO_NODE_FORMAT
from mlops_assets.platform import active
from mlops_assets.resources.clients import HpcResource

GROUP = "smoke"
POOL = "slurm_submissions"
NODE_TAG = "mlops/node"
NODE_JOB = "smoke_gpu_node"
CHECK_DOMAINS = ("hpc", "cloud", "network", "storage", "datasets", "models", "containers")


class SmokeRun(dg.Config):
    """`node`: run on this SLURM node (`--nodelist`); empty = any node of the smoke partition.
    `reattach`: pick up this asset's job of an earlier run that SLURM still runs."""

    node: str = ""
    reattach: bool = True


def _smoke_asset(
    catalog: Catalog,
    name: str,
    kind: str,
    payload: str,
    job: SmokeJob,
    *,
    kinds: list[str],
    description: str,
    deps: list[str],
) -> dg.AssetsDefinition:
    @dg.asset(
        name=name,
        group_name=GROUP,
        kinds=set(kinds),
        deps=deps,
        pool=POOL,
        required_resource_keys={"hpc"},
        description=description,
        metadata={"payload": payload, "gres_gpus": job.gpus},
        freshness_policy=freshness_policy(catalog.smoke.freshness),
        automation_condition=dg.AutomationCondition.eager(),
    )
    def _smoke(context: dg.AssetExecutionContext, config: SmokeRun) -> dg.MaterializeResult:
        from mlops_assets.core.slurm_jobs import smoke_payload_config
        from mlops_assets.resources.slurm_pipes import (
            Resources,
            client_for,
            find_reattachable,
            tag_key,
        )

        runner = context.resources.hpc.runner()
        client = client_for(catalog, runner)
        node = config.node or None
        reattach = find_reattachable(context.instance, runner, tag_key(context.asset_key, node)) if config.reattach else None
        res = Resources(gpus=job.gpus, cpus=job.cpus, mem_mb=job.mem_mb, time_limit_min=job.time_limit_min, nodelist=node)
        invocation = client.run(
            context=context, payload=payload, resources=res, extras=smoke_payload_config(catalog, kind),
            reattach=reattach, tag_scope=node,
        )
        return invocation.get_materialize_result()

    return _smoke


def smoke_assets(catalog: Catalog) -> list[dg.AssetsDefinition]:
    s = catalog.smoke
    container = [f"container_{s.container}"] if s.container else [f"container_{n}" for n in list(catalog.containers)[:1]]
    mnist = [f"dataset_{n}" for n, d in catalog.datasets.items() if getattr(d.source, "dataset_class", "") == "MNIST"]
    return [
        _smoke_asset(
            catalog, "smoke_gpu", "gpu", "gpu_smoke.py", s.jobs.gpu, kinds=["slurm", "nvidia"],
            description="Per-node GPU inventory, bf16 matmul TFLOP/s and device-copy GB/s per GPU, judged against smoke.gpu_profiles; a GPU far below its siblings is named.",
            deps=["gpu_nodes", "slurm", *container],
        ),
        _smoke_asset(
            catalog, "smoke_multi_gpu_nccl", "nccl", "nccl_allreduce.py", s.jobs.nccl, kinds=["slurm", "nccl"],
            description=f"{s.multi_gpu_count}-GPU NCCL all-reduce on one node, every value verified exactly, bus bandwidth at >= 1 GiB.",
            deps=["gpu_nodes", *container],
        ),
        _smoke_asset(
            catalog, "smoke_mnist_training", "mnist", "mnist_train.py", s.jobs.mnist, kinds=["slurm", "pytorch"],
            description=f"MLOPS-1.1: MNIST SimpleCNN on 1 GPU, {s.mnist_epochs} epochs: accuracy > {s.mnist_min_accuracy:.0%} in < {s.mnist_max_seconds:g} s; metrics.json in models/mnist/job-<id>."
            + (" The catalog declares the GPUs fake: it trains on the job's CPUs and says so (device cpu)." if catalog.hpc.gpus.fake else ""),
            deps=["gpu_nodes", *container, *mnist],
        ),
    ]


# ----------------------------------------------------------------------- automation


def node_run_requests(catalog: Catalog, previous: dict[str, str] | None, sinfo_text: str, now: float) -> tuple[list[dg.RunRequest], str, list[node_watch.NodeChange]]:
    """The sensor's decision, testable without a sensor context: run requests, new cursor."""
    current = node_watch.snapshot_from_sinfo(sinfo_text, catalog.smoke.partition)
    found = node_watch.changes(previous, current)
    requests = [
        dg.RunRequest(
            run_key=f"{c.node}:{c.reason}:{int(now)}",
            job_name=NODE_JOB,
            run_config={"ops": {a: {"config": {"node": c.node}} for a in ("smoke_gpu", "smoke_multi_gpu_nccl")}},
            tags={NODE_TAG: c.node, "mlops/trigger": c.reason, "mlops/node_state": c.after},
        )
        for c in found
    ]
    return requests, node_watch.encode_cursor(current), found


def node_sensor(catalog: Catalog) -> dg.SensorDefinition:
    @dg.sensor(
        name="slurm_gpu_node_sensor",
        job_name=NODE_JOB,
        minimum_interval_seconds=catalog.smoke.node_sensor_interval_s,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="One sinfo per tick: a GPU node that is new, resumed, or whose GRES changed gets the GPU smoke jobs on that node only.",
    )
    def _sensor(context: dg.SensorEvaluationContext, hpc: HpcResource) -> dg.SensorResult | dg.SkipReason:
        import time

        res = hpc.runner().run(["sinfo", "-h", "-N", "-o", SINFO_NODE_FORMAT], timeout_s=60)
        if not res.ok:
            return dg.SkipReason(f"sinfo failed (exit {res.returncode}): {res.tail(2)}")
        previous = node_watch.decode_cursor(context.cursor)
        requests, cursor, found = node_run_requests(catalog, previous, res.stdout, time.time())
        for c in found:
            context.log.info(f"{c.node}: {c.reason} ({c.before} -> {c.after}): requesting its GPU smoke jobs")
        if not requests:
            return dg.SensorResult(skip_reason="no GPU node appeared, resumed or changed GRES" if previous is not None else "baseline recorded", cursor=cursor)
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return _sensor


def light_check_keys(catalog: Catalog) -> list[dg.AssetCheckKey]:
    keys = []
    for domain in CHECK_DOMAINS:
        module: Any = importlib.import_module(f"mlops_assets.defs.{domain}.definitions")
        keys += [dg.AssetCheckKey(dg.AssetKey(s.asset), s.name) for s in module.specs(catalog) if s.light]
    return keys


def automation(catalog: Catalog) -> tuple[list[Any], list[Any]]:
    node_job = dg.define_asset_job(NODE_JOB, selection=dg.AssetSelection.assets("smoke_gpu", "smoke_multi_gpu_nccl"),
                                   description="The GPU smoke jobs for one node (run config `node`).")
    light_job = dg.define_asset_job("light_checks", selection=dg.AssetSelection.checks(*light_check_keys(catalog)),
                                    description=f"The checks whose metadata has {LIGHT_TAG}=true: cheap probes, no jobs.")
    full_job = dg.define_asset_job("full_validation", selection=dg.AssetSelection.all(include_sources=False) | dg.AssetSelection.all_asset_checks(),
                                   description="Every asset materialized and every check run, smoke jobs included.")
    schedules = [
        dg.ScheduleDefinition(name="light_checks_schedule", job=light_job, cron_schedule=catalog.smoke.light_checks_cron,
                              default_status=dg.DefaultScheduleStatus.STOPPED),
        dg.ScheduleDefinition(name="nightly_full_validation_schedule", job=full_job, cron_schedule=catalog.smoke.full_validation_cron,
                              default_status=dg.DefaultScheduleStatus.STOPPED),
    ]
    return [node_job, light_job, full_job], schedules


def build(catalog: Catalog) -> dg.Definitions:
    jobs, schedules = automation(catalog)
    return dg.Definitions(assets=smoke_assets(catalog), jobs=jobs, schedules=schedules, sensors=[node_sensor(catalog)])


defs = build(active().catalog)
