"""Probes of the paths between the workstation/orchestrator, the HPC side and the cloud side.
Routes are tested both ways, from where the traffic really starts. No Dagster imports."""

from __future__ import annotations

import concurrent.futures
import importlib.metadata
import shutil
import socket
import sys
import time
from typing import Any

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core import versions
from mlops_assets.core.checks import Outcome, ProbeFailed, at_least, missing_items
from mlops_assets.core.hostexec import Runner
from mlops_assets.core.http import HttpUnreachable, request

CURL_FORMAT = "%{http_code} %{time_total} %{speed_download}"
BANDWIDTH_PROBE_BYTES = 8 * 1024 * 1024


def login_accepts_key(runner: Runner, catalog: Catalog) -> Outcome:
    start = time.monotonic()
    res = runner.run(["true"])
    latency = time.monotonic() - start
    return Outcome(
        res.ok,
        round(latency, 3),
        catalog.hpc.access.login.connect_timeout_s,
        "s to connect and run `true`",
        "SSH to the HPC login node failed: check the key, the user and known_hosts",
    )


def _curl(runner: Runner, url: str, timeout_s: float, head: bool = False) -> tuple[int, float, float]:
    argv = ["curl", "-sS", "-o", "/dev/null", "--max-time", f"{timeout_s:g}", "-w", CURL_FORMAT]
    if head:
        argv.append("-I")
    res = runner.run([*argv, url], timeout_s=timeout_s + 5)
    if res.returncode == 127:
        raise ProbeFailed(f"curl is not installed on {runner.where}", "install curl on the login node")
    try:
        code, total, speed = res.stdout.split()
        return int(code), float(total), float(speed)
    except ValueError:
        return 0, timeout_s, 0.0


def _cloud_urls(catalog: Catalog) -> dict[str, str]:
    s = catalog.cloud.services
    return {"mlflow": s.mlflow.url, "minio": s.minio.url, "prometheus": s.prometheus.url, "grafana": s.grafana.url}


def hpc_reaches_cloud(runner: Runner, catalog: Catalog) -> Outcome:
    timeout = catalog.network.probe_timeout_s
    failed = []
    for name, url in _cloud_urls(catalog).items():
        code, _, _ = _curl(runner, url, timeout)
        if code == 0:
            failed.append(f"{name} ({url})")
    return Outcome(
        not failed,
        len(_cloud_urls(catalog)) - len(failed),
        len(_cloud_urls(catalog)),
        "cloud services answering from the HPC side",
        "HPC→cloud route: check routing/firewall from the HPC subnet to the cloud ingress (model sync needs it)",
        detail=("no answer: " + ", ".join(failed)) if failed else "",
    )


def tcp_connect(host: str, port: int, timeout_s: float) -> float:
    start = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout_s):
        return time.monotonic() - start


def cloud_reaches_hpc(catalog: Catalog) -> Outcome:
    login = catalog.hpc.access.login
    try:
        latency = tcp_connect(login.host, login.port, catalog.network.probe_timeout_s)
    except OSError as exc:
        return Outcome(
            False, "unreachable", f"{login.host}:{login.port}", "TCP connect",
            "cloud→HPC route: check routing/firewall from the cloud subnet to the HPC login node",
            detail=str(exc),
        )
    return Outcome(True, round(latency, 4), f"{login.host}:{login.port}", "s TCP connect", "")


def _internet_targets(catalog: Catalog) -> dict[str, str]:
    """A profile drops a target with null (the schema removes it); the type still allows None."""
    return {name: url for name, url in catalog.network.internet_targets.items() if url}


def hpc_reaches_internet(runner: Runner, catalog: Catalog) -> Outcome:
    failed = []
    for name, url in _internet_targets(catalog).items():
        code, _, _ = _curl(runner, url, catalog.network.probe_timeout_s, head=True)
        if code == 0:
            failed.append(f"{name} ({url})")
    n = len(_internet_targets(catalog))
    return Outcome(
        not failed, n - len(failed), n, "internet targets answering from the HPC side",
        "no internet from the node: hub downloads and image pulls fail (check proxy/NAT, or stage through a mirror)",
        detail=("no answer: " + ", ".join(failed)) if failed else "",
    )


