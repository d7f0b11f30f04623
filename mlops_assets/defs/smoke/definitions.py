"""GPU and SLURM smoke jobs: each asset is a real SLURM batch job run through the
SlurmPipesClient (resources/slurm_pipes.py) with a payload from mlops_assets/payloads; the
payload's figures and sacct's (state, exit code, elapsed, AllocTRES, MaxRSS) become the
materialization's metadata, so the UI plots their history. A failed smoke job fails the
asset with the measured reason (e.g. "no CUDA device") and records no materialization, so
freshness shows it stale. Where the catalog declares the GPUs fake (the sandbox) the payloads
run on the job's CPUs (GPU smoke: float32 matmul and copy; all-reduce: gloo over CPU
processes, verified exactly), say `device: cpu`, carry no GPU figure, and materialize with a
WARN verdict; elsewhere no CUDA device stays a failure.

Per node: `smoke_gpu` and `smoke_multi_gpu_nccl` are partitioned by GPU node name (dynamic
partitions `slurm_gpu_nodes`), so each node has its own history, freshness and plots; the
partition key is the job's `--nodelist`. Partitions are added from `sinfo` (the node sensor,
`mlops-assets materialize`), never removed: a node that leaves keeps its history.
`smoke_mnist_training` is one result for the cluster (any node of the smoke partition), as is
`smoke_sft_training` (MLOPS-1.2's fine-tuning loop on the staged model and dataset, in
`smoke.sft.container`; a stand-in model says so in its verdict). `smoke_ddp_training` (MNIST)
and `smoke_cifar10_ddp_training` (MLOPS-2.1, CIFAR-10 ResNet-18) span several nodes of one
SLURM job, one srun rank per node.

Automation:
- `slurm_gpu_node_sensor`: one `sinfo` per tick; a GPU node that appears, returns from
  drain/down, or changes GRES gets `smoke_gpu` + `smoke_multi_gpu_nccl` for exactly that
  node's partition (tag `mlops/node`); new nodes become partitions; the cursor is the last
  seen node states;
- `smoke_orphan_sensor`: SLURM jobs of Dagster runs that died (run monitoring marks them
  FAILURE) are found through the runs' `mlops/slurm_job.*` tags and one `squeue`, and get a
  run that re-attaches; other orphans (a terminated run's job still running, a job that
  ended after its run died) are reported as observations on the asset with their state;
- a smoke asset re-runs when its container image or MNIST dataset is materialized again
  (`rerun_on_upstream`: those deps updated, nothing of it in progress; the infrastructure
  deps are external assets and do not trigger); a per-node smoke then runs on every node;
- the schedules that run these assets with everything else (`light_checks_schedule`,
  `nightly_full_validation_schedule`: one run per GPU node, through `sync_node_partitions`)
  and the sensor that evaluates their automation conditions live in defs/automation;
- every smoke result carries the catalog's smoke freshness policy.

Sensors and schedules start RUNNING unless the catalog says `automation: {running: false}`.
"""

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog, SmokeJob
from mlops_assets.checking import freshness_policy, latest_metadata, sensor_status
from mlops_assets.core import node_watch
from mlops_assets.core.parse.slurm import nodes as slurm_nodes
from mlops_assets.platform import active
from mlops_assets.resources.hpc import HpcSide, job_resources
from mlops_assets.resources.shipping import code_digest

GROUP = "smoke"
POOL = "slurm_submissions"
NODE_TAG = "mlops/node"
NODE_JOB = "smoke_gpu_node"
GPU_NODES_NAME = "slurm_gpu_nodes"
GPU_NODES = dg.DynamicPartitionsDefinition(name=GPU_NODES_NAME)


