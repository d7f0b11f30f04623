"""What a dataset and a model staged on BeeGFS have in common, written once: the asset that
stages it through a payload, the asset that copies it to a bucket, and the checks on both
(manifest re-hash, load check, size, bucket copy). defs/datasets and defs/models describe
their entries with a `Staged` and take assets and checks from here; only their wording and
their own extras (a model's MLflow registration) stay in their folders.

Not a domain: no asset group of its own, nothing in the registry (defs/__init__.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog, Freshness
from mlops_assets.checking import ProbeContext, ProbeSpec, freshness_policy
from mlops_assets.core.checks import Outcome, Severity, bound
from mlops_assets.core.probes import staging
from mlops_assets.resources.clients import S3Resource
from mlops_assets.resources.hpc import HpcSide


@dataclass(frozen=True)
class Staged:
    """One catalog entry staged on BeeGFS. The callables take the catalog the probe or run
    sees, so checks judge the catalog of the run, not the one of the code location's load."""

    key: str
    path: Callable[[Catalog], str]
    manifest: Callable[[Catalog], str]
    load_spec: Callable[[Catalog], dict[str, Any]]
    approx_size_mb: float
    freshness: Freshness | None
    #: sync_s3.py's extras for the bucket copy (None: no copy in a bucket).
    sync_plan: Callable[[Catalog], dict[str, Any]] | None = None
    bucket: str = ""
    #: why each check matters for this kind of entry (its description)
    verifies_why: str = ""
    loads_why: str = ""
    bucket_why: str = ""

    def fresh(self, catalog: Catalog) -> dg.FreshnessPolicy:
        return freshness_policy(self.freshness or catalog.default_freshness)


def _verifies(c: ProbeContext, s: Staged) -> Outcome:
    hpc, cat = c.hpc, c.catalog
    return staging.verify_staged(
        hpc.runner(), hpc.python, hpc.ship(), s.path(cat), s.manifest(cat), s.key
    )


def _loads(c: ProbeContext, s: Staged) -> Outcome:
    hpc = c.hpc
    return staging.run_load_check(
        hpc.runner(), hpc.python, hpc.ship(), s.load_spec(c.catalog), s.key
    )


def _size(c: ProbeContext, s: Staged) -> Outcome:
    return staging.staged_size(c.hpc.runner(), s.manifest(c.catalog), s.approx_size_mb, s.key)


def _in_bucket(c: ProbeContext, s: Staged) -> Outcome:
    assert s.sync_plan is not None  # only bound where there is one
    return staging.bucket_copy(c.hpc.runner(), c.s3.probe_client(), s.sync_plan(c.catalog))


def bucket_check(s: Staged) -> ProbeSpec:
    """The bucket copy, object by object, against the staged manifest."""
    return ProbeSpec(
        f"{s.key}_minio",
        f"{s.key}_minio_matches_manifest",
        Severity.ERROR,
        f"{s.bucket_why}: every manifest entry is an object with the same size and "
        "x-amz-meta-sha256, and _manifest.json (written last) has the current digest; "
        "names missing/changed keys.",
        bound(_in_bucket, s),
        ("hpc", "s3"),
        blocking=True,
        hint=f"materialize {s.key}_minio",
    )


def staged_checks(s: Staged) -> list[ProbeSpec]:
    """The staged copy re-hashed and loaded on the HPC side (both block what reads it), and
    its size."""
    heavy = [("manifest_verifies", s.verifies_why, _verifies), ("loads", s.loads_why, _loads)]
    return [
        *(
            ProbeSpec(
                s.key,
                f"{s.key}_{check}",
                Severity.ERROR,
                why,
                bound(probe, s),
                ("hpc",),
                blocking=True,
                light=False,
                hint=f"re-materialize {s.key}",
            )
            for check, why, probe in heavy
        ),
        ProbeSpec(
            s.key,
            f"{s.key}_size_within_bounds",
            Severity.WARN,
            "The staged bytes are within a factor of 4 of the catalog's approx_size_mb.",
            bound(_size, s),
            ("hpc",),
        ),
    ]


def stage_asset(
    catalog: Catalog,
    s: Staged,
    *,
    group: str,
    pool: str,
    payload: str,
    extras: dict[str, Any],
    kinds: set[str],
    description: str,
    metadata: dict[str, Any],
) -> dg.AssetsDefinition:
    """The asset that runs a staging payload on the HPC side (login node or data mover)."""

    @dg.asset(
        name=s.key,
        group_name=group,
        kinds=kinds,
        deps=["beegfs_layout"],
        pool=pool,
        description=description,
        metadata={**metadata, "path": dg.MetadataValue.path(s.path(catalog))},
        freshness_policy=s.fresh(catalog),
    )
    def _stage(context, hpc: HpcSide) -> dg.MaterializeResult:  # dagster validates a bare `context`
        done = hpc.staging_client().run(context=context, payload=payload, extras=extras)
        return done.get_materialize_result()

    return _stage


def bucket_asset(
    catalog: Catalog, s: Staged, *, group: str, uri: str, description: str
) -> dg.AssetsDefinition:
    """The copy in a bucket, uploaded from the HPC side by sync_s3.py (the keys travel in a
    private file: HpcSide.sync_to_s3); _manifest.json goes last."""
    assert s.sync_plan is not None  # only built where there is one
    plan = s.sync_plan(catalog)

    @dg.asset(
        name=f"{s.key}_minio",
        group_name=group,
        kinds={"minio"},
        deps=[s.key, catalog.bucket(s.bucket).asset_key],
        description=description,
        metadata={"uri": uri},
        freshness_policy=s.fresh(catalog),
    )
    def _sync(context, hpc: HpcSide, s3: S3Resource) -> dg.MaterializeResult:
        return hpc.sync_to_s3(context, s3, plan)

    return _sync
