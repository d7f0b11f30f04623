"""Network: SSH to the login node, HPC↔cloud both ways, internet/hub reachability,
bandwidth for model transfers, service DNS names, and the workstation's tools."""

from __future__ import annotations

import dagster as dg

from mlops_assets.catalog.schema import Catalog
from mlops_assets.checking import asset_checks, external
from mlops_assets.core import network_rules as r
from mlops_assets.core.checks import CheckSpec, Severity
from mlops_assets.platform import active

GROUP = "network"


def specs(catalog: Catalog) -> list[CheckSpec]:
    E, W = Severity.ERROR, Severity.WARN
    hpc = ("hpc",)
    return [
        CheckSpec("hpc_login", "hpc_login_accepts_key", E, "Every HPC check and job goes through this SSH login.", lambda c: r.login_accepts_key(c.hpc.runner(), c.catalog), hpc, blocking=True),
        CheckSpec("hpc_to_cloud", "hpc_reaches_cloud_services", E, "Model sync and MLflow logging start on the HPC side.", lambda c: r.hpc_reaches_cloud(c.hpc.runner(), c.catalog), hpc),
        CheckSpec("hpc_to_cloud", "hpc_to_cloud_bandwidth", E, "Model transfers need the seed's minimum bandwidth.", lambda c: r.hpc_to_cloud_bandwidth(c.hpc.runner(), c.s3.client(), c.catalog), ("hpc", "s3"), light=False),
        CheckSpec("cloud_to_hpc", "cloud_reaches_hpc_login", E, "The orchestrator on the cloud side drives SLURM over SSH.", lambda c: r.cloud_reaches_hpc(c.catalog)),
        CheckSpec("internet_reachability", "hpc_reaches_internet_targets", E, "Hub downloads and image pulls run on the HPC side.", lambda c: r.hpc_reaches_internet(c.hpc.runner(), c.catalog), hpc),
        CheckSpec("internet_reachability", "cloud_reaches_internet_targets", W, "Package installs and image pulls on the cloud side.", lambda c: r.cloud_reaches_internet(c.catalog)),
        CheckSpec("service_dns", "service_dns_names_resolve", E, "Users and pods reach services by these names.", lambda c: r.dns_names_resolve(c.catalog)),
        CheckSpec("workstation", "workstation_python_version", E, "The clients need a recent Python.", lambda c: r.workstation_python(c.catalog)),
        CheckSpec("workstation", "workstation_cli_tools_present", W, "Operators use these tools for the manual steps.", lambda c: r.workstation_cli_tools(c.catalog)),
        CheckSpec("workstation", "workstation_python_packages_present", W, "The API tests and MLflow client need these.", lambda c: r.workstation_python_packages(c.catalog)),
    ]


def build(catalog: Catalog) -> dg.Definitions:
    n = catalog.network
    assets = [
        external("hpc_login", group=GROUP, kinds=["ssh"], description=f"SSH to {catalog.hpc.access.login.host}:{catalog.hpc.access.login.port}."),
        external("hpc_to_cloud", group=GROUP, kinds=["network"], description=f"Route {n.hpc_subnet} → {n.cloud_subnet}.", deps=["hpc_login"]),
        external("cloud_to_hpc", group=GROUP, kinds=["network"], description=f"Route {n.cloud_subnet} → {n.hpc_subnet}."),
        external("internet_reachability", group=GROUP, kinds=["network"], description="Hub, registry and package index reachable from both sides."),
        external("service_dns", group=GROUP, kinds=["dns"], description="DNS names of the cloud services."),
        external("workstation", group=GROUP, kinds=["python"], description="The operator's workstation / the orchestrator's own host."),
    ]
    return dg.Definitions(assets=assets, asset_checks=asset_checks(specs(catalog), name="network_checks"))


defs = build(active().catalog)