class SmokeRun(dg.Config):
    """`node`: run on this SLURM node (`--nodelist`); empty = any node of the smoke partition
    (per-node smoke assets take the node from their partition key instead).
    `reattach`: pick up this asset's job of an earlier run that SLURM still runs.
    `reservation`: submit into this SLURM reservation (the quarantine loop's re-test of a
    node it drained, defs/fleet).
    `retrain`: train even if nothing it depends on changed (a training asset otherwise reuses
    its last training, within `smoke.reuse_training_within_minutes`)."""

    node: str = ""
    reattach: bool = True
    reservation: str = ""
    retrain: bool = False


@dataclass(frozen=True)
class SmokeKind:
    """What a kind of smoke job is on every cluster; the catalog adds only its figures (the
    description, the nodes it spans, its image and data). Its key in SMOKES names its SLURM
    job (`smoke.jobs.<kind>`) and the payload's config (core/slurm_jobs); `payload` is in
    mlops_assets/payloads; `exercises`: what it tests besides SLURM (asset kinds); `deps`:
    infrastructure assets it reads besides `gpu_nodes`; `per_node`: one partition per GPU
    node; `reusable`: a training whose unchanged re-run trains nothing (core/training_reuse)."""

    asset: str
    payload: str
    exercises: tuple[str, ...]
    deps: tuple[str, ...] = ()
    per_node: bool = False
    reusable: bool = False


#: every kind of smoke job: one row each
SMOKES = {
    "gpu": SmokeKind("smoke_gpu", "gpu_smoke.py", ("nvidia",), ("slurm",), per_node=True),
    "nccl": SmokeKind("smoke_multi_gpu_nccl", "nccl_allreduce.py", ("nccl",), per_node=True),
    "mnist": SmokeKind("smoke_mnist_training", "mnist_train.py", ("pytorch",), reusable=True),
    "ddp": SmokeKind("smoke_ddp_training", "mnist_ddp.py", ("pytorch",), ("slurm",)),
    "cifar_ddp": SmokeKind("smoke_cifar10_ddp_training", "cifar_ddp.py", ("pytorch",), ("slurm",)),
    "sft": SmokeKind("smoke_sft_training", "sft_train.py", ("pytorch",)),
}
#: the smoke assets partitioned by GPU node (the per-node job, the fleet's re-tests)
NODE_ASSETS = tuple(k.asset for k in SMOKES.values() if k.per_node)


def _smoke_asset(
    catalog: Catalog,
    kind: str,
    *,
    description: str,
    on_fake_gpus: str,
    triggers: list[str],
    multi_node: int = 0,
    container: str | None = None,
) -> dg.AssetsDefinition:
    """One smoke job (a row of SMOKES) as an asset. `triggers`: the images and data whose new
    materialization re-runs it, read by it like `gpu_nodes` and the kind's `deps`;
    `on_fake_gpus`: what it does instead where the catalog declares the GPUs fake, added to
    the description; `multi_node`: the nodes it spans, one srun rank each (0: a single
    task)."""
    smoke = SMOKES[kind]
    job: SmokeJob = getattr(catalog.smoke.jobs, kind)
    payload, per_node, reusable = smoke.payload, smoke.per_node, smoke.reusable
    if catalog.hpc.gpus.fake:
        description += f" The catalog declares the GPUs fake: {on_fake_gpus}"

    @dg.asset(
        name=smoke.asset,
        group_name=GROUP,
        kinds={"slurm", *smoke.exercises},
        deps=["gpu_nodes", *smoke.deps, *triggers],
        pool=POOL,
        description=description,
        metadata={
            "payload": payload,
            "gres_gpus": job.gpus,
            "per_node": per_node,
            **({"nodes": multi_node} if multi_node else {}),
        },
        freshness_policy=freshness_policy(catalog.smoke.freshness),
        automation_condition=rerun_on_upstream(triggers),
        partitions_def=GPU_NODES if per_node else None,
    )
    def _smoke(
        context: dg.AssetExecutionContext, config: SmokeRun, hpc: HpcSide
    ) -> dg.MaterializeResult:
        from mlops_assets.core.slurm_jobs import smoke_payload_config

        node = context.partition_key if per_node else (config.node or None)
        extras = smoke_payload_config(catalog, kind)
        inputs: dict[str, str | None] = {}
        why = ""
        if reusable and not (node or config.reservation):  # a named node is tested anew
            inputs = _training_inputs(context.instance, payload, job, extras, container, triggers)
            reused, why = _reuse(context, hpc, inputs, config.retrain, catalog)
            if reused is not None:
                return reused
        res = job_resources(job, node, config.reservation or None)
        if multi_node:
            nodes = _span(catalog, hpc.runner(), job.gpus, context.log, multi_node)
            extras["nodes_available"] = nodes
            res = replace(res, nodes=nodes, srun=True)
        client = hpc.smoke_client(res, reattach=config.reattach, container=container)
        invocation = client.run(context=context, payload=payload, extras=extras)
        result = invocation.get_materialize_result()
        # the code that ran, so a trained model can name it (defs/registry)
        meta = {**(result.metadata or {}), "code_digest": code_digest(payload)}
        if not inputs:
            return result._replace(metadata=meta)
        record = _trained_record(hpc, meta, inputs)
        meta.update(record, train_reason=why)
        version = _data_version(_outputs(meta), record["outputs_sha256"])
        return result._replace(metadata=meta, data_version=version)

    return _smoke


