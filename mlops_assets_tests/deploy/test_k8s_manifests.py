"""deploy/k8s: kustomize renders, every object validates against the Kubernetes schemas of the
minimum supported version (catalog cloud.kubernetes.min_version), the ClusterRole covers
exactly the API paths the checks GET (derived by running every Kubernetes rule against a
recording client), Secrets are placeholders only, the NetworkPolicy opens what the checks need."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.core.probes import cloud

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"


def _render() -> list[dict[str, Any]]:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=False, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return _render()


def _kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def test_kustomize_renders_the_namespace_objects(objects: list[dict[str, Any]]) -> None:
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Namespace",
        "NetworkPolicy",
        "ServiceAccount",
    ]
    for o in objects:
        if o["kind"] in ("ServiceAccount", "NetworkPolicy", "ConfigMap"):
            assert o["metadata"]["namespace"] == "mlops"


def test_every_object_validates_against_the_minimum_kubernetes_version(
    objects: list[dict[str, Any]], tmp_path: Path
) -> None:
    minimum = load_catalog(None, "production").catalog.cloud.kubernetes.min_version
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(objects))
    files = [str(rendered), *map(str, sorted((K8S / "secrets").glob("*.yaml")))]
    out = subprocess.run(
        [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", f"{minimum}.0", *files],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("passed") == len(objects) + len(files) - 1


class Recorder:
    def __init__(self) -> None:
        self.paths: list[str] = []

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        self.paths.append(path)
        if "/deployments/" in path:
            return None
        return {"items": [], "gitVersion": "v1.30.0", "spec": {"versions": []}}


def _cloud_modules() -> list[ModuleType]:
    """The modules of the cloud probe package: each defines the rules of what it probes."""
    return [
        importlib.import_module(f"{cloud.__name__}.{m.name}")
        for m in pkgutil.iter_modules(cloud.__path__)
    ]


def _kube_rules() -> list[Any]:
    rules = []
    for module in _cloud_modules():
        for _, fn in inspect.getmembers(module, inspect.isfunction):
            params = list(inspect.signature(fn).parameters.values())
            if (
                fn.__module__ == module.__name__
                and not fn.__name__.startswith("_")
                and params
                and params[0].annotation in ("Kube", cloud.Kube)
            ):
                rules.append(fn)
    return rules


def checked_paths() -> set[str]:
    catalog = load_catalog(None, "production").catalog
    rec = Recorder()
    for fn in _kube_rules():
        with contextlib.suppress(Exception):  # minimal answers: only the paths matter here
            fn(rec, catalog)
    return set(rec.paths)


_CORE = re.compile(r"^/api/v1(?:/namespaces/[^/]+)?/(?P<res>[a-z]+)(?:/(?P<name>[^/]+))?$")
_GROUP = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<ver>[^/]+)"
    r"(?:/namespaces/[^/]+)?/(?P<res>[a-z]+)(?:/(?P<name>[^/]+))?$"
)


def permission(path: str) -> tuple[str, str, str]:
    """(apiGroup, resource, verb) for a resource path; ("url", path, "get") otherwise."""
    if path == "/api/v1/namespaces":
        return ("", "namespaces", "list")
    m = _CORE.match(path)
    if m:
        return ("", m["res"], "get" if m["name"] else "list")
    m = _GROUP.match(path)
    if m:
        return (m["group"], m["res"], "get" if m["name"] else "list")
    return ("url", path, "get")


def granted(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    out = set()
    for rule in role["rules"]:
        for verb in rule["verbs"]:
            for url in rule.get("nonResourceURLs", []):
                out.add(("url", url, verb))
            for group in rule.get("apiGroups", []):
                for res in rule.get("resources", []):
                    out.add((group, res, verb))
    return out


def test_recorder_sees_every_kubernetes_rule() -> None:
    names = {fn.__name__ for fn in _kube_rules()}
    source = "\n".join(inspect.getsource(m) for m in _cloud_modules())
    using = set(re.findall(r"^def ([a-z]\w*)\(kube: Kube", source, flags=re.M))
    assert names == using and len(names) >= 12, names
    assert len(checked_paths()) >= 10


def test_cluster_role_covers_exactly_the_paths_the_checks_get(
    objects: list[dict[str, Any]],
) -> None:
    needed = {permission(p) for p in checked_paths()}
    have = granted(_kind(objects, "ClusterRole"))
    assert needed - have == set(), f"paths the checks GET without a rule: {needed - have}"
    assert have - needed == set(), f"rules no check needs (least privilege): {have - needed}"
    assert {verb for _, _, verb in have} <= {"get", "list"}
    resources = {res for group, res, _ in have if group != "url"}
    assert {
        "nodes",
        "namespaces",
        "pods",
        "deployments",
        "customresourcedefinitions",
        "inferenceservices",
        "ingressclasses",
    } <= resources


def test_binding_names_the_role_and_the_service_account(objects: list[dict[str, Any]]) -> None:
    binding = _kind(objects, "ClusterRoleBinding")
    sa = _kind(objects, "ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": _kind(objects, "ClusterRole")["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "mlops"}
    ]


def test_secret_templates_hold_placeholders_only() -> None:
    files = sorted((K8S / "secrets").glob("*.yaml"))
    assert {f.stem for f in files} == {"minio", "mlflow", "hpc-ssh", "postgresql"}
    for f in files:
        doc = yaml.safe_load(f.read_text())
        assert doc["kind"] == "Secret" and "data" not in doc
        for key, value in doc["stringData"].items():
            assert value.startswith("<REPLACE_ME"), (f.name, key)
    text = (K8S / "secrets" / "minio.yaml").read_text()
    assert "MLOPS_S3_ACCESS_KEY_ID" in text and "MLOPS_S3_SECRET_ACCESS_KEY" in text
    assert "secrets" not in (K8S / "kustomization.yaml").read_text().split("resources:")[1]


def test_network_policy_allows_only_what_the_checks_need(objects: list[dict[str, Any]]) -> None:
    policy = _kind(objects, "NetworkPolicy")["spec"]
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    ports = sorted({p["port"] for rule in policy["egress"] for p in rule["ports"]})
    # DNS, SSH, HTTPS (hub/internet checks, API), Postgres, MLflow, Grafana, K8s API, MinIO,
    # Prometheus, Pushgateway
    assert ports == [22, 53, 443, 3000, 5000, 5432, 6443, 9000, 9090, 9091]
    for rule in policy["egress"]:
        assert rule.get("to"), "an egress rule without `to` would open every destination"
    catalog = load_catalog(None, "production").catalog
    cidrs = {
        peer["ipBlock"]["cidr"]
        for rule in policy["egress"]
        for peer in rule["to"]
        if "ipBlock" in peer
    }
    assert f"{catalog.network.hpc_controller}/32" in cidrs
    assert f"{catalog.network.cloud_control_plane}/32" in cidrs
    assert policy["podSelector"]["matchLabels"] == {"mlops-assets/role": "checks"}
