"""Probes of the cloud side: Kubernetes, GPU Operator, KServe, MLflow, MinIO, Prometheus,
Grafana. Each takes injected clients (anything with `.get(path)`) and the catalog; no
Dagster imports. They go past liveness: each proves the service does its job."""

from __future__ import annotations

import json
from typing import Any, Protocol

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core import versions
from mlops_assets.core.checks import Outcome, ProbeFailed, missing_items
from mlops_assets.core.hpc_rules import version_text
from mlops_assets.core.http import HttpAnswer, HttpUnreachable


class Kube(Protocol):
    def get(self, path: str, query: dict[str, str] | None = None) -> Any: ...


class Http(Protocol):
    url: str

    def get(self, path: str, *, headers: dict[str, str] | None = None) -> HttpAnswer: ...


def _kget(kube: Kube, path: str, query: dict[str, str] | None = None) -> Any:
    try:
        return kube.get(path, query)
    except ProbeFailed:
        raise
    except Exception as exc:
        status = getattr(exc, "status", None)
        if status == 404:
            return None
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise ProbeFailed(
            f"Kubernetes API GET {path} failed: {status or ''} {reason}".strip(),
            "check cloud.kubernetes.kubeconfig/context and that the API server answers (kubectl get nodes)",
        ) from None


def _items(obj: Any) -> list[dict[str, Any]]:
    return list((obj or {}).get("items") or [])


def _answer(http: Http, path: str, hint: str) -> HttpAnswer:
    try:
        return http.get(path)
    except HttpUnreachable as exc:
        raise ProbeFailed(str(exc), hint) from None


# ---------------------------------------------------------------- Kubernetes


def k8s_version(kube: Kube, catalog: Catalog) -> Outcome:
    info = _kget(kube, "/version") or {}
    found = str(info.get("gitVersion", "unknown"))
    minimum = catalog.cloud.kubernetes.min_version
    return Outcome(
        passed=versions.at_least(found, minimum),
        measured=version_text(found),
        threshold=minimum,
        unit="version",
        hint=f"upgrade the cluster to Kubernetes >= {minimum}",
        detail=f"gitVersion {found}",
    )


def k8s_namespaces(kube: Kube, catalog: Catalog) -> Outcome:
    names = [n["metadata"]["name"] for n in _items(_kget(kube, "/api/v1/namespaces"))]
    return missing_items(
        names, catalog.cloud.kubernetes.namespaces, "namespaces", "kubectl create namespace <name>"
    )


def _ready(node: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in node.get("status", {}).get("conditions", [])
    )


def k8s_gpu_nodes(kube: Kube, catalog: Catalog) -> Outcome:
    k = catalog.cloud.kubernetes
    nodes = _items(_kget(kube, "/api/v1/nodes", {"labelSelector": k.gpu_node_label}))
    good: list[str] = []
    bad: list[str] = []
    for n in nodes:
        name = n["metadata"]["name"]
        alloc = n.get("status", {}).get("allocatable", {}).get(k.gpu_resource, "0")
        try:
            gpus = int(str(alloc))
        except ValueError:
            gpus = 0
        (good if _ready(n) and gpus > 0 else bad).append(name)
    return Outcome(
        passed=len(good) >= k.min_gpu_nodes,
        measured=len(good),
        threshold=k.min_gpu_nodes,
        unit=f"Ready nodes labelled {k.gpu_node_label} with allocatable {k.gpu_resource}",
        hint="GPU node not Ready or no allocatable GPUs: check the GPU Operator's driver and device plugin pods on it",
        nodes=tuple(bad),
        detail=f"not ready or no GPUs: {', '.join(bad)}" if bad else "",
    )


def k8s_hpa_served(kube: Kube, catalog: Catalog) -> Outcome:
    served = _kget(kube, "/apis/autoscaling/v2") is not None
    return Outcome(served, served, True, "autoscaling/v2 served", "the API server must serve autoscaling/v2 for the HPA")


def k8s_ingress_class(kube: Kube, catalog: Catalog) -> Outcome:
    names = [i["metadata"]["name"] for i in _items(_kget(kube, "/apis/networking.k8s.io/v1/ingressclasses"))]
    return Outcome(
        bool(names), len(names), 1, "IngressClasses", "install an ingress controller (e.g. ingress-nginx)",
        detail=", ".join(names),
    )


