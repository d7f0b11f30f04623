"""The training scripts and configs shipped in the package (mlops_assets/training/), staged to
BeeGFS `scripts/training/` and `configs/training/`: uploaded where they differ to a mirror on
BeeGFS, then swapped into place by stage_files.py on the HPC side (lock, manifest, renames),
so jobs never see half a set of scripts.

Part of the storage group (defs/storage/definitions.py merges it): like the BeeGFS layout it
stages into, it is something the platform must hold on BeeGFS before a job runs, and
`mlops-assets materialize --select storage` stages it with the layout and the buckets."""

from __future__ import annotations

import dagster as dg

from mlops_assets.catalog.schema import Catalog
from mlops_assets.checking import ProbeContext, ProbeSpec, asset_checks, freshness_policy
from mlops_assets.core import staging_plan
from mlops_assets.core.checks import CheckSpec, Outcome, Severity
from mlops_assets.core.probes import file_sync, staging
from mlops_assets.resources.hpc import HpcSide

GROUP = "storage"  # folder = group: this file lives in defs/storage/
KEY = "training_files"


def targets(catalog: Catalog) -> dict[str, tuple[str, str]]:
    """layout dir -> (target, upload mirror) on BeeGFS."""
    b = catalog.hpc.beegfs
    sub = file_sync.TARGET_SUBDIR
    return {
        d: (f"{b.directory(d)}/{sub}", f"{b.directory(d)}/.{sub}.upload")
        for d in file_sync.TRAINING_TREES
    }


def _verifies(c: ProbeContext) -> Outcome:
    """Each target re-hashed on the HPC side against its manifest, and that manifest is the
    package's current one (a newer package means the staged scripts are stale)."""
    hpc = c.hpc
    runner, where = hpc.runner(), hpc.ship()
    problems: list[str] = []
    files = 0
    for d, (target, _) in targets(c.catalog).items():
        mpath = c.catalog.hpc.beegfs.manifest_path(target)
        out = staging.verify_staged(runner, hpc.python, where, target, mpath, KEY)
        if not out.passed:
            problems.append(f"{target}: {out.detail}")
            continue
        want = file_sync.package_tree(file_sync.TRAINING_TREES[d]).manifest
        have = staging.read_staged_manifest(runner, mpath, KEY)
        if have.digest != want.digest:
            problems.append(
                f"{target}: staged digest {have.digest[:16]} "
                f"is not the package's {want.digest[:16]}"
            )
        files += have.file_count
    return Outcome(
        not problems,
        len(problems),
        0,
        "targets differing from the package",
        f"materialize {KEY}",
        detail="; ".join(problems)
        or f"{files} files in {', '.join(t for t, _ in targets(c.catalog).values())}",
    )


def specs(catalog: Catalog) -> list[ProbeSpec]:
    return [
        CheckSpec(
            KEY,
            f"{KEY}_manifest_verifies",
            Severity.ERROR,
            "Jobs run these files: each staged file still hashes to its manifest, and the "
            "manifest is the installed package's.",
            _verifies,
            ("hpc",),
            blocking=True,
            light=False,
            hint=f"materialize {KEY}",
        )
    ]


def _asset(catalog: Catalog) -> dg.AssetsDefinition:
    where = ", ".join(t for t, _ in targets(catalog).values())

    @dg.asset(
        name=KEY,
        group_name=GROUP,
        kinds={"beegfs", "python"},
        deps=["beegfs_layout"],
        description=(
            "Training scripts and configs shipped in the package (mlops_assets/training/), "
            f"staged in {where} with a manifest."
        ),
        metadata={"targets": where},
        freshness_policy=freshness_policy(catalog.default_freshness),
    )
    def _stage(context, hpc: HpcSide) -> dg.MaterializeResult:
        from mlops_assets.core.checks import ProbeFailed

        runner = hpc.runner()
        trees, sent = [], 0
        try:
            for d, (target, mirror) in targets(catalog).items():
                tree = file_sync.package_tree(file_sync.TRAINING_TREES[d])
                sent += file_sync.upload_tree(runner, tree, mirror)
                trees.append({"source": mirror, "target": target, "digest": tree.manifest.digest})
        except ProbeFailed as exc:
            raise dg.Failure(description=f"{exc} Hint: {exc.hint}") from None
        context.log.info(f"uploaded {sent} bytes of changed files to the mirrors on {runner.where}")
        done = hpc.staging_client().run(
            context=context,
            payload="stage_files.py",
            extras={
                "trees": trees,
                "bytes_uploaded": sent,
                "rehash_after_s": staging_plan.rehash_after_s(catalog),
            },
        )
        return done.get_materialize_result()

    return _stage


def build(catalog: Catalog) -> dg.Definitions:
    return dg.Definitions(
        assets=[_asset(catalog)], asset_checks=asset_checks(specs(catalog), name=f"{KEY}_checks")
    )