def _training_inputs(
    instance: dg.DagsterInstance,
    payload: str,
    job: SmokeJob,
    extras: dict[str, Any],
    container: str | None,
    upstream: Sequence[str],
) -> dict[str, str | None]:
    """What a training depends on, as digests: its code, its config (payload extras, SLURM
    job, image path) and each upstream image or dataset as its latest materialization
    recorded it (the image's sha256, the dataset's manifest digest; None: not recorded)."""
    from mlops_assets.core.training_reuse import digest

    inputs: dict[str, str | None] = {
        "code": code_digest(payload),
        "config": digest({"extras": extras, "job": job.model_dump(), "container": container}),
    }
    for key in upstream:
        meta = latest_metadata(instance, key)[1]
        found = meta.get("manifest_digest") or meta.get("sha256")
        inputs[key] = str(found) if found else None
    return inputs


def _outputs(meta: dict[str, Any]) -> list[str]:
    """model.pt and metrics.json in the training's output_dir (a Pipes MetadataValue, or the
    plain value read back from the instance)."""
    raw = meta.get("output_dir")
    out = str(getattr(raw, "value", raw) or "").rstrip("/")
    return [f"{out}/{f}" for f in ("model.pt", "metrics.json")] if out else []


def _data_version(files: list[str], shas: dict[str, str]) -> dg.DataVersion | None:
    """model.pt's sha256 (the first output): the trained bytes are the data version."""
    sha = shas.get(files[0], "") if files else ""
    return dg.DataVersion(sha) if sha else None


def _trained_record(
    hpc: HpcSide, meta: dict[str, Any], inputs: dict[str, str | None]
) -> dict[str, Any]:
    """What a later run needs to reuse this training: its inputs, when it ended, and the
    sha256 of what it wrote (read back from the HPC side)."""
    from mlops_assets.core import training_reuse as tr
    from mlops_assets.core.transport.hostexec import sha256_of

    files = _outputs(meta)
    return {
        tr.INPUTS: inputs,
        tr.TRAINED_AT: time.time(),
        tr.REUSED: False,
        "outputs_sha256": sha256_of(hpc.runner(), files) if files else {},
    }


