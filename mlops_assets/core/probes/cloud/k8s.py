"""Probes of the Kubernetes cluster itself: its version, the namespaces, the GPU nodes
(labelled, Ready, with allocatable GPUs), the HPA API, an IngressClass, and the platform's
own pods. No Dagster imports."""

from __future__ import annotations

from typing import Any

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.checks import Outcome, missing_items
from mlops_assets.core.parse import versions
from mlops_assets.core.probes.cloud.clients import Kube, _items, _kget, _pods
from mlops_assets.core.probes.hpc import version_text


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


def _has_label(node: dict[str, Any], selector: str) -> bool:
    """`key=value` or a bare `key`, as the catalog's gpu_node_label is written."""
    key, _, value = selector.partition("=")
    labels = node.get("metadata", {}).get("labels") or {}
    return key in labels and (not value or labels[key] == value)


def _allocatable_gpus(node: dict[str, Any], resource: str) -> int:
    try:
        return int(str(node.get("status", {}).get("allocatable", {}).get(resource, "0")))
    except ValueError:
        return 0


def k8s_gpu_nodes(kube: Kube, catalog: Catalog) -> Outcome:
    """All nodes are listed, not only the labelled ones: a GPU node whose label vanished
    (GFD/NFD stopped labelling) is named instead of silently not counted."""
    k = catalog.cloud.kubernetes
    good: list[str] = []
    bad: list[str] = []
    problems: list[str] = []
    for n in _items(_kget(kube, "/api/v1/nodes")):
        name = n["metadata"]["name"]
        labelled, gpus, ready = (
            _has_label(n, k.gpu_node_label),
            _allocatable_gpus(n, k.gpu_resource),
            _ready(n),
        )
        if not labelled and gpus == 0:
            continue  # not a GPU node (e.g. the control plane)
        why = [
            w
            for w, bad_flag in (
                (f"no label {k.gpu_node_label}", not labelled),
                (f"allocatable {k.gpu_resource} 0", gpus == 0),
                ("not Ready", not ready),
            )
            if bad_flag
        ]
        if why:
            bad.append(name)
            problems.append(f"{name}: {', '.join(why)}")
        else:
            good.append(name)
    return Outcome(
        passed=len(good) >= k.min_gpu_nodes,
        measured=len(good),
        threshold=k.min_gpu_nodes,
        unit=f"Ready nodes labelled {k.gpu_node_label} with allocatable {k.gpu_resource}",
        hint=(
            "GPU node unlabelled, not Ready or without allocatable GPUs: check the GPU "
            "Operator's GFD/NFD, driver and device plugin pods on it"
        ),
        nodes=tuple(bad),
        detail="; ".join(problems),
    )


def k8s_hpa_served(kube: Kube, catalog: Catalog) -> Outcome:
    served = _kget(kube, "/apis/autoscaling/v2") is not None
    return Outcome(
        served,
        served,
        True,
        "autoscaling/v2 served",
        "the API server must serve autoscaling/v2 for the HPA",
    )


def k8s_ingress_class(kube: Kube, catalog: Catalog) -> Outcome:
    names = [
        i["metadata"]["name"]
        for i in _items(_kget(kube, "/apis/networking.k8s.io/v1/ingressclasses"))
    ]
    return Outcome(
        bool(names),
        len(names),
        1,
        "IngressClasses",
        "install an ingress controller (e.g. ingress-nginx)",
        detail=", ".join(names),
    )


def platform_pods_running(kube: Kube, catalog: Catalog) -> Outcome:
    """MLflow and MinIO in mlops, Prometheus and Grafana in monitoring: their images run."""
    wanted = {
        "mlflow": "mlops",
        "minio": "mlops",
        "prometheus": "monitoring",
        "grafana": "monitoring",
    }
    running = set()
    for component, ns in wanted.items():
        for pod in _pods(kube, ns):
            if (
                component in pod["metadata"]["name"]
                and pod.get("status", {}).get("phase") == "Running"
            ):
                running.add(component)
    return missing_items(
        running,
        list(wanted),
        "components with a Running pod",
        "kubectl -n <ns> describe pod: image pull or crash loop",
    )