def cloud_reaches_internet(catalog: Catalog) -> Outcome:
    failed = []
    for name, url in _internet_targets(catalog).items():
        try:
            request(url, method="HEAD", timeout_s=catalog.network.probe_timeout_s)
        except HttpUnreachable:
            failed.append(f"{name} ({url})")
    n = len(_internet_targets(catalog))
    return Outcome(
        not failed, n - len(failed), n, "internet targets answering from the orchestrator",
        "no internet from the cloud side: check egress/NAT for pods",
        detail=("no answer: " + ", ".join(failed)) if failed else "",
    )


def hpc_to_cloud_bandwidth(runner: Runner, s3: Any, catalog: Catalog) -> Outcome:
    """Download a probe object from the object store on the HPC side, as model sync does."""
    buckets = [b.name for b in catalog.cloud.buckets]
    try:
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    except Exception as exc:
        raise ProbeFailed(f"S3 unavailable: {type(exc).__name__}", "fix the minio checks first") from None
    bucket = next((b for b in buckets if b in existing), None)
    if bucket is None:
        raise ProbeFailed("no catalog bucket exists yet to hold the probe object", "materialize the bucket assets first")
    key = ".mlops-probe/bandwidth.bin"
    s3.put_object(Bucket=bucket, Key=key, Body=b"\0" * BANDWIDTH_PROBE_BYTES)
    try:
        url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=120)
        code, total, speed = _curl(runner, url, max(catalog.network.probe_timeout_s, 30))
    finally:
        s3.delete_object(Bucket=bucket, Key=key)
    if code != 200:
        raise ProbeFailed(f"probe download answered HTTP {code}", "HPC→object store route or credentials")
    mbps = round(speed * 8 / 1e6, 1)
    net = catalog.network
    return at_least(
        mbps, net.min_bandwidth_mbps, "Mbps",
        f"model transfers need >= {net.min_bandwidth_mbps:g} Mbps (recommended {net.recommended_bandwidth_mbps:g})",
        detail=f"{BANDWIDTH_PROBE_BYTES} bytes in {total:.3f}s",
    )


def _resolve(name: str) -> str:
    return str(socket.getaddrinfo(name, None)[0][4][0])


def dns_names_resolve(catalog: Catalog) -> Outcome:
    s = catalog.cloud.services
    names = [n for n in (s.mlflow.dns_name, s.minio.dns_name, s.grafana.dns_name, s.prometheus.dns_name) if n]
    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {n: pool.submit(_resolve, n) for n in names}
        for n, fut in futures.items():
            try:
                fut.result(timeout=catalog.network.probe_timeout_s)
            except Exception:
                failed.append(n)
    return Outcome(
        not failed, len(names) - len(failed), len(names), "service DNS names resolving",
        "add the names to the cluster DNS / ingress (mlflow, grafana, minio .cloud-cluster.local)",
        detail=("unresolved: " + ", ".join(failed)) if failed else "",
    )


def workstation_python(catalog: Catalog) -> Outcome:
    found = ".".join(map(str, sys.version_info[:3]))
    minimum = catalog.workstation.python_min
    return Outcome(versions.at_least(found, minimum), found, minimum, "Python version", f"use Python >= {minimum}")


def workstation_cli_tools(catalog: Catalog) -> Outcome:
    tools = catalog.workstation.cli_tools
    return missing_items([t for t in tools if shutil.which(t)], tools, "CLI tools", "install them on the workstation (kubectl, mc, ssh)")


def workstation_python_packages(catalog: Catalog) -> Outcome:
    present = []
    for pkg in catalog.workstation.python_packages:
        try:
            importlib.metadata.version(pkg)
            present.append(pkg)
        except importlib.metadata.PackageNotFoundError:
            # mlflow-skinny provides the mlflow client
            if pkg == "mlflow" and _has("mlflow-skinny"):
                present.append(pkg)
    return missing_items(present, catalog.workstation.python_packages, "Python packages", "pip install them")


def _has(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False