def _reuse(
    context: dg.AssetExecutionContext,
    hpc: HpcSide,
    inputs: dict[str, str | None],
    retrain: bool,
    catalog: Catalog,
) -> tuple[dg.MaterializeResult | None, str]:
    """The last training again, if core/training_reuse allows it and its files on the HPC
    side are still the bytes it wrote; else None: train. With the reason, either way."""
    from mlops_assets.core import training_reuse as tr
    from mlops_assets.core.transport.hostexec import sha256_of

    _, previous = latest_metadata(context.instance, context.asset_key.to_user_string())
    decision = tr.decide(
        inputs,
        previous or None,
        now=time.time(),
        within_s=catalog.smoke.reuse_training_within_minutes * 60,
        retrain=retrain,
    )
    if decision.reuse:
        files = _outputs(previous)
        recorded = previous.get("outputs_sha256") or {}
        now = sha256_of(hpc.runner(), files) if files else {}
        differ = [f for f in files if now.get(f) is None or now.get(f) != recorded.get(f)]
        if not files or differ:
            decision = tr.Decision(
                False,
                f"its output {', '.join(differ) or '(none recorded)'} is missing or changed",
            )
    if not decision.reuse:
        context.log.info(f"training: {decision.reason}")
        return None, decision.reason
    context.log.info(f"not training: {decision.reason} (run config retrain: true trains)")
    meta = tr.reused_metadata(
        {k: v for k, v in previous.items() if not k.startswith("dagster/")}, decision.reason, now
    )
    result: dg.MaterializeResult = dg.MaterializeResult(
        metadata=meta, data_version=_data_version(files, now)
    )
    return result, decision.reason


def _span(catalog: Catalog, runner: Any, gpus: int, log: Any, want: int) -> int:
    """How many nodes a multi-node smoke spans: `want` (the catalog's `smoke.ddp.nodes` or
    `smoke.cifar_ddp.nodes`), or fewer when the partition has fewer usable nodes now (the
    payload then says so: a WARN, the multi-node part untested); none usable is a failure
    naming the partition."""
    from mlops_assets.core.slurm_jobs import usable_partition_nodes

    part = catalog.smoke.partition
    usable = usable_partition_nodes(_sinfo(runner), part, gpus)
    if not usable:
        raise dg.Failure(
            f"no usable node{' with a GPU' if gpus else ''} in partition {part}: the DDP smoke "
            "cannot start",
            metadata={"hint": f"sinfo -p {part}: resume or add nodes"},
        )
    if len(usable) < want:
        log.warning(
            f"partition {part} has {len(usable)} usable node(s) ({', '.join(usable)}), "
            f"{want} asked: training on {len(usable)}"
        )
    return min(want, len(usable))


def container_keys(catalog: Catalog) -> list[str]:
    """The image the smoke jobs run in: `smoke.container`, else the catalog's first one (whose
    re-materialization still says the software stack changed)."""
    s = catalog.smoke
    return (
        [catalog.container_key(s.container)]
        if s.container
        else [catalog.container_key(n) for n in list(catalog.containers)[:1]]
    )


def rerun_on_upstream(keys: list[str]) -> dg.AutomationCondition:
    """Eager on the named deps only: a new materialization of the container image (or the
    MNIST data) requests the smoke job, once, when none of it is in progress. Unlike
    `eager()` it ignores the external infrastructure deps and does not fire for a partition
    that is merely new (the node sensor owns new nodes)."""
    updated = dg.AutomationCondition.any_deps_updated().allow(dg.AssetSelection.assets(*keys))
    return (
        updated.since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
    ).with_label(f"re-run when {', '.join(keys)} is materialized again")


def sft_asset(catalog: Catalog) -> dg.AssetsDefinition:
    """MLOPS-1.2's loop as a smoke job, downstream of the staged model and dataset it reads
    (and of its image: `smoke.sft.container`, else the smoke container)."""
    t = catalog.smoke.sft
    image = [catalog.container_key(t.container)] if t.container else container_keys(catalog)
    staged = [catalog.model_key(t.model), catalog.dataset_key(t.dataset)]
    stand_in = catalog.models[t.model].parameters not in (None, t.task_parameters)
    return _smoke_asset(
        catalog,
        "sft",
        triggers=[*image, *staged],
        description=(
            f"MLOPS-1.2: supervised fine-tuning of {t.model} on {t.dataset} ({t.train_rows} "
            f"rows, {t.epochs} epoch(s), batch {t.batch_size} x {t.grad_accum}, lr {t.lr:g}): "
            f"the loss falls by >= {t.min_loss_drop_fraction:.0%}, finite, in < "
            f"{t.max_seconds:g} s, the checkpoint reloads; model.safetensors + metrics.json in "
            f"models/{t.model}-sft/job-<id>. The task's loop in plain torch, not `oumi train`."
        )
        + (
            " The catalog's model is a stand-in (not the task's parameter count): the result "
            "says stand-in and is judged by this profile's stand-in thresholds."
            if stand_in
            else ""
        ),
        on_fake_gpus="it trains on the job's CPUs.",
        container=catalog.container_path(t.container) if t.container else None,
    )


