"""Unit tests of core.probes.cloud (Kubernetes, the GPU Operator, Prometheus, Grafana, S3 and
MinIO, MLflow): fake clients for the rules, and loopback fixture servers where the HTTP
behaviour itself is the point (MinIO health answers, a service that accepts and never
answers). The network probes' tests are test_core_network_rules.py."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.checks import CheckSpec, ProbeFailed, Severity, run_check
from mlops_assets.core.probes import cloud as cr
from mlops_assets.core.probes.cloud import mlflow_server
from mlops_assets.core.transport.http import HttpAnswer, request


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(profile="sandbox").catalog


def with_services(catalog: Catalog, service: str, **kw: Any) -> Catalog:
    services = catalog.cloud.services
    changed = services.model_copy(
        update={service: getattr(services, service).model_copy(update=kw)}
    )
    return catalog.model_copy(
        update={"cloud": catalog.cloud.model_copy(update={"services": changed})}
    )


class FakeHttp:
    """Answers fixed bodies per path, like HttpServiceResource.get."""

    url = "http://fake"

    def __init__(self, answers: dict[str, tuple[int, bytes]]) -> None:
        self.answers = answers

    def get(self, path: str, *, headers: dict[str, str] | None = None) -> HttpAnswer:
        status, body = self.answers[path]
        return HttpAnswer(self.url + path, status, body, {}, 0.001)


class UrlHttp:
    """The real stdlib client against a URL, as the resource uses it."""

    def __init__(self, url: str, timeout_s: float = 2) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def get(self, path: str, *, headers: dict[str, str] | None = None) -> HttpAnswer:
        return request(self.url + path, timeout_s=self.timeout_s, headers=headers)


# ------------------------------------------------------------------- Kubernetes


def node(name: str, labels: dict[str, str], gpus: str = "2", ready: str = "True") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {
            "allocatable": {"nvidia.com/gpu": gpus},
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


class FakeKube:
    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.nodes = nodes

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        assert path == "/api/v1/nodes"
        return {"items": self.nodes}


GPU = {"nvidia.com/gpu.present": "true"}


def test_gpu_nodes_all_good_and_control_plane_ignored(catalog: Catalog) -> None:
    kube = FakeKube([node("cp", {}, gpus="0"), node("g1", GPU), node("g2", GPU)])
    out = cr.k8s_gpu_nodes(kube, catalog)
    assert out.passed and out.measured == 2 and out.nodes == ()


def test_gpu_node_that_lost_its_label_is_named(catalog: Catalog) -> None:
    kube = FakeKube([node("cp", {}, gpus="0"), node("g1", {}), node("g2", {})])
    out = cr.k8s_gpu_nodes(kube, catalog)
    assert not out.passed and out.measured == 0
    assert out.nodes == ("g1", "g2")
    assert "g1: no label nvidia.com/gpu.present=true" in out.detail


def test_gpu_node_not_ready_or_without_gpus_is_named(catalog: Catalog) -> None:
    kube = FakeKube([node("g1", GPU, ready="False"), node("g2", GPU, gpus="0"), node("g3", GPU)])
    out = cr.k8s_gpu_nodes(kube, catalog)
    assert out.passed and out.measured == 1
    assert "g1: not Ready" in out.detail and "g2: allocatable nvidia.com/gpu 0" in out.detail


class PathKube:
    """Answers one list path; any other path is a test bug."""

    def __init__(self, path: str, items: list[dict[str, Any]] | None) -> None:
        self.path, self.items = path, items

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        assert path == self.path, path
        return None if self.items is None else {"items": self.items}


def policy(name: str, status: dict[str, Any] | None) -> dict[str, Any]:
    return {"metadata": {"name": name}, **({"status": status} if status is not None else {})}


NOT_READY = {
    "state": "notReady",
    "namespace": "gpu-operator",
    "conditions": [
        {"type": "Ready", "status": "False", "reason": "Error", "message": ""},
        {
            "type": "Error",
            "status": "True",
            "reason": "OperandNotReady",
            "message": "ClusterPolicy is not ready, states not ready: [state-driver]",
        },
    ],
}


def clusterpolicy_check(catalog: Catalog, items: list[dict[str, Any]] | None) -> Any:
    from mlops_assets.defs.cloud.definitions import specs

    spec = next(s for s in specs(catalog) if s.name == "gpu_operator_clusterpolicy_ready")
    ctx = type("Ctx", (), {"catalog": catalog, "kubernetes": PathKube(cr.CLUSTERPOLICIES, items)})()
    return run_check(spec, ctx)


def test_clusterpolicy_ready_passes(catalog: Catalog) -> None:
    ev = clusterpolicy_check(
        catalog, [policy("cluster-policy", {"state": "ready", "namespace": "gpu-operator"})]
    )
    assert ev.passed and ev.measured == 1 and ev.severity == Severity.ERROR


def test_clusterpolicy_not_ready_names_conditions_and_operand(catalog: Catalog) -> None:
    ev = clusterpolicy_check(catalog, [policy("gpu-cluster-policy", NOT_READY)])
    assert not ev.passed and ev.severity == Severity.ERROR
    assert "gpu-cluster-policy: notReady" in ev.detail
    assert (
        "Error=True OperandNotReady ClusterPolicy is not ready, states not ready: [state-driver]"
        in ev.detail
    )
    assert "state-driver -> nvidia-driver-daemonset" in ev.hint


def test_clusterpolicy_not_ready_without_conditions_still_fails(catalog: Catalog) -> None:
    """GPU Operator releases before 23.x wrote state only, no conditions."""
    ev = clusterpolicy_check(catalog, [policy("cluster-policy", {"state": "notReady"})])
    assert (
        not ev.passed and ev.severity == Severity.ERROR and ev.detail == "cluster-policy: notReady"
    )


def test_no_clusterpolicy_fails_saying_so(catalog: Catalog) -> None:
    for items in ([], None):  # an empty list, or the CRD absent (404)
        ev = clusterpolicy_check(catalog, items)
        assert (
            not ev.passed
            and ev.severity == Severity.ERROR
            and ev.detail == "no ClusterPolicy object"
        )


def test_clusterpolicy_not_reconciled_is_an_unjudged_warn(catalog: Catalog) -> None:
    ev = clusterpolicy_check(catalog, [policy("cluster-policy", None)])
    assert not ev.passed and ev.severity == Severity.WARN
    assert "no status.state yet" in ev.detail


def test_duplicate_ignored_clusterpolicy_warns_and_broken_one_wins(catalog: Catalog) -> None:
    ok = policy("cluster-policy", {"state": "ready"})
    dup = policy("second", {"state": "ignored"})
    ev = clusterpolicy_check(catalog, [ok, dup])
    assert not ev.passed and ev.severity == Severity.WARN and "second: ignored" in ev.detail
    ev = clusterpolicy_check(catalog, [policy("a", None), policy("b", NOT_READY)])
    assert not ev.passed and ev.severity == Severity.ERROR


# ------------------------------------------------------------------- Prometheus


def targets(*health: tuple[str, str]) -> bytes:
    import json

    active = [
        {
            "labels": {"job": job, "instance": f"{job}:1"},
            "scrapePool": job,
            "health": h,
            "lastError": "" if h == "up" else "connection refused",
        }
        for job, h in health
    ]
    return json.dumps({"status": "success", "data": {"activeTargets": active}}).encode()


def test_prometheus_share_up_names_down_targets(catalog: Catalog) -> None:
    http = FakeHttp(
        {
            "/api/v1/targets?state=active": (
                200,
                targets(("prometheus", "up"), ("pushgateway", "down")),
            )
        }
    )
    out = cr.prometheus_targets_up(http, catalog)
    assert not out.passed and out.measured == 0.5 and out.threshold == 1.0
    assert out.nodes == ("pushgateway@pushgateway:1",)
    assert "down pushgateway@pushgateway:1: connection refused" in out.detail


def test_prometheus_share_meets_lower_threshold(catalog: Catalog) -> None:
    body = targets(*[(f"j{i}", "up") for i in range(19)], ("dcgm", "down"))
    out = cr.prometheus_targets_up(
        FakeHttp({"/api/v1/targets?state=active": (200, body)}),
        with_services(catalog, "prometheus", min_targets_up_fraction=0.95),
    )
    assert out.passed and out.measured == 0.95 and "dcgm" in out.detail


def test_prometheus_no_targets_fails(catalog: Catalog) -> None:
    out = cr.prometheus_targets_up(
        FakeHttp({"/api/v1/targets?state=active": (200, targets())}), catalog
    )
    assert not out.passed and out.detail == "no active targets"


def test_prometheus_expected_jobs_missing_named(catalog: Catalog) -> None:
    http = FakeHttp({"/api/v1/targets?state=active": (200, targets(("prometheus", "up")))})
    out = cr.prometheus_expected_jobs(http, catalog)
    assert not out.passed and out.measured == "pushgateway"


# ----------------------------------------------------------------------- Grafana


def test_grafana_version_is_metadata(catalog: Catalog) -> None:
    body = b'{\n  "commit": "9e1a5f3ce1",\n  "database": "ok",\n  "version": "11.3.1"\n}'
    out = cr.grafana_health(FakeHttp({"/api/health": (200, body)}), catalog)
    assert out.passed and out.extra["grafana_version"] == "11.3.1" and "11.3.1" in out.detail
    failing = cr.grafana_health(
        FakeHttp({"/api/health": (503, body.replace(b'"ok"', b'"failing"'))}), catalog
    )
    assert not failing.passed and failing.measured == "failing"


# ------------------------------------------------------------------------ S3


class ClientError(Exception):
    """Shaped like botocore's: the code is in response['Error']['Code']."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.response = {"Error": {"Code": code, "Message": message}}


