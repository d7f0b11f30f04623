"""The trained MNIST model in the registry (issue 19 items 2 and 4): the newest
`smoke_mnist_training` output registered in MLflow, then copied to the models bucket.

- `model_mnist_registered`: reads `model.pt` and `metrics.json` through the HPC side (the
  orchestrator may not mount BeeGFS), and, unless a version with the same model sha256 exists,
  makes an MLflow run (params, metrics, both files as artifacts on MLflow's S3 store) and a
  version of the catalog's `registry.mnist.registered_name`, tagged with the model's sha256
  and the dataset manifest, container and code digests the project recorded (`unknown` where
  it recorded none, `none` for no container). Aliases: `candidate` on every new version,
  `production` when the training passed the smoke's bar, `rollback` on the version it
  replaces. Its check: registration within its budget.
- `model_mnist_minio`: that version's files to `s3://<bucket>/<prefix>/<version>/`, each
  verified by reading it back; an object already carrying the sha256 is not uploaded again.
  Its check: the copy within its budget.

The rules (tags, aliases, promotion, budgets) are core/registry_rules.py."""

import json
import os
import tempfile
import time
from functools import partial
from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog
from mlops_assets.checking import latest_metadata, recorded_checks
from mlops_assets.core import registry_rules as rr
from mlops_assets.core.checks import CheckSpec, Outcome, Severity
from mlops_assets.core.manifest import copy_hashing, hash_file
from mlops_assets.platform import active
from mlops_assets.resources.clients import HttpServiceResource, S3Resource
from mlops_assets.resources.hpc import HpcSide

GROUP = "registry"
TRAINING = "smoke_mnist_training"
REGISTERED = "model_mnist_registered"
MINIO = "model_mnist_minio"
FILES = ("model.pt", "metrics.json")
SHA_META = "sha256"  # x-amz-meta-sha256, as sync_s3.py writes it
REGISTER_CHECK = "registration_within_budget"
COPY_CHECK = "copy_within_budget"


def _fail(description: str, hint: str) -> dg.Failure:
    return dg.Failure(description=f"{description} Hint: {hint}", metadata={"hint": hint})


def _digests(catalog: Catalog, instance: dg.DagsterInstance, trained_at: float) -> dict[str, Any]:
    """The dataset manifest and container digests recorded by the materializations the
    training ran on (the newest before it); None where none is recorded."""
    mnist = [
        catalog.dataset_key(n)
        for n, d in catalog.datasets.items()
        if getattr(d.source, "dataset_class", "") == "MNIST"
    ]
    dataset = (
        latest_metadata(instance, mnist[0], trained_at)[1].get("manifest_digest") if mnist else None
    )
    if catalog.smoke.container is None:
        container: str | None = rr.NONE
    else:
        key = catalog.container_key(catalog.smoke.container)
        container = latest_metadata(instance, key, trained_at)[1].get("sha256")
    return {"dataset": dataset, "container": container}