def cifar_ddp_asset(catalog: Catalog) -> dg.AssetsDefinition:
    """MLOPS-2.1 as a multi-node smoke job like `smoke_ddp_training` (its payload reuses
    mnist_ddp's ranks), downstream of the staged CIFAR-10 it reads and the smoke image."""
    c = catalog.smoke.cifar_ddp
    container = container_keys(catalog)
    staged = [catalog.dataset_key(c.dataset)]
    subset = f"the first {c.train_samples:,} training images" if c.train_samples else "all of it"
    return _smoke_asset(
        catalog,
        "cifar_ddp",
        triggers=[*container, *staged],
        description=(
            f"MLOPS-2.1: CIFAR-10 ResNet-18 ({c.stem} stem) under DDP across {c.nodes} nodes "
            f"in one SLURM job (srun, one rank per node), {subset}, {c.epochs} epoch(s), batch "
            f"{c.batch_size} per rank, SGD lr {c.lr:g} momentum {c.momentum:g}: every node took "
            f"part, an exact all-reduce, identical parameters, accuracy > "
            f"{c.min_accuracy:.0%}, Training Complete within {c.max_seconds:g} s, no NCCL/gloo "
            "warning; loss per epoch, samples/s, the speedup over one rank, every rank's peak "
            f"memory; model.pt + metrics.json in models/{c.dataset}-resnet18/job-<id>."
        ),
        on_fake_gpus="gloo on the nodes' CPUs; on the mirror's generated stand-in the accuracy "
        "bar is the stand-in's, not CIFAR-10's.",
        multi_node=c.nodes,
    )


def smoke_assets(catalog: Catalog) -> list[dg.AssetsDefinition]:
    s = catalog.smoke
    container = container_keys(catalog)
    mnist = [
        catalog.dataset_key(n)
        for n, d in catalog.datasets.items()
        if getattr(d.source, "dataset_class", "") == "MNIST"
    ]
    return [
        _smoke_asset(
            catalog,
            "gpu",
            description=(
                "Per-node GPU inventory, bf16 matmul TFLOP/s and device-copy GB/s per GPU, "
                "judged against smoke.gpu_profiles; a GPU far below its siblings is named. One "
                "partition per GPU node."
            ),
            on_fake_gpus="the job takes the inventory, measures its CPUs "
            "(cpu_matmul_fp32_gflops, cpu_copy_gbps, both verified), reports no GPU figure and "
            "a WARN.",
            triggers=container,
        ),
        _smoke_asset(
            catalog,
            "nccl",
            description=(
                f"{s.multi_gpu_count}-GPU NCCL all-reduce on one node, every value verified "
                "exactly, bus bandwidth at >= 1 GiB. One partition per GPU node."
            ),
            on_fake_gpus=f"gloo over {s.multi_gpu_count} CPU processes at small sizes, verified "
            "exactly, no GPU figure, a WARN.",
            triggers=container,
        ),
        _smoke_asset(
            catalog,
            "mnist",
            triggers=[*container, *mnist],
            description=(
                f"MLOPS-1.1: MNIST SimpleCNN on 1 GPU, {s.mnist_epochs} epochs: accuracy > "
                f"{s.mnist_min_accuracy:.0%} in < {s.mnist_max_seconds:g} s; metrics.json in "
                "models/mnist/job-<id>. A re-run whose code, config, image and dataset are "
                f"unchanged trains nothing within {s.reuse_training_within_minutes:g} min of "
                "the last training (metadata `reused`; run config `retrain: true` trains)."
            ),
            on_fake_gpus="it trains on the job's CPUs and says so (device cpu).",
        ),
        _smoke_asset(
            catalog,
            "ddp",
            triggers=[*container, *mnist],
            description=f"Multi-node DDP: MNIST across {s.ddp.nodes} nodes in one SLURM job "
            "(srun, one rank per node): every node took part, an exact all-reduce, identical "
            f"parameters after training, accuracy > {s.ddp.min_accuracy:.0%}, Training "
            f"Complete within {s.ddp.max_seconds:g} s, no NCCL/gloo warning; samples/s and "
            "the speedup over one node.",
            on_fake_gpus="gloo on the nodes' CPUs.",
            multi_node=s.ddp.nodes,
        ),
        cifar_ddp_asset(catalog),
        sft_asset(catalog),
    ]


