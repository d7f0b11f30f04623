"""Probes of the NVIDIA GPU Operator: its validator pods on every GPU node, the
ClusterPolicy's own verdict over its operands, the device plugin, its CRDs. No Dagster
imports."""

from __future__ import annotations

from typing import Any

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.checks import Outcome, Severity, missing_items
from mlops_assets.core.probes.cloud.clients import Kube, _items, _kget, _pods


def gpu_operator_validators(kube: Kube, catalog: Catalog) -> Outcome:
    ns = catalog.cloud.components.gpu_operator.namespace
    k = catalog.cloud.kubernetes
    gpu_nodes = {
        n["metadata"]["name"]
        for n in _items(_kget(kube, "/api/v1/nodes", {"labelSelector": k.gpu_node_label}))
    }
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


CLUSTERPOLICIES = "/apis/nvidia.com/v1/clusterpolicies"

# The operand each ClusterPolicy state deploys (gpu-operator's controllers/state_manager.go), so a
# "states not ready: [...]" message points at the pods to look at.
_CP_STATES = {
    "state-driver": "nvidia-driver-daemonset (driver build/load on the node)",
    "state-container-toolkit": "nvidia-container-toolkit-daemonset (container runtime config)",
    "state-operator-validation": (
        "nvidia-operator-validator (driver/toolkit/CUDA/plugin validation)"
    ),
    "state-device-plugin": "nvidia-device-plugin-daemonset",
    "state-dcgm": "nvidia-dcgm",
    "state-dcgm-exporter": "nvidia-dcgm-exporter",
    "gpu-feature-discovery": "gpu-feature-discovery",
    "state-mig-manager": "nvidia-mig-manager",
    "state-node-status-exporter": "nvidia-node-status-exporter",
}


def _cp_conditions(status: dict[str, Any]) -> str:
    """The failing metav1 conditions: Ready not True, or Error True (with OperandNotReady or
    ReconcileFailed and the operator's message)."""
    out = []
    for c in status.get("conditions") or []:
        if not isinstance(c, dict):
            continue
        kind, st = str(c.get("type")), str(c.get("status"))
        if (kind == "Ready" and st != "True") or (kind == "Error" and st == "True"):
            out.append(
                " ".join(
                    filter(
                        None,
                        [
                            f"{kind}={st}",
                            str(c.get("reason") or ""),
                            str(c.get("message") or "").strip(),
                        ],
                    )
                )
            )
    return "; ".join(out)


def gpu_operator_clusterpolicy(kube: Kube, catalog: Catalog) -> Outcome:
    """status.state of every ClusterPolicy: the operator's own verdict over all its operands.
    The CRD existing says nothing; a notReady policy means some DaemonSet never came up."""
    policies = _items(_kget(kube, CLUSTERPOLICIES))
    unit = "ClusterPolicies in state ready"
    if not policies:
        return Outcome(
            False,
            0,
            1,
            unit,
            "no ClusterPolicy: the GPU Operator deploys nothing without one (helm install "
            "gpu-operator creates cluster-policy)",
            detail="no ClusterPolicy object",
        )
    ready: list[str] = []
    broken: list[str] = []
    unjudged: list[str] = []
    ignored: list[str] = []
    named: list[str] = []
    severity: Severity | None = None
    for p in policies:
        name = str((p.get("metadata") or {}).get("name", "?"))
        status = p.get("status") or {}
        state = status.get("state")
        if not state:
            unjudged.append(
                f"{name}: no status.state yet (not reconciled: is the gpu-operator pod running?)"
            )
        elif state == "ready":
            ready.append(name)
        elif state == "ignored":
            ignored.append(
                f"{name}: ignored (a second ClusterPolicy; the "
                "operator reconciles only the oldest one)"
            )
        else:
            why = _cp_conditions(status)
            broken.append(f"{name}: {state}" + (f" ({why})" if why else ""))
            named += [s for s in _CP_STATES if s in why]
    if broken:
        hint = (
            "ClusterPolicy notReady: kubectl -n "
            f"{catalog.cloud.components.gpu_operator.namespace} "
            "get pods, then describe/logs the failing operand"
        )
        if named:
            hint += ": " + ", ".join(f"{s} -> {_CP_STATES[s]}" for s in dict.fromkeys(named))
    elif unjudged:
        hint, severity = (
            "wait for the operator to reconcile, or check the gpu-operator deployment's log",
            Severity.WARN,
        )
    elif ignored and ready:
        hint, severity = (
            "delete the duplicate ClusterPolicy: edits to it have no effect",
            Severity.WARN,
        )
    else:
        hint = "no ClusterPolicy is active: keep exactly one"
    return Outcome(
        passed=bool(ready) and not (broken or unjudged or ignored),
        measured=len(ready),
        threshold=len(policies),
        unit=unit,
        hint=hint,
        detail="; ".join(broken + unjudged + ignored),
        severity=severity,
    )


def gpu_operator_device_plugin(kube: Kube, catalog: Catalog) -> Outcome:
    ns = catalog.cloud.components.gpu_operator.namespace
    running = [
        p["metadata"]["name"]
        for p in _pods(kube, ns)
        if p["metadata"]["name"].startswith("nvidia-device-plugin")
        and p.get("status", {}).get("phase") == "Running"
    ]
    return Outcome(
        bool(running),
        len(running),
        1,
        "device plugin pods Running",
        "check the nvidia-device-plugin-daemonset in the GPU Operator namespace",
    )


def gpu_operator_crds(kube: Kube, catalog: Catalog) -> Outcome:
    present = [
        name
        for name in catalog.cloud.components.gpu_operator.crds
        if _kget(kube, f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
        is not None
    ]
    return missing_items(
        present,
        catalog.cloud.components.gpu_operator.crds,
        "CRDs",
        "install the GPU Operator with its CRDs (helm install gpu-operator)",
    )
