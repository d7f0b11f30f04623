"""Apptainer images on BeeGFS, one asset per catalog entry."""

from __future__ import annotations

from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog, Container, PullSource
from mlops_assets.checking import asset_checks, external
from mlops_assets.core import staging_rules
from mlops_assets.core.checks import CheckSpec, Outcome, Severity, bound
from mlops_assets.platform import active

GROUP = "containers"


def _sif_valid(c: Any, ct: Container) -> Outcome:
    return staging_rules.sif_valid(c.hpc.runner(), staging_rules.container_path(c.catalog, ct))


def _frameworks(c: Any, ct: Container) -> Outcome:
    path = staging_rules.container_path(c.catalog, ct)
    return staging_rules.image_packages(c.hpc.runner(), path, ct.expect_python_packages)


def specs(catalog: Catalog) -> list[CheckSpec]:
    out: list[CheckSpec] = []
    for name, ct in catalog.containers.items():
        out.append(CheckSpec(
            f"container_{name}", f"container_{name}_is_valid_sif", Severity.ERROR,
            "A truncated or non-SIF file fails every job that execs it.",
            bound(_sif_valid, ct),
            ("hpc",),
        ))
        if ct.expect_python_packages:
            out.append(CheckSpec(
                f"container_{name}", f"container_{name}_framework_versions", Severity.ERROR,
                "Jobs assume these frameworks inside the image.",
                bound(_frameworks, ct),
                ("hpc",), light=False,
            ))
    return out


def build(catalog: Catalog) -> dg.Definitions:
    assets = []
    for name, ct in catalog.containers.items():
        src = ct.source.pull if isinstance(ct.source, PullSource) else f"build {ct.source.build}"
        deps = ["beegfs_layout", "apptainer"]
        if not isinstance(ct.source, PullSource) and ct.source.bootstrap_from:
            deps.append(f"container_{ct.source.bootstrap_from}")
        assets.append(
            external(
                f"container_{name}", group=GROUP, kinds=["apptainer"],
                description=f"{ct.file} from {src}.", deps=deps,
                metadata={"file": staging_rules.container_path(catalog, ct), "source": src},
                freshness=ct.freshness or catalog.default_freshness,
            )
        )
    return dg.Definitions(assets=assets, asset_checks=asset_checks(specs(catalog), name="containers_checks"))


defs = build(active().catalog)
