"""Network: SSH to the login node, HPC↔cloud both ways, internet/hub reachability,
bandwidth for model transfers, service DNS names, and the workstation's tools."""

from __future__ import annotations

import threading
import weakref
from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog
from mlops_assets.checking import ProbeContext, ProbeSpec, asset_checks, externals, on_hpc
from mlops_assets.core.checks import CheckSpec, Outcome, Severity, bound
from mlops_assets.core.probes import network as r
from mlops_assets.platform import active

GROUP = "network"


def _reach(ctx: ProbeContext, service: str) -> Outcome:
    return r.hpc_reaches_service(ctx.hpc.runner(), ctx.catalog, service)


class _Once:
    """One measurement shared by the checks of a run that read it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = False
        self.value: tuple[float, int, float] | None = None
        self.error: BaseException | None = None


_ONCE_LOCK = threading.Lock()
_MEASURED: weakref.WeakKeyDictionary[Any, _Once] = weakref.WeakKeyDictionary()


def _bandwidth(ctx: ProbeContext, threshold_mbps: float) -> Outcome:
    """ERROR and WARN thresholds judge the same probe upload: the second check of a run
    waits for the first one's measurement instead of competing for the link."""
    with _ONCE_LOCK:
        once = _MEASURED.setdefault(ctx, _Once())
    with once.lock:
        if not once.done:
            try:
                once.value = r.measure_hpc_to_object_store(
                    ctx.hpc.runner(), ctx.s3.probe_client(), ctx.catalog
                )
            except BaseException as exc:
                once.error = exc
            once.done = True
    if once.error is not None:
        raise once.error
    assert once.value is not None
    net = ctx.catalog.network
    return r.bandwidth_outcome(
        once.value,
        threshold_mbps,
        f"model transfers need >= {net.min_bandwidth_mbps:g} Mbps (recommended "
        f"{net.recommended_bandwidth_mbps:g}): check the HPC→object store path (MTU, proxy, link)",
    )


def specs(catalog: Catalog) -> list[ProbeSpec]:
    E, W = Severity.ERROR, Severity.WARN
    hpc = ("hpc",)
    buckets = tuple(b.asset_key for b in catalog.cloud.buckets)  # the probe object goes into one
    # (service, severity, why): the cloud services the HPC side sends to
    services = (
        ("mlflow", E, "Training jobs log runs and models to MLflow from the HPC side."),
        ("minio", E, "Model sync uploads from BeeGFS to the object store."),
        ("pushgateway", W, "Jobs push their metrics to the Pushgateway."),
    )
    # (name suffix, severity, why, Mbps): one probe upload judged against both (_bandwidth)
    net = catalog.network
    minimum, recommended = net.min_bandwidth_mbps, net.recommended_bandwidth_mbps
    bandwidths = (
        ("", E, "Model transfers need the seed's minimum bandwidth.", minimum),
        ("_recommended", W, "Below the recommended bandwidth model syncs crawl.", recommended),
    )
    return [
        CheckSpec(
            "hpc_login",
            "hpc_login_accepts_key",
            E,
            "Every HPC check and job goes through this SSH login.",
            on_hpc(r.login_accepts_key),
            hpc,
            blocking=True,
        ),
        *(
            CheckSpec(
                "hpc_to_cloud", f"hpc_reaches_{service}", sev, why, bound(_reach, service), hpc
            )
            for service, sev, why in services
        ),
        *(
            CheckSpec(
                "hpc_to_cloud",
                f"hpc_to_cloud_bandwidth{suffix}",
                sev,
                why,
                bound(_bandwidth, mbps),
                ("hpc", "s3"),
                light=False,
                needs=buckets,
            )
            for suffix, sev, why, mbps in bandwidths
        ),
        CheckSpec(
            "internet_reachability",
            "hpc_reaches_hub",
            E,
            "Datasets and models are downloaded on the HPC side.",
            on_hpc(r.hpc_reaches_hub),
            hpc,
        ),
        CheckSpec(
            "internet_reachability",
            "cloud_reaches_hub",
            E,
            "KServe's storage initializer pulls models from the hub.",
            lambda c: r.cloud_reaches_hub(c.catalog),
        ),
        CheckSpec(
            "cloud_to_hpc",
            "cloud_reaches_hpc_login",
            E,
            "The orchestrator on the cloud side drives SLURM over SSH.",
            lambda c: r.cloud_reaches_hpc(c.catalog),
        ),
        CheckSpec(
            "internet_reachability",
            "hpc_reaches_internet_targets",
            E,
            "Hub downloads and image pulls run on the HPC side.",
            on_hpc(r.hpc_reaches_internet),
            hpc,
        ),
        CheckSpec(
            "internet_reachability",
            "cloud_reaches_internet_targets",
            W,
            "Package installs and image pulls on the cloud side.",
            lambda c: r.cloud_reaches_internet(c.catalog),
        ),
        CheckSpec(
            "service_dns",
            "service_dns_names_resolve",
            E,
            "Users and pods reach services by these names.",
            lambda c: r.dns_names_resolve(c.catalog),
        ),
        CheckSpec(
            "workstation",
            "workstation_python_version",
            E,
            "The clients need a recent Python.",
            lambda c: r.workstation_python(c.catalog),
        ),
        CheckSpec(
            "workstation",
            "workstation_cli_tools_present",
            W,
            "Operators use these tools for the manual steps.",
            lambda c: r.workstation_cli_tools(c.catalog),
        ),
        CheckSpec(
            "workstation",
            "workstation_python_packages_present",
            W,
            "The API tests and MLflow client need these.",
            lambda c: r.workstation_python_packages(c.catalog),
        ),
    ]


def build(catalog: Catalog) -> dg.Definitions:
    n, login = catalog.network, catalog.hpc.access.login
    # (key, kinds, description[, deps])
    assets = externals(
        GROUP,
        ("hpc_login", ["ssh"], f"SSH to {login.host}:{login.port}."),
        ("hpc_to_cloud", ["network"], f"Route {n.hpc_subnet} → {n.cloud_subnet}.", ["hpc_login"]),
        ("cloud_to_hpc", ["network"], f"Route {n.cloud_subnet} → {n.hpc_subnet}."),
        (
            "internet_reachability",
            ["network"],
            "Hub, registry and package index reachable from both sides.",
        ),
        ("service_dns", ["dns"], "DNS names of the cloud services."),
        ("workstation", ["python"], "The operator's workstation / the orchestrator's own host."),
    )
    return dg.Definitions(
        assets=assets, asset_checks=asset_checks(specs(catalog), name="network_checks")
    )


defs = build(active().catalog)