# ----------------------------------------------------------------------- automation


@dataclass(frozen=True)
class NodeTick:
    """One node-sensor decision: runs to request, the new cursor, what changed, and the GPU
    nodes that are not partitions yet."""

    requests: list[dg.RunRequest]
    cursor: str
    found: "list[node_watch.NodeChange]"
    new_partitions: list[str]


def node_run_requests(
    catalog: Catalog,
    previous: dict[str, str] | None,
    sinfo_text: str,
    now: float,
    known_partitions: Collection[str] = (),
    waiting: Collection[str] = (),
) -> NodeTick:
    """The sensor's decision, testable without a sensor context: one run of the node job per
    changed node, for that node's partition only. ``waiting``: nodes the per-node GPU checks
    skipped as busy (see :func:`not_probed_busy`)."""
    current = node_watch.snapshot_from_sinfo(sinfo_text, catalog.smoke.partition)
    found = node_watch.changes(previous, current, waiting)
    requests = [
        dg.RunRequest(
            run_key=f"{c.node}:{c.reason}:{int(now)}",
            job_name=NODE_JOB,
            partition_key=c.node,
            tags={NODE_TAG: c.node, "mlops/trigger": c.reason, "mlops/node_state": c.after},
        )
        for c in found
    ]
    new = sorted(set(current) - set(known_partitions))
    return NodeTick(requests, node_watch.encode_cursor(current), found, new)


#: the per-node GPU checks that skip busy nodes and name them in ``not_probed_busy``
PER_NODE_GPU_CHECKS = (
    dg.AssetCheckKey(dg.AssetKey("gpu_nodes"), "gpu_nvidia_smi_matches_gres_per_node"),
    dg.AssetCheckKey(dg.AssetKey("apptainer"), "apptainer_nv_exposes_allocated_gpus"),
)


def not_probed_busy(instance: dg.DagsterInstance) -> set[str]:
    """Nodes the latest evaluation of each per-node GPU check left out because jobs held them
    (core.probes.node_step.run_on_nodes): the sensor smokes them once they come free."""
    from mlops_assets.checking import from_check_evaluation

    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        list(PER_NODE_GPU_CHECKS)
    )
    out: set[str] = set()
    for record in latest.values():
        evaluation = record.evaluation
        if evaluation is None:
            continue
        names = from_check_evaluation(evaluation).extra.get("not_probed_busy")
        out |= {n for n in str(names or "").split(",") if n}
    return out


def _sinfo(runner: Any) -> str:
    res = runner.run(["sinfo", "-h", "-N", "-o", slurm_nodes.SINFO_NODE_FORMAT], timeout_s=60)
    if not res.ok:
        raise RuntimeError(f"sinfo failed on {runner.where} (exit {res.returncode}): {res.tail(2)}")
    return str(res.stdout)


