"""Probes of the paths between the workstation/orchestrator, the HPC side and the cloud side.
Routes are tested both ways, from where the traffic really starts. No Dagster imports."""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.metadata
import shutil
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.checks import Outcome, ProbeFailed, at_least, missing_items, none_failed
from mlops_assets.core.parse import versions
from mlops_assets.core.probes.cloud.object_store import s3_error_code
from mlops_assets.core.transport import http
from mlops_assets.core.transport.hostexec import Runner

CURL_FORMAT = "%{http_code} %{time_total} %{speed_download}"
UPLOAD_FORMAT = "%{http_code} %{time_total} %{speed_upload} %{size_upload}"
HPC_TO_CLOUD = "HPC→cloud"
CLOUD_TO_HPC = "cloud→HPC"


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


def _curl(
    runner: Runner, url: str, timeout_s: float, head: bool = False
) -> tuple[int, float, float]:
    argv = ["curl", "-sS", "-o", "/dev/null", "--max-time", f"{timeout_s:g}", "-w", CURL_FORMAT]
    if head:
        argv.append("-I")
    res = runner.run([*argv, url], timeout_s=timeout_s + 5)
    if res.returncode == 127:
        raise ProbeFailed(
            f"curl is not installed on {runner.where}", "install curl on the login node"
        )
    try:
        code, total, speed = res.stdout.split()
        return int(code), float(total), float(speed)
    except ValueError:
        return 0, timeout_s, 0.0


def _service_url(catalog: Catalog, service: str) -> str:
    s = catalog.cloud.services
    if service == "pushgateway":
        return s.prometheus.pushgateway_url or s.prometheus.url
    return str(getattr(s, service).url)


def hpc_reaches_service(runner: Runner, catalog: Catalog, service: str) -> Outcome:
    """One cloud service from the login node, so a dead service and a cut route are told
    apart by which checks fail together (the orchestrator-side checks of the service)."""
    url = _service_url(catalog, service)
    code, total, _ = _curl(runner, url, catalog.network.probe_timeout_s)
    ok = 0 < code < 500
    return Outcome(
        ok,
        code if code else "no answer",
        "an HTTP answer < 500",
        f"HTTP status of {service} from the HPC side",
        f"{HPC_TO_CLOUD}: {service} does not answer from {runner.where}; if the orchestrator "
        "reaches it, check routing/firewall from the HPC subnet to the cloud ingress",
        detail=f"{HPC_TO_CLOUD} {service} ({url}): "
        + (
            f"HTTP {code} in {total:.3f}s"
            if code
            else f"no answer within {catalog.network.probe_timeout_s:g}s"
        ),
    )


def hpc_reaches_hub(runner: Runner, catalog: Catalog) -> Outcome:
    """HEAD on the hub from the login node: staging downloads run there."""
    url = catalog.network.hub_url
    code, total, _ = _curl(runner, url, catalog.network.probe_timeout_s, head=True)
    return _hub_outcome(
        code, total, url, f"{HPC_TO_CLOUD.split('→')[0]} side ({runner.where})", catalog
    )


def cloud_reaches_hub(catalog: Catalog) -> Outcome:
    """HEAD on the hub from the orchestrator (cloud side): KServe storage initializers
    pull from it."""
    url = catalog.network.hub_url
    try:
        ans = http.request(url, method="HEAD", timeout_s=catalog.network.probe_timeout_s)
        code, total = ans.status, ans.elapsed_s
    except http.HttpUnreachable:
        code, total = 0, catalog.network.probe_timeout_s
    return _hub_outcome(code, total, url, "cloud side (orchestrator)", catalog)


def _hub_outcome(code: int, total: float, url: str, side: str, catalog: Catalog) -> Outcome:
    ok = 0 < code < 500
    return Outcome(
        ok,
        code if code else "no answer",
        "an HTTP answer < 500",
        "HTTP status of HEAD on the hub",
        f"the hub does not answer from the {side}: check proxy/NAT/egress, or set "
        "network.hub_url to a mirror",
        detail=f"HEAD {url} from the {side}: "
        + (
            f"HTTP {code} in {total:.3f}s"
            if code
            else f"no answer within {catalog.network.probe_timeout_s:g}s"
        ),
    )