class FakeS3:
    def __init__(self, buckets: set[str], error: str | None = None) -> None:
        self.buckets = buckets
        self.error = error

    def list_buckets(self) -> dict[str, Any]:
        if self.error:
            raise ClientError(
                self.error, f"The request signature we calculated does not match; secret {SECRET}"
            )
        return {"Buckets": [{"Name": b} for b in sorted(self.buckets)]}

    def head_bucket(self, Bucket: str) -> None:
        if self.error:
            raise ClientError("403")
        if Bucket not in self.buckets:
            raise ClientError("404")


SECRET = "s3cr3t-value-never-shown"


def test_missing_buckets_named(catalog: Catalog) -> None:
    out = cr.minio_buckets_exist(FakeS3({"models"}), catalog, required=False)
    assert not out.passed and out.measured == "datasets" and "datasets: missing" in out.detail
    assert cr.minio_buckets_exist(FakeS3({"models"}), catalog, required=True).passed


def test_forbidden_bucket_named(catalog: Catalog) -> None:
    out = cr.minio_buckets_exist(
        FakeS3({"models"}, error="SignatureDoesNotMatch"), catalog, required=True
    )
    assert not out.passed and "models: forbidden (403)" in out.detail


def test_wrong_credentials_clear_error_without_secret(catalog: Catalog) -> None:
    with pytest.raises(ProbeFailed) as exc:
        cr.minio_buckets_listable(FakeS3(set(), error="SignatureDoesNotMatch"), catalog)
    text = f"{exc.value} {exc.value.hint}"
    assert "refused the credentials: SignatureDoesNotMatch" in text
    assert "$MLOPS_S3_SECRET_ACCESS_KEY" in text and SECRET not in text