def _pods(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    return _items(_kget(kube, f"/api/v1/namespaces/{namespace}/pods"))


def gpu_operator_validators(kube: Kube, catalog: Catalog) -> Outcome:
    ns = catalog.cloud.components.gpu_operator.namespace
    k = catalog.cloud.kubernetes
    gpu_nodes = {n["metadata"]["name"] for n in _items(_kget(kube, "/api/v1/nodes", {"labelSelector": k.gpu_node_label}))}
    validated: set[str] = set()
    failing: list[str] = []
    for pod in _pods(kube, ns):
        name = pod["metadata"]["name"]
        if not name.startswith("nvidia-operator-validator"):
            continue
        node = pod.get("spec", {}).get("nodeName", "")
        phase = pod.get("status", {}).get("phase")
        if phase in ("Running", "Succeeded"):
            validated.add(node)
        else:
            failing.append(f"{name} on {node}: {phase}")
    missing = sorted(gpu_nodes - validated)
    return Outcome(
        passed=not missing and bool(gpu_nodes),
        measured=len(gpu_nodes & validated),
        threshold=len(gpu_nodes),
        unit="GPU nodes validated by nvidia-operator-validator",
        hint="kubectl -n gpu-operator logs <validator pod> -c driver-validation / cuda-validation",
        nodes=tuple(missing),
        detail="; ".join(failing),
    )


def gpu_operator_device_plugin(kube: Kube, catalog: Catalog) -> Outcome:
    ns = catalog.cloud.components.gpu_operator.namespace
    running = [
        p["metadata"]["name"]
        for p in _pods(kube, ns)
        if p["metadata"]["name"].startswith("nvidia-device-plugin") and p.get("status", {}).get("phase") == "Running"
    ]
    return Outcome(bool(running), len(running), 1, "device plugin pods Running", "check the nvidia-device-plugin-daemonset in the GPU Operator namespace")


def kserve_crd(kube: Kube, catalog: Catalog) -> Outcome:
    ks = catalog.cloud.components.kserve
    crd = _kget(kube, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{ks.crd}")
    served = [v["name"] for v in (crd or {}).get("spec", {}).get("versions", []) if v.get("served")]
    return Outcome(
        ks.served_version in served,
        ", ".join(served) or "CRD missing",
        ks.served_version,
        "served versions",
        "install KServe's CRDs (kubectl apply -f kserve.yaml) at a version that serves v1beta1",
    )


def kserve_version(kube: Kube, catalog: Catalog) -> Outcome:
    ks = catalog.cloud.components.kserve
    dep = _kget(kube, f"/apis/apps/v1/namespaces/{ks.namespace}/deployments/{ks.controller_deployment}")
    if dep is None:
        return Outcome(False, "controller missing", ks.min_version, "version", f"deploy KServe's {ks.controller_deployment} in {ks.namespace}")
    labels = dep.get("metadata", {}).get("labels", {})
    found = labels.get("app.kubernetes.io/version")
    if not found:
        images = [c.get("image", "") for c in dep["spec"]["template"]["spec"].get("containers", [])]
        tags = [i.rsplit(":", 1)[-1] for i in images if "kserve" in i and ":" in i]
        found = tags[0] if tags else None
    if not found:
        raise ProbeFailed("no version label or image tag on the KServe controller", "label the deployment app.kubernetes.io/version")
    return Outcome(
        versions.at_least(found, ks.min_version),
        version_text(found),
        ks.min_version,
        "version",
        f"upgrade KServe to >= {ks.min_version}",
    )


def kserve_isvcs_ready(kube: Kube, catalog: Catalog) -> Outcome:
    ks = catalog.cloud.components.kserve
    total, bad = 0, []
    for ns in ks.watched_namespaces:
        for isvc in _items(_kget(kube, f"/apis/serving.kserve.io/{ks.served_version}/namespaces/{ns}/inferenceservices")):
            total += 1
            conds = {c.get("type"): c for c in isvc.get("status", {}).get("conditions", [])}
            ready = conds.get("Ready", {})
            if ready.get("status") != "True":
                bad.append(f"{ns}/{isvc['metadata']['name']}: {ready.get('reason', 'NoReadyCondition')} {ready.get('message', '')}".strip())
    return Outcome(
        not bad,
        total - len(bad),
        total,
        "InferenceServices Ready",
        "InferenceService not Ready: check the model exists in MinIO, the storage secret, and GPU node labels/taints",
        detail="; ".join(bad),
    )


# ------------------------------------------------------------------ services


def mlflow_health(http: Http, catalog: Catalog) -> Outcome:
    ans = _answer(http, "/health", "start the MLflow server and check its ingress")
    return Outcome(ans.status == 200, ans.status, 200, "HTTP status", "MLflow /health fails: check the server's pod/log", extra={"latency_s": round(ans.elapsed_s, 3)})


def mlflow_experiments(http: Http, catalog: Catalog) -> Outcome:
    ans = _answer(http, "/api/2.0/mlflow/experiments/search?max_results=1", "MLflow server unreachable")
    ok = ans.status == 200
    detail = ""
    if ok:
        try:
            ans.json()
        except (ValueError, json.JSONDecodeError):
            ok, detail = False, "answer is not JSON"
    else:
        detail = ans.text[:200]
    return Outcome(ok, ans.status, 200, "HTTP status of experiments/search", "the backend store does not answer: check MLflow's database connection", detail=detail)


def mlflow_registry(http: Http, catalog: Catalog) -> Outcome:
    ans = _answer(http, "/api/2.0/mlflow/registered-models/search?max_results=1", "MLflow server unreachable")
    return Outcome(ans.status == 200, ans.status, 200, "HTTP status of registered-models/search", "the model registry does not answer: it needs a database-backed store", detail="" if ans.status == 200 else ans.text[:200])


def prometheus_ready(http: Http, catalog: Catalog) -> Outcome:
    ans = _answer(http, "/-/ready", "start Prometheus")
    return Outcome(ans.status == 200, ans.status, 200, "HTTP status of /-/ready", "Prometheus is not ready to serve queries yet: check its log")


def prometheus_targets_up(http: Http, catalog: Catalog) -> Outcome:
    ans = _answer(http, "/api/v1/targets?state=active", "start Prometheus")
    if ans.status != 200:
        raise ProbeFailed(f"/api/v1/targets answered {ans.status}", "check Prometheus")
    targets = ans.json().get("data", {}).get("activeTargets", [])
    down = [f"{t.get('labels', {}).get('job', '?')}@{t.get('labels', {}).get('instance', '?')}: {t.get('lastError', '')}" for t in targets if t.get("health") != "up"]
    return Outcome(
        bool(targets) and not down,
        len(targets) - len(down),
        len(targets),
        "scrape targets up",
        "a scrape target is down: check the exporter's pod and the ServiceMonitor",
        detail="; ".join(down),
    )


def grafana_health(http: Http, catalog: Catalog) -> Outcome:
    ans = _answer(http, "/api/health", "start Grafana")
    try:
        body = ans.json()
    except ValueError:
        body = {}
    db = body.get("database", "unknown")
    return Outcome(
        ans.status == 200 and db == "ok",
        db,
        "ok",
        "database",
        "Grafana's database is failing: check its storage/PVC and log",
        detail=f"HTTP {ans.status}, version {body.get('version', '?')}",
    )


def minio_buckets_listable(s3: Any, catalog: Catalog) -> Outcome:
    """Credentials valid and the S3 API answers: list_buckets is the cheapest signed call."""
    try:
        names = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
        hint = (
            "wrong MinIO credentials: check MLOPS_S3_ACCESS_KEY_ID / MLOPS_S3_SECRET_ACCESS_KEY"
            if code in {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"}
            else "MinIO does not answer: check cloud.services.minio.url and the service"
        )
        raise ProbeFailed(f"S3 list_buckets failed: {code or type(exc).__name__}", hint) from None
    return Outcome(True, len(names), 0, "buckets visible", "", detail=", ".join(names))


def minio_cluster_health(http: Http, catalog: Catalog) -> Outcome:
    if not catalog.cloud.services.minio.minio_health_endpoints:
        return Outcome(True, "not MinIO", "n/a", "write quorum", "", detail="the S3 server is not MinIO: /minio/health/cluster does not exist (sandbox: SeaweedFS)")
    ans = _answer(http, "/minio/health/cluster", "MinIO unreachable")
    return Outcome(ans.status == 200, ans.status, 200, "HTTP status of /minio/health/cluster", "MinIO lost its write quorum (503): bring drives/nodes back")


def gpu_operator_crds(kube: Kube, catalog: Catalog) -> Outcome:
    present = [
        name for name in catalog.cloud.components.gpu_operator.crds
        if _kget(kube, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") is not None
    ]
    return missing_items(present, catalog.cloud.components.gpu_operator.crds, "CRDs", "install the GPU Operator with its CRDs (helm install gpu-operator)")


def kserve_serving_runtimes(kube: Kube, catalog: Catalog) -> Outcome:
    """PyTorch and Hugging Face (TGI-style) serving images come in as ClusterServingRuntimes."""
    runtimes = _items(_kget(kube, "/apis/serving.kserve.io/v1alpha1/clusterservingruntimes"))
    formats = {
        f.get("name", "").lower()
        for rt in runtimes
        if not rt.get("spec", {}).get("disabled")
        for f in rt.get("spec", {}).get("supportedModelFormats", [])
    }
    return missing_items(
        formats, ["pytorch", "huggingface"], "model formats served",
        "install KServe's ClusterServingRuntimes (kserve-torchserve, kserve-huggingfaceserver)",
    )


def platform_pods_running(kube: Kube, catalog: Catalog) -> Outcome:
    """MLflow and MinIO in mlops, Prometheus and Grafana in monitoring: their images run."""
    wanted = {"mlflow": "mlops", "minio": "mlops", "prometheus": "monitoring", "grafana": "monitoring"}
    running = set()
    for component, ns in wanted.items():
        for pod in _pods(kube, ns):
            if component in pod["metadata"]["name"] and pod.get("status", {}).get("phase") == "Running":
                running.add(component)
    return missing_items(running, list(wanted), "components with a Running pod", "kubectl -n <ns> describe pod: image pull or crash loop")