def registered_asset(catalog: Catalog) -> dg.AssetsDefinition:
    cfg = catalog.registry.mnist
    bar = cfg.production_min_accuracy or catalog.smoke.mnist_min_accuracy

    @dg.asset(
        name=REGISTERED,
        group_name=GROUP,
        kinds={"mlflow", "pytorch"},
        deps=[TRAINING, "mlflow"],
        description=(
            f"The newest {TRAINING} model registered as `{cfg.registered_name}` in MLflow: a run "
            "with its params, metrics and model.pt + metrics.json, and a version tagged with "
            "the model's sha256 and the dataset, container and code digests. "
            f"@{cfg.candidate_alias} on every new version, @{cfg.production_alias} when "
            f"accuracy > {bar:.0%} within "
            f"{catalog.smoke.mnist_max_seconds:g} s (@{cfg.rollback_alias}: the one it "
            f"replaces). Same sha256: no new run or version. Budget < {cfg.register_budget_s:g} s."
        ),
        metadata={"registered_model": cfg.registered_name},
    )
    def _registered(
        context: dg.AssetExecutionContext, hpc: HpcSide, mlflow: HttpServiceResource
    ) -> dg.MaterializeResult:
        from mlops_assets.core.checks import ProbeFailed
        from mlops_assets.core.probes import trained_model
        from mlops_assets.core.transport.hostexec import sha256_of

        started = time.monotonic()
        trained, tmeta = latest_metadata(context.instance, TRAINING)
        if trained is None:
            raise _fail(f"{TRAINING} has no materialization", f"materialize {TRAINING} first")
        out_dir = str(tmeta.get("output_dir") or "")
        if not out_dir:
            raise _fail(
                f"the latest {TRAINING} materialization names no output_dir",
                f"materialize {TRAINING} again",
            )
        paths = {f: f"{out_dir.rstrip('/')}/{f}" for f in FILES}
        try:
            runner = hpc.runner()
            shas = sha256_of(runner, list(paths.values()))
            unreadable = [p for p in paths.values() if p not in shas]
            if unreadable:
                raise _fail(
                    f"{', '.join(unreadable)} cannot be read on {runner.where}",
                    f"the training output must be readable by the login user (materialize "
                    f"{TRAINING} again if it was removed)",
                )
            model_sha = shas.get(paths["model.pt"], "")
            metrics_sha = shas.get(paths["metrics.json"], "")
            now = trained_model.state(mlflow, cfg.registered_name)
            same = rr.newest_with_sha(now.tags, model_sha)
            if same is not None:
                tags = now.tags[same]
                context.log.info(
                    f"{cfg.registered_name} version {same} already holds model.pt sha256 "
                    f"{model_sha[:16]}: no new run or version"
                )
                return _registered_result(catalog, started, same, tags, now.aliases, promo=None)
            with tempfile.TemporaryDirectory(prefix="mlops-registry-") as tmp:
                local = {f: os.path.join(tmp, f) for f in FILES}
                for f in FILES:
                    runner.get(paths[f], local[f])
                    if hash_file(local[f])[1] != shas.get(paths[f]):
                        raise _fail(
                            f"{paths[f]} changed while it was read (sha256 differs)",
                            "re-run: the training output must not change under the registry",
                        )
                with open(local["metrics.json"], encoding="utf-8") as fh:
                    metrics = json.load(fh)
                params, figures = rr.params_and_metrics(metrics)
                found = _digests(catalog, context.instance, trained.timestamp)
                tags = rr.provenance_tags(
                    model_sha,
                    metrics_sha,
                    dataset=found["dataset"],
                    container=found["container"],
                    code=tmeta.get("code_digest"),
                    output_dir=out_dir,
                    slurm_job_id=str(tmeta["slurm_job_id"]) if "slurm_job_id" in tmeta else None,
                )
                for missing in rr.unknown_digests(tags):
                    context.log.warning(
                        f"{missing}: not recorded by the materializations the training ran on, "
                        "tagged `unknown`"
                    )
                total = tmeta.get("total_seconds")
                promo = rr.judge_promotion(
                    metrics,
                    min_accuracy=bar,
                    max_seconds=catalog.smoke.mnist_max_seconds,
                    total_seconds=float(total) if isinstance(total, int | float) else None,
                )
                new = trained_model.register_run(
                    mlflow,
                    cfg.registered_name,
                    cfg.experiment,
                    local,
                    params,
                    figures,
                    tags,
                    description=f"SimpleCNN from {out_dir}, registered by mlops_assets",
                )
            moves = rr.alias_moves(
                now.aliases,
                new.version,
                promote=promo.passed,
                candidate=cfg.candidate_alias,
                production=cfg.production_alias,
                rollback=cfg.rollback_alias,
            )
            trained_model.set_aliases(mlflow, cfg.registered_name, moves.set)
        except ProbeFailed as exc:
            raise _fail(str(exc), exc.hint) from None
        aliases = {**now.aliases, **moves.set}
        context.log.info(
            f"{cfg.registered_name} version {new.version} (run {new.run_id}): {moves.describe()}"
            + ("" if promo.passed else f"; not production: {'; '.join(promo.messages)}")
        )
        registered = {**tags, trained_model.TAG_RUN: new.run_id}
        return _registered_result(catalog, started, new.version, registered, aliases, promo)

    return _registered