def sync_node_partitions(catalog: Catalog, instance: dg.DagsterInstance, runner: Any) -> list[str]:
    """Add every GPU node of the smoke partition that sinfo shows as a partition; returns the
    usable ones (a drained node's job would only wait in the queue). For runs started outside
    the sensor (`mlops-assets materialize`, the nightly schedule)."""
    current = node_watch.snapshot_from_sinfo(_sinfo(runner), catalog.smoke.partition)
    known = set(instance.get_dynamic_partitions(GPU_NODES_NAME))
    if set(current) - known:
        instance.add_dynamic_partitions(GPU_NODES_NAME, sorted(set(current) - known))
    return sorted(n for n, v in current.items() if node_watch.usable(v.partition("|")[0]))


def node_sensor(catalog: Catalog) -> dg.SensorDefinition:
    @dg.sensor(
        name="slurm_gpu_node_sensor",
        job_name=NODE_JOB,
        minimum_interval_seconds=catalog.smoke.node_sensor_interval_s,
        default_status=sensor_status(catalog),
        description="One sinfo per tick: a GPU node that is new, resumed, or whose GRES changed, "
        "or that the per-node GPU checks skipped as busy and that has come free, gets the GPU "
        "smoke jobs for its partition only; new GPU nodes become partitions.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, hpc: HpcSide
    ) -> dg.SensorResult | dg.SkipReason:
        import time

        try:
            text = _sinfo(hpc.runner())
        except RuntimeError as exc:
            return dg.SkipReason(str(exc))
        previous = node_watch.decode_cursor(context.cursor)
        tick = node_run_requests(
            catalog,
            previous,
            text,
            time.time(),
            context.instance.get_dynamic_partitions(GPU_NODES_NAME),
            not_probed_busy(context.instance),
        )
        for c in tick.found:
            context.log.info(
                f"{c.node}: {c.reason} ({c.before} -> {c.after}): requesting its GPU smoke jobs"
            )
        adds = [GPU_NODES.build_add_request(tick.new_partitions)] if tick.new_partitions else []
        if not tick.requests:
            skip = (
                "no GPU node appeared, resumed or changed GRES"
                if previous is not None
                else "baseline recorded"
            )
            return dg.SensorResult(
                skip_reason=skip, cursor=tick.cursor, dynamic_partitions_requests=adds
            )
        return dg.SensorResult(
            run_requests=tick.requests, cursor=tick.cursor, dynamic_partitions_requests=adds
        )

    return _sensor


ORPHAN_RUN_WINDOW = 200  # newest runs whose job tags are reconciled per tick
ORPHAN_CURSOR_KEEP = 500  # job ids remembered as handled