def ssh_banner(host: str, port: int, timeout_s: float) -> tuple[float, str]:
    """Connect and read the server's identification line. A bare TCP connect proves
    nothing where a transparent proxy or firewall accepts every connection (this sandbox's
    egress does); only sshd sends `SSH-2.0-...`."""
    start = time.monotonic()
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.settimeout(max(0.1, timeout_s - (time.monotonic() - start)))
        banner = sock.recv(256).split(b"\r\n", 1)[0].decode("ascii", errors="replace")
    return time.monotonic() - start, banner


def cloud_reaches_hpc(catalog: Catalog) -> Outcome:
    login = catalog.hpc.access.login
    target = f"{login.host}:{login.port}"
    hint = (
        f"{CLOUD_TO_HPC} route: check routing/firewall from the cloud subnet to the HPC login node"
    )
    timeout = catalog.network.probe_timeout_s
    try:
        latency, banner = ssh_banner(login.host, login.port, timeout)
    except TimeoutError:
        return Outcome(
            False,
            "no SSH banner",
            target,
            "SSH banner",
            hint,
            detail=(
                f"{CLOUD_TO_HPC}: {target} sent no SSH banner within {timeout:g}s (connection "
                "dropped, or accepted by a proxy/firewall in its place)"
            ),
        )
    except OSError as exc:
        return Outcome(
            False,
            "unreachable",
            target,
            "SSH banner",
            hint,
            detail=f"{CLOUD_TO_HPC}: TCP connect to {target} failed: {exc}",
        )
    if not banner.startswith("SSH-"):
        return Outcome(
            False,
            "not SSH",
            target,
            "SSH banner",
            hint,
            detail=f"{CLOUD_TO_HPC}: {target} answered {banner[:60]!r}, not an SSH server",
        )
    return Outcome(True, round(latency, 4), target, "s to the SSH banner", "", detail=banner[:80])


def _internet_targets(catalog: Catalog) -> dict[str, str]:
    """A profile drops a target with null (the schema removes it); the type still allows None."""
    return {name: url for name, url in catalog.network.internet_targets.items() if url}


def _internet_answers(
    catalog: Catalog, answers: Callable[[str], bool], side: str, hint: str
) -> Outcome:
    """Each internet target asked once from one side (`answers(url)`); names the silent ones."""
    targets = _internet_targets(catalog)
    failed = [f"{name} ({url})" for name, url in targets.items() if not answers(url)]
    return none_failed(
        len(targets), failed, f"internet targets answering from {side}", hint, label="no answer"
    )


def hpc_reaches_internet(runner: Runner, catalog: Catalog) -> Outcome:
    timeout = catalog.network.probe_timeout_s
    return _internet_answers(
        catalog,
        lambda url: _curl(runner, url, timeout, head=True)[0] != 0,
        "the HPC side",
        "no internet from the node: hub downloads and image pulls fail (check proxy/NAT, or "
        "stage through a mirror)",
    )


def _head_answers(url: str, timeout_s: float) -> bool:
    try:
        http.request(url, method="HEAD", timeout_s=timeout_s)
    except http.HttpUnreachable:
        return False
    return True


def cloud_reaches_internet(catalog: Catalog) -> Outcome:
    timeout = catalog.network.probe_timeout_s
    return _internet_answers(
        catalog,
        lambda url: _head_answers(url, timeout),
        "the orchestrator",
        "no internet from the cloud side: check egress/NAT for pods",
    )


_UPLOAD_SCRIPT = (
    "f=$(mktemp) || exit 90; trap 'rm -f \"$f\"' EXIT; "
    'head -c "$1" /dev/urandom > "$f" || exit 91; '
    'curl -sS -o /dev/null --max-time "$2" -w "$3" -T "$f" "$4"'
)