def _registered_result(
    catalog: Catalog,
    started: float,
    version: str,
    tags: dict[str, str],
    aliases: dict[str, str],
    promo: "rr.Promotion | None",
) -> dg.MaterializeResult:
    """The registered version's metadata, its registration timed from `started` against the
    budget. `promo`: the promotion judged for a version this run created; None where a version
    with the same sha256 was already there (nothing created)."""
    cfg = catalog.registry.mnist
    name = cfg.registered_name
    budget = rr.Budget(time.monotonic() - started, cfg.register_budget_s)
    base = catalog.cloud.services.mlflow.url.rstrip("/")
    mine = sorted(a for a, v in aliases.items() if v == version)
    meta: dict[str, Any] = {
        "registered_model": name,
        "version": version,
        "created": promo is not None,
        "run_id": tags.get("run_id", ""),
        "aliases": ", ".join(mine),
        "aliases_now": dg.MetadataValue.json(aliases),
        "register_seconds": round(budget.seconds, 3),
        "register_budget_s": budget.budget_s,
        "unknown_digests": ", ".join(rr.unknown_digests(tags)),
        "url": dg.MetadataValue.url(f"{base}/#/models/{name}/versions/{version}"),
        **{k: tags.get(k, "") for k in (rr.TAG_MODEL_SHA, rr.TAG_METRICS_SHA, rr.TAG_DATASET)},
        **{k: tags.get(k, "") for k in (rr.TAG_CONTAINER, rr.TAG_CODE, rr.TAG_OUTPUT_DIR)},
    }
    if promo is not None:
        meta["production"] = promo.passed
        meta["promotion_detail"] = "; ".join(promo.messages) or (
            f"accuracy above {promo.min_accuracy} within {promo.max_seconds:g} s"
        )
    return dg.MaterializeResult(
        metadata=meta,
        data_version=dg.DataVersion(tags.get(rr.TAG_MODEL_SHA, "")),
    )


def minio_asset(catalog: Catalog) -> dg.AssetsDefinition:
    cfg = catalog.registry.mnist
    bucket = catalog.trained_bucket()

    @dg.asset(
        name=MINIO,
        group_name=GROUP,
        kinds={"minio"},
        deps=[REGISTERED, bucket.asset_key],
        description=(
            f"The registered MNIST version's model.pt and metrics.json in "
            f"s3://{bucket.name}/{cfg.prefix}/<version>/ (KServe pulls it from there), each "
            "read back and its sha256 compared; an object already carrying the sha256 is not "
            f"uploaded again. Budget < {cfg.copy_budget_s:g} s."
        ),
    )
    def _minio(
        context: dg.AssetExecutionContext, s3: S3Resource, mlflow: HttpServiceResource
    ) -> dg.MaterializeResult:
        from mlops_assets.core.checks import ProbeFailed
        from mlops_assets.core.probes import trained_model

        started = time.monotonic()
        reg = latest_metadata(context.instance, REGISTERED)[1]
        version = str(reg.get("version") or "")
        if not version:
            raise _fail(f"{REGISTERED} has no materialization", f"materialize {REGISTERED} first")
        try:
            now = trained_model.state(mlflow, cfg.registered_name)
        except ProbeFailed as exc:
            raise _fail(str(exc), exc.hint) from None
        tags = now.tags.get(version)
        if tags is None:
            raise _fail(
                f"{cfg.registered_name} has no version {version} in MLflow any more",
                f"materialize {REGISTERED} again",
            )
        want = {
            "model.pt": tags.get(rr.TAG_MODEL_SHA, ""),
            "metrics.json": tags.get(rr.TAG_METRICS_SHA, ""),
        }
        keys = rr.object_keys(cfg.prefix, version, FILES)
        client = s3.client()
        uploaded: list[str] = []
        sent = 0
        with tempfile.TemporaryDirectory(prefix="mlops-registry-") as tmp:
            for f, key in keys.items():
                if _head_sha(client, bucket.name, key) == want[f]:
                    continue
                try:
                    path = trained_model.download(mlflow, tags[trained_model.TAG_RUN], f, tmp)
                except (ProbeFailed, KeyError) as exc:
                    raise _fail(
                        f"version {version}'s {f} could not be read from MLflow: {exc}",
                        f"materialize {REGISTERED} again",
                    ) from None
                if hash_file(path)[1] != want[f]:
                    raise _fail(
                        f"MLflow's {f} of version {version} is not the registered bytes "
                        f"(sha256 tag {want[f][:16]})",
                        "the run's artifacts changed: re-register the model",
                    )
                client.upload_file(
                    path, bucket.name, key, ExtraArgs={"Metadata": {SHA_META: want[f]}}
                )
                back = _object_sha(client, bucket.name, key)
                if back != want[f]:
                    raise _fail(
                        f"s3://{bucket.name}/{key} reads back as sha256 {back[:16]}, "
                        f"uploaded {want[f][:16]}",
                        "check the S3 server (MinIO) and re-run",
                    )
                uploaded.append(f)
                sent += os.path.getsize(path)
        budget = rr.Budget(time.monotonic() - started, cfg.copy_budget_s)
        uri = f"s3://{bucket.name}/{cfg.prefix.strip('/')}/{version}/"
        context.log.info(
            f"{uri}: {', '.join(uploaded) + ' uploaded and verified' if uploaded else 'unchanged'}"
            f" ({budget.describe('copy')})"
        )
        return dg.MaterializeResult(
            metadata={
                "uri": uri,
                "version": version,
                "uploaded": ", ".join(uploaded),
                "bytes_uploaded": sent,
                "model_sha256": want["model.pt"],
                "copy_seconds": round(budget.seconds, 3),
                "copy_budget_s": budget.budget_s,
            },
            data_version=dg.DataVersion(want["model.pt"]),
        )

    return _minio