def orphan_tick(
    instance: dg.DagsterInstance, runner: Any, cursor: str | None, assets: Sequence[str]
) -> dg.SensorResult:
    """One reconcile pass, testable with a real instance and SLURM: the job tags of the newest
    runs against one `squeue` (and one `sacct` for jobs gone from the queue); a job whose run
    died gets a run that re-attaches to it, every orphan an observation on its asset (and
    partition) saying what happened. Handled job ids go into the cursor."""
    import json

    from mlops_assets.core import slurm_jobs as sj
    from mlops_assets.core.parse.slurm.jobs import parse_sacct, parse_squeue
    from mlops_assets.core.parse.slurm.states import TERMINAL_JOB_STATES

    handled: set[str] = set(json.loads(cursor)) if cursor else set()
    tagged = [
        t
        for r in instance.get_runs(limit=ORPHAN_RUN_WINDOW)
        for k, v in r.tags.items()
        if (t := sj.parse_job_tag(k, v, r.run_id, r.status.value, assets)) is not None
    ]
    if not tagged:
        return dg.SensorResult(skip_reason="no run recorded a SLURM job", cursor=cursor)
    q = runner.run(sj.squeue_all_argv(), timeout_s=60)
    if not q.ok:
        return dg.SensorResult(
            skip_reason=f"squeue failed (exit {q.returncode}): {q.tail(2)}", cursor=cursor
        )
    live = {r.job_id: r.state for r in parse_squeue(q.stdout) if r.state not in TERMINAL_JOB_STATES}
    gone = sorted(
        {
            t.job_id
            for t in tagged
            if t.job_id not in live
            and t.job_id not in handled
            and t.run_status not in sj.RUN_IN_PROGRESS
            and t.run_status != "SUCCESS"
        }
    )
    ended: dict[str, str] = {}
    if gone:
        a = runner.run(sj.sacct_jobs_argv(gone), timeout_s=60)
        try:  # an unreadable answer (a state cut to its width) reports nothing rather than a guess
            ended = (
                {r.job: r.state for r in parse_sacct(a.stdout) if not r.is_step and r.terminal}
                if a.ok
                else {}
            )
        except ValueError as exc:
            return dg.SensorResult(
                skip_reason=f"sacct answer unreadable, no orphan reported this tick: {exc}",
                cursor=cursor,
            )
    actions = [a for a in sj.reconcile_orphans(tagged, live, ended) if a.job.job_id not in handled]
    requests = [
        dg.RunRequest(
            run_key=f"reattach:{a.job.job_id}",
            asset_selection=[dg.AssetKey(a.job.asset)],
            partition_key=a.job.partition,
            tags={
                "mlops/reattach_job": a.job.job_id,
                "mlops/orphan_of_run": a.job.run_id,
                **({NODE_TAG: a.job.partition} if a.job.partition else {}),
            },
        )
        for a in actions
        if a.action == sj.REATTACH
    ]
    events = [
        dg.AssetObservation(
            asset_key=a.job.asset,
            partition=a.job.partition,
            metadata={
                "orphan_slurm_job_id": a.job.job_id,
                "orphan_slurm_state": a.slurm_state,
                "orphan_of_run": a.job.run_id,
                "orphan_action": a.action,
                "orphan_message": a.message,
            },
        )
        for a in actions
    ]
    kept = sorted(handled | {a.job.job_id for a in actions}, key=int)[-ORPHAN_CURSOR_KEEP:]
    new_cursor = json.dumps(kept)
    if not actions:
        return dg.SensorResult(skip_reason="no orphaned SLURM job", cursor=new_cursor)
    return dg.SensorResult(run_requests=requests, asset_events=events, cursor=new_cursor)


def orphan_sensor(catalog: Catalog, smoke: Sequence[dg.AssetsDefinition]) -> dg.SensorDefinition:
    """Watches the SLURM jobs of the `smoke` assets (built once, in build: each costs a few
    milliseconds of the code location's load)."""
    names = [a.key.to_user_string() for a in smoke]

    @dg.sensor(
        name="smoke_orphan_sensor",
        target=dg.AssetSelection.assets(*names),
        minimum_interval_seconds=catalog.smoke.node_sensor_interval_s,
        default_status=sensor_status(catalog),
        description=(
            "SLURM smoke jobs whose Dagster run died (run monitoring marks it FAILURE) get a run "
            "that re-attaches; other orphans are reported as observations."
        ),
    )
    def _sensor(context: dg.SensorEvaluationContext, hpc: HpcSide) -> dg.SensorResult:
        result = orphan_tick(context.instance, hpc.runner(), context.cursor, names)
        for ev in result.asset_events or []:
            context.log.warning(str(ev.metadata["orphan_message"].value))
        return result

    return _sensor


def build(catalog: Catalog) -> dg.Definitions:
    """The smoke assets, their per-node job and their two sensors; the schedules that run them
    with everything else live in defs/automation."""
    node_job = dg.define_asset_job(
        NODE_JOB,
        selection=dg.AssetSelection.assets(*NODE_ASSETS),
        description="The GPU smoke jobs for one node: the partition key is the node.",
    )
    smoke = smoke_assets(catalog)
    return dg.Definitions(
        assets=smoke,
        jobs=[node_job],
        sensors=[node_sensor(catalog), orphan_sensor(catalog, smoke)],
    )


defs = build(active().catalog)
