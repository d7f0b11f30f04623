"""Apptainer images on BeeGFS `containers/`, one materializable asset per catalog entry: pulled
or built on the HPC side (login node, or a SLURM job on the build partition) by
payloads/container_image.py through Pipes, published by rename, and checked in place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from mlops_assets.catalog.schema import BuildSource, Catalog, Container, PullSource
from mlops_assets.checking import ProbeContext, ProbeSpec, asset_checks_per_asset, freshness_policy
from mlops_assets.core.checks import CheckSpec, Outcome, Severity, bound
from mlops_assets.core.probes import containers
from mlops_assets.platform import active
from mlops_assets.resources.hpc import HpcSide, job_resources
from mlops_assets.resources.hpc_pipes import PayloadClient

GROUP = "containers"
POOL = "container_builds"


def _container_asset(catalog: Catalog, name: str, ct: Container) -> dg.AssetsDefinition:
    path, key = catalog.container_path(name), catalog.container_key(name)
    base = ct.source.bootstrap_from if isinstance(ct.source, BuildSource) else None
    src = ct.source.pull if isinstance(ct.source, PullSource) else f"build {ct.source.build}"
    where = f"a SLURM job on {ct.build_partition}" if ct.where == "slurm" else "the login node"

    @dg.asset(
        name=key,
        group_name=GROUP,
        kinds={"apptainer", "beegfs"},
        deps=["beegfs_layout", "apptainer", *([catalog.container_key(base)] if base else [])],
        pool=POOL,
        description=(
            f"{ct.file} from {src}, made on {where}; published by rename, a no-op when the "
            "source is unchanged."
        ),
        metadata={"path": dg.MetadataValue.path(path), "source": src, "where": ct.where},
        freshness_policy=freshness_policy(ct.freshness or catalog.default_freshness),
    )
    def _image(context, hpc: HpcSide) -> dg.MaterializeResult:
        extras = containers.plan(catalog, name)
        client: PayloadClient = (
            hpc.login_client(timeout_s=extras["timeout_s"] + 300)
            if ct.where == "login"
            else hpc.build_client(ct.build_partition or "", job_resources(ct.job))
        )
        invocation = client.run(context=context, payload="container_image.py", extras=extras)
        return invocation.get_materialize_result()

    return _image


def _sif_valid(c: ProbeContext, name: str) -> Outcome:
    return containers.sif_valid(c.hpc.runner(), c.catalog.container_path(name))


def _frameworks(c: ProbeContext, name: str) -> Outcome:
    cat = c.catalog
    return containers.image_packages(
        c.hpc.runner(), cat.container_path(name), cat.containers[name].expected_packages
    )


def _matches_record(c: ProbeContext, name: str) -> Outcome:
    return containers.matches_record(c.hpc.runner(), c.catalog.container_path(name))


def _nv_one_gpu(c: ProbeContext, name: str) -> Outcome:
    cat = c.catalog
    return containers.nv_exposes_gpus(
        c.hpc.runner(), cat.container_path(name), cat.smoke.partition, 1, fake=cat.hpc.gpus.fake
    )


@dataclass(frozen=True)
class _ImageChecks:
    """Writes the rows of one image's checks: each is named after the image's asset and probes
    the image over the HPC side, so that a row says only what it checks and why."""

    name: str
    asset: str

    def __call__(
        self,
        suffix: str,
        severity: Severity,
        why: str,
        probe: Callable[[ProbeContext, str], Outcome],
        blocking: bool = False,
        light: bool = True,
        hint: str = "",
    ) -> ProbeSpec:
        return CheckSpec(
            self.asset,
            f"{self.asset}_{suffix}",
            severity,
            why,
            bound(probe, self.name),
            ("hpc",),
            blocking,
            light,
            hint,
        )


def specs(catalog: Catalog) -> list[ProbeSpec]:
    E, W = Severity.ERROR, Severity.WARN
    gpu_sev = W if catalog.hpc.gpus.fake else E
    out: list[ProbeSpec] = []
    for name, ct in catalog.containers.items():
        image = _ImageChecks(name, catalog.container_key(name))
        remake = f"re-materialize {image.asset}"
        out += [
            image(
                "is_valid_sif",
                E,
                "A truncated or non-SIF file fails every job that "
                "execs it: SIF magic, then inspect --json.",
                _sif_valid,
                blocking=True,
                hint=remake,
            ),
            image(
                "matches_its_record",
                E,
                "The bytes on BeeGFS are the ones published (sha256 of the provenance record): "
                "catches a damaged or replaced image.",
                _matches_record,
                light=False,
                hint=remake,
            ),
            image(
                "sees_allocated_gpu_with_nv",
                gpu_sev,
                "`apptainer exec --nv` inside `srun --gres=gpu:1` shows that GPU; counted "
                "inside, since --nv exits 0 without a driver.",
                _nv_one_gpu,
                light=False,
            ),
        ]
        if ct.expect_python_packages:
            out.append(
                image(
                    "framework_versions",
                    E,
                    "Jobs assume these frameworks inside the image.",
                    _frameworks,
                    light=False,
                    hint=remake,
                )
            )
    return out


def build(catalog: Catalog) -> dg.Definitions:
    assets = [_container_asset(catalog, name, ct) for name, ct in catalog.containers.items()]
    return dg.Definitions(assets=assets, asset_checks=asset_checks_per_asset(specs(catalog)))


defs = build(active().catalog)