# ------------------------------------------------- MinIO cluster health (replayed)

# No MinIO server runs on the sandbox (SeaweedFS stands in for S3 and has no
# /minio/health/* endpoints), so the probe is tested against a loopback STAND-IN that
# replays MinIO's answers. The 503 answer is the transcript in MinIO's own
# docs/metrics/healthcheck/README.md (minio/minio, 2020 revision: "curl
# http://minio1:9001/minio/health/cluster"); the 200 answer carries the same headers with
# status 200, as MinIO's healthcheck handler writes them when the write quorum holds.
MINIO_503_HEADERS = {
    "Accept-Ranges": "bytes",
    "Content-Length": "0",
    "Content-Security-Policy": "block-all-mixed-content",
    "Server": "MinIO/GOGET.GOGET",
    "Vary": "Origin",
    "X-Amz-Bucket-Region": "us-east-1",
    "X-Minio-Write-Quorum": "3",
    "X-Amz-Request-Id": "16239D6AB80EBECF",
    "X-Xss-Protection": "1; mode=block",
}
MINIO_ANSWERS = {"healthy": (200, MINIO_503_HEADERS), "quorum_lost": (503, MINIO_503_HEADERS)}


def replay_server(
    answers: dict[str, tuple[int, dict[str, str]]], state: dict[str, str]
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers = (
                answers[state["mode"]] if self.path == "/minio/health/cluster" else (404, {})
            )
            self.send_response_only(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if "Content-Length" not in headers:
                self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def minio_standin() -> Iterator[tuple[str, dict[str, str]]]:
    state = {"mode": "healthy"}
    server = replay_server(MINIO_ANSWERS, state)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def test_minio_cluster_health_replayed_200_and_503(
    catalog: Catalog, minio_standin: tuple[str, dict[str, str]]
) -> None:
    url, state = minio_standin
    minio_catalog = with_services(catalog, "minio", minio_health_endpoints=True)
    ok = cr.minio_cluster_health(UrlHttp(url), minio_catalog)
    assert ok.passed and ok.measured == 200 and ok.extra == {"write_quorum": "3"}
    state["mode"] = "quorum_lost"
    lost = cr.minio_cluster_health(UrlHttp(url), minio_catalog)
    assert not lost.passed and lost.measured == 503 and "write quorum" in lost.hint
    assert "server MinIO/GOGET.GOGET" in lost.detail


def test_minio_cluster_health_skipped_for_non_minio(catalog: Catalog) -> None:
    out = cr.minio_cluster_health(FakeHttp({}), catalog)
    assert out.passed and out.measured == "not MinIO"


# --------------------------------------------------------------------- MLflow


def test_artifact_proxy_paths() -> None:
    assert mlflow_server._proxy_path("mlflow-artifacts:/2/abc/artifacts") == "2/abc/artifacts"
    assert (
        mlflow_server._proxy_path("mlflow-artifacts://mlflow.example:5000/2/abc/artifacts")
        == "2/abc/artifacts"
    )


# ------------------------------------------------------------------- timeouts


class SilentUrl(str):
    """The silent server's URL, carrying the connections it accepted: one per attempt, so a
    client's hidden retries show as a count, not as a timing."""

    accepted: list[socket.socket]


@pytest.fixture
def silent_server() -> Iterator[SilentUrl]:
    """Accepts connections and never answers: the worst kind of dead service."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    url = SilentUrl(f"http://127.0.0.1:{sock.getsockname()[1]}")
    url.accepted = accepted
    try:
        yield url
    finally:
        stop.set()
        t.join()
        for c in accepted:
            c.close()
        sock.close()


@pytest.mark.parametrize(
    "rule", [cr.mlflow_health, cr.mlflow_experiments, cr.prometheus_ready, cr.grafana_health]
)
def test_silent_service_fails_within_its_timeout(
    catalog: Catalog, silent_server: SilentUrl, rule: Any
) -> None:
    """One attempt, given up at the timeout (the bound only proves it does not hang)."""
    spec = CheckSpec(
        "svc",
        rule.__name__,
        Severity.ERROR,
        "",
        lambda ctx: rule(UrlHttp(silent_server, timeout_s=1), catalog),
    )
    start = time.monotonic()
    ev = run_check(spec, None)
    assert time.monotonic() - start < 10
    assert not ev.passed and "no answer within 1s" in ev.detail
    assert len(silent_server.accepted) == 1, "the check client retried"


# ------------------------------------------- resources against a silent service


def test_silent_s3_fails_minio_checks_within_timeout(
    catalog: Catalog, silent_server: SilentUrl
) -> None:
    """One attempt per call in probe_client(): botocore's retries would triple the wait."""
    from mlops_assets.resources.clients import S3Resource

    s3 = S3Resource(
        endpoint_url=silent_server, access_key_id="AKIATEST", secret_access_key=SECRET, timeout_s=1
    )
    for calls, probe in enumerate(
        (cr.minio_buckets_listable, lambda c, cat: cr.minio_buckets_exist(c, cat, True)), 1
    ):
        start = time.monotonic()
        with pytest.raises(ProbeFailed, match="ReadTimeoutError"):
            probe(s3.probe_client(), catalog)
        assert time.monotonic() - start < 10
        assert len(silent_server.accepted) == calls, "botocore retried"


def test_silent_kubernetes_api_fails_within_timeout(
    catalog: Catalog, silent_server: SilentUrl, tmp_path: Any
) -> None:
    """No urllib3 retries in KubernetesResource: one read timeout, not four."""
    from mlops_assets.resources.clients import KubernetesResource

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\nclusters: [{name: c, cluster: "
        f"{{server: '{silent_server}'}}}}]\nusers: [{{name: u, user: {{token: t}}}}]\ncontexts: "
        "[{name: x, context: {cluster: c, user: u}}]\n"
    )
    kube = KubernetesResource(kubeconfig=str(kubeconfig), context="x", timeout_s=1)
    start = time.monotonic()
    with pytest.raises(ProbeFailed, match="Kubernetes API GET /version failed"):
        cr.k8s_version(kube, catalog)
    assert time.monotonic() - start < 10
    assert len(silent_server.accepted) == 1, "urllib3 retried"