def _head_sha(client: Any, bucket: str, key: str) -> str | None:
    """The object's sha256 metadata, or None when it does not exist."""
    from mlops_assets.core.probes.staging import head_objects

    head = head_objects(client, bucket, [key])[key]
    return head[1].get(SHA_META) if head is not None else None


def _object_sha(client: Any, bucket: str, key: str) -> str:
    return copy_hashing(client.get_object(Bucket=bucket, Key=key)["Body"], None)[1]


# (asset, check, metadata key of the seconds, of the budget, what was timed)
BUDGETS = (
    (REGISTERED, REGISTER_CHECK, "register_seconds", "register_budget_s", "registration"),
    (MINIO, COPY_CHECK, "copy_seconds", "copy_budget_s", "copy to MinIO"),
)


def budget_outcome(
    meta: dict[str, Any], asset: str, seconds: str, budget: str, what: str
) -> Outcome:
    """The latest materialization's own timing against its budget; none yet is a WARN."""
    if seconds not in meta or budget not in meta:
        return Outcome(
            False,
            "none",
            "materialized",
            hint=f"materialize {asset}",
            detail=f"{asset} has no materialization with a timing yet",
            severity=Severity.WARN,
        )
    b = rr.Budget(float(meta[seconds]), float(meta[budget]))
    return Outcome(
        b.met,
        round(b.seconds, 3),
        b.budget_s,
        unit="s",
        hint="" if b.met else "see the materialization's log: which call was slow",
        detail=b.describe(what),
    )


def budget_checks(catalog: Catalog) -> dg.AssetChecksDefinition:
    """The budgets (validation tasks: register < 1 min, copy to MinIO < 2 min) over the
    latest materialization: after it in a run that materializes, alone in `validate`."""
    return recorded_checks(
        "registry_budget_checks",
        [
            (
                CheckSpec(
                    asset,
                    check,
                    Severity.WARN,
                    f"The {what} took less than its budget (catalog registry.mnist.{budget}).",
                    lambda _ctx: Outcome(False, "", ""),
                    light=False,
                    hint=f"materialize {asset}",
                ),
                partial(budget_outcome, asset=asset, seconds=seconds, budget=budget, what=what),
            )
            for asset, check, seconds, budget, what in BUDGETS
        ],
    )


def build(catalog: Catalog) -> dg.Definitions:
    return dg.Definitions(
        assets=[registered_asset(catalog), minio_asset(catalog)],
        asset_checks=[budget_checks(catalog)],
    )


defs = build(active().catalog)