def measure_hpc_to_object_store(
    runner: Runner, s3: Any, catalog: Catalog
) -> tuple[float, int, float]:
    """Upload a probe object of network.bandwidth_probe_mb from the login node to the object
    store through a presigned PUT (the direction model sync uses), check its size arrived,
    delete it. Returns (Mbps, bytes, seconds). The URL never enters an outcome."""
    net = catalog.network
    nbytes = int(net.bandwidth_probe_mb * 1024 * 1024)
    buckets = [b.name for b in catalog.cloud.buckets]
    bucket = None
    for name in buckets:
        try:
            s3.head_bucket(Bucket=name)
            bucket = name
            break
        except Exception as exc:
            err = s3_error_code(exc)
            if err not in {"404", "NoSuchBucket", "NotFound"}:
                raise ProbeFailed(
                    f"S3 unavailable from the orchestrator: {err}", "fix the minio checks first"
                ) from None
    if bucket is None:
        raise ProbeFailed(
            "no catalog bucket exists yet to hold the probe object",
            "materialize the bucket assets first",
        )
    key = ".mlops-probe/bandwidth.bin"
    # enough time for the probe at the minimum bandwidth, plus slack
    limit = max(net.probe_timeout_s, nbytes * 8 / (net.min_bandwidth_mbps * 1e6) * 1.5 + 5)
    url = s3.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(limit) + 120
    )
    try:
        res = runner.run(
            ["sh", "-c", _UPLOAD_SCRIPT, "sh", str(nbytes), f"{limit:g}", UPLOAD_FORMAT, url],
            timeout_s=limit + 15,
        )
        if res.returncode in (90, 91):
            raise ProbeFailed(
                f"cannot write the {nbytes}-byte probe file on {runner.where}",
                "free /tmp on the login node",
            )
        try:
            code_s, total_s, speed_s, sent_s = res.stdout.split()
            code, total, speed, sent = (
                int(code_s),
                float(total_s),
                float(speed_s),
                int(float(sent_s)),
            )
        except ValueError:
            code, total, speed, sent = 0, limit, 0.0, 0
        if code == 0:
            raise ProbeFailed(
                f"{HPC_TO_CLOUD}: the object store ({catalog.cloud.services.minio.url}) does not "
                f"answer from {runner.where}",
                "check routing/firewall from the HPC subnet to the object store",
            )
        if code != 200:
            raise ProbeFailed(
                f"probe upload from {runner.where} answered HTTP {code}",
                "HPC→object store credentials or bucket policy",
            )
        try:
            stored = int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except Exception as exc:
            raise ProbeFailed(
                f"probe object not found after upload: {s3_error_code(exc)}",
                "the object store lost the upload",
            ) from None
        if stored != nbytes or sent != nbytes:
            raise ProbeFailed(
                f"probe object has {stored} bytes stored, {sent} sent, {nbytes} expected",
                "the upload was cut short",
            )
    finally:
        with contextlib.suppress(Exception):  # the probe object is overwritten next time anyway
            s3.delete_object(Bucket=bucket, Key=key)
    return round(speed * 8 / 1e6, 1), nbytes, total


def bandwidth_outcome(
    measured: tuple[float, int, float], threshold_mbps: float, hint: str
) -> Outcome:
    mbps, nbytes, seconds = measured
    return at_least(
        mbps,
        threshold_mbps,
        "Mbps",
        hint,
        detail=(
            f"{HPC_TO_CLOUD}: {nbytes} bytes uploaded from the "
            f"login node to the object store in {seconds:.3f}s"
        ),
        extra={"probe_bytes": nbytes, "seconds": round(seconds, 3)},
    )


def _resolve(name: str) -> str:
    return str(socket.getaddrinfo(name, None)[0][4][0])


def dns_names_resolve(catalog: Catalog) -> Outcome:
    s = catalog.cloud.services
    names = [
        n
        for n in (s.mlflow.dns_name, s.minio.dns_name, s.grafana.dns_name, s.prometheus.dns_name)
        if n
    ]
    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = {n: pool.submit(_resolve, n) for n in names}
        for n, fut in futures.items():
            try:
                fut.result(timeout=catalog.network.probe_timeout_s)
            except Exception:
                failed.append(n)
    return none_failed(
        len(names),
        failed,
        "service DNS names resolving",
        "add the names to the cluster DNS / ingress (mlflow, grafana, minio .cloud-cluster.local)",
        label="unresolved",
    )


def workstation_python(catalog: Catalog) -> Outcome:
    found = ".".join(map(str, sys.version_info[:3]))
    minimum = catalog.workstation.python_min
    return Outcome(
        versions.at_least(found, minimum),
        found,
        minimum,
        "Python version",
        f"use Python >= {minimum}",
    )


def workstation_cli_tools(catalog: Catalog) -> Outcome:
    tools = catalog.workstation.cli_tools
    return missing_items(
        [t for t in tools if shutil.which(t)],
        tools,
        "CLI tools",
        "install them on the workstation (kubectl, mc, ssh)",
    )


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
    return missing_items(
        present, catalog.workstation.python_packages, "Python packages", "pip install them"
    )


def _has(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False
