"""Storage: the BeeGFS directory layout and the MinIO buckets, both materializable, both
generated from the catalog, and the training scripts staged into that layout
(training_files.py). Creating is idempotent; nothing is ever emptied."""

from __future__ import annotations

import dagster as dg

from mlops_assets.catalog.schema import Bucket, Catalog
from mlops_assets.checking import ProbeContext, ProbeSpec, asset_checks, on_hpc
from mlops_assets.core.checks import CheckSpec, Outcome, Severity, bound
from mlops_assets.core.probes import hpc as hpc_probes
from mlops_assets.core.probes import staging
from mlops_assets.defs.storage import training_files
from mlops_assets.platform import active
from mlops_assets.resources.clients import S3Resource
from mlops_assets.resources.hpc import HpcSide

GROUP = "storage"


def _layout(catalog: Catalog) -> dg.AssetsDefinition:
    dirs = catalog.hpc.beegfs.role_directories()

    @dg.asset(
        name="beegfs_layout",
        group_name=GROUP,
        kinds={"beegfs"},
        deps=["beegfs"],
        description=(
            "The directories training needs under "
            f"{catalog.hpc.beegfs.root}, owned by the training user."
        ),
    )
    def beegfs_layout(hpc: HpcSide) -> dg.MaterializeResult:
        runner = hpc.runner()
        res = runner.run(["mkdir", "-p", "--", *dirs.values()])
        if not res.ok:
            raise dg.Failure(
                description=f"mkdir on {runner.where} failed: {res.tail(3)}",
                metadata={
                    "hint": (
                        f"give {catalog.hpc.beegfs.training_user} write access to "
                        f"{catalog.hpc.beegfs.root}"
                    )
                },
            )
        owners = runner.run(["stat", "-c", "%n %U %a", *dirs.values()]).stdout.strip().splitlines()
        return dg.MaterializeResult(
            metadata={
                "root": dg.MetadataValue.path(catalog.hpc.beegfs.root),
                "directories": dg.MetadataValue.json({k: v for k, v in dirs.items()}),
                "owners": dg.MetadataValue.text("\n".join(owners)),
                "host": runner.where,
            }
        )

    return beegfs_layout


def _bucket(bucket: Bucket) -> dg.AssetsDefinition:
    @dg.asset(
        name=bucket.asset_key,
        group_name=GROUP,
        kinds={"s3", "minio"},
        deps=["minio"],
        description=(
            f"The MinIO bucket `{bucket.name}`: {bucket.purpose}. "
            "Created if missing, never emptied."
        ),
    )
    def _asset(s3: S3Resource) -> dg.MaterializeResult:
        client = s3.client()
        created = False
        try:
            client.head_bucket(Bucket=bucket.name)
        except Exception as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code not in {"404", "NoSuchBucket", "NotFound"}:
                raise dg.Failure(
                    description=f"cannot inspect bucket {bucket.name}: {code or type(exc).__name__}"
                ) from None
            client.create_bucket(Bucket=bucket.name)
            created = True
        listing = client.list_objects_v2(Bucket=bucket.name, MaxKeys=1000)
        return dg.MaterializeResult(
            metadata={
                "bucket": bucket.name,
                "created": created,
                "objects (first 1000)": int(listing.get("KeyCount", 0)),
            }
        )

    return _asset


def _round_trip(c: ProbeContext, bucket: str) -> Outcome:
    return staging.bucket_round_trip(c.s3.client(), bucket)


def specs(catalog: Catalog) -> list[ProbeSpec]:
    E, W = Severity.ERROR, Severity.WARN
    out: list[ProbeSpec] = [
        CheckSpec(
            "beegfs_layout",
            "beegfs_layout_complete",
            E,
            "Jobs write to these paths without creating them.",
            on_hpc(hpc_probes.layout_complete),
            ("hpc",),
            blocking=True,
        ),
        CheckSpec(
            "beegfs_layout",
            "beegfs_layout_writable_by_training_user",
            E,
            "A read-only share fails training at its first checkpoint.",
            on_hpc(hpc_probes.layout_writable),
            ("hpc",),
            blocking=True,
        ),
    ]
    for b in catalog.cloud.buckets:
        out.append(
            CheckSpec(
                b.asset_key,
                f"{b.asset_key}_round_trip",
                E if b.required else W,
                "Proves writes and reads, not just that the name exists.",
                bound(_round_trip, b.name),
                ("s3",),
                blocking=b.required,
            )
        )
    return out


def build(catalog: Catalog) -> dg.Definitions:
    assets = [_layout(catalog), *(_bucket(b) for b in catalog.cloud.buckets)]
    own = dg.Definitions(
        assets=assets, asset_checks=asset_checks(specs(catalog), name="storage_checks")
    )
    return dg.Definitions.merge(own, training_files.build(catalog))


defs = build(active().catalog)
