"""Probes of KServe: the InferenceService CRD and its served version, the controller's
version, the InferenceServices Ready (with KServe's own reason when not), the serving
runtimes. No Dagster imports."""

from __future__ import annotations

from typing import Any

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.checks import Outcome, ProbeFailed, missing_items
from mlops_assets.core.parse import versions
from mlops_assets.core.probes.cloud.clients import Kube, _items, _kget
from mlops_assets.core.probes.hpc import version_text


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
    dep = _kget(
        kube, f"/apis/apps/v1/namespaces/{ks.namespace}/deployments/{ks.controller_deployment}"
    )
    if dep is None:
        return Outcome(
            False,
            "controller missing",
            ks.min_version,
            "version",
            f"deploy KServe's {ks.controller_deployment} in {ks.namespace}",
        )
    labels = dep.get("metadata", {}).get("labels", {})
    found = labels.get("app.kubernetes.io/version")
    if not found:
        images = [c.get("image", "") for c in dep["spec"]["template"]["spec"].get("containers", [])]
        tags = [i.rsplit(":", 1)[-1] for i in images if "kserve" in i and ":" in i]
        found = tags[0] if tags else None
    if not found:
        raise ProbeFailed(
            "no version label or image tag on the KServe controller",
            "label the deployment app.kubernetes.io/version",
        )
    return Outcome(
        versions.at_least(found, ks.min_version),
        version_text(found),
        ks.min_version,
        "version",
        f"upgrade KServe to >= {ks.min_version}",
    )


# InferenceService sub-conditions that say which part is not ready (KServe 0.7-0.15).
_ISVC_PARTS = (
    "PredictorReady",
    "TransformerReady",
    "ExplainerReady",
    "IngressReady",
    "LatestDeploymentReady",
    "RoutesReady",
    "PredictorRouteReady",
    "PredictorConfigurationReady",
)


def isvc_not_ready(isvc: dict[str, Any]) -> str | None:
    """Why an InferenceService is not Ready, in KServe's words: the Ready condition's reason and
    message (e.g. RuntimeUnhealthy), then each failing sub-condition; None when Ready."""
    conds = {
        str(c.get("type")): c
        for c in (isvc.get("status") or {}).get("conditions") or []
        if isinstance(c, dict)
    }
    ready = conds.get("Ready")
    if ready is not None and ready.get("status") == "True":
        return None
    if ready is None:
        head = "no Ready condition (not reconciled yet: is the KServe controller running?)"
    else:
        head = " ".join(
            filter(
                None,
                [
                    str(ready.get("reason") or f"Ready={ready.get('status', '?')}"),
                    str(ready.get("message") or "").strip(),
                ],
            )
        )
    parts = [
        f"{name}={c.get('status')}" + "".join(f" {c[k]}" for k in ("reason", "message") if c.get(k))
        for name, c in conds.items()
        if name != "Ready"
        and c.get("status") != "True"
        and (name in _ISVC_PARTS or name.endswith("Ready"))
    ]
    model = (isvc.get("status") or {}).get("modelStatus") or {}
    failure = (model.get("lastFailureInfo") or {}) if isinstance(model, dict) else {}
    if failure.get("reason") or failure.get("message"):
        parts.append(f"model {failure.get('reason', '')} {failure.get('message', '')}".strip())
    return head + (f" [{'; '.join(parts)}]" if parts else "")


def kserve_isvcs_ready(kube: Kube, catalog: Catalog) -> Outcome:
    ks = catalog.cloud.components.kserve
    total, bad = 0, []
    for ns in ks.watched_namespaces:
        for isvc in _items(
            _kget(
                kube,
                f"/apis/serving.kserve.io/{ks.served_version}/namespaces/{ns}/inferenceservices",
            )
        ):
            total += 1
            why = isvc_not_ready(isvc)
            if why is not None:
                bad.append(f"{ns}/{isvc['metadata']['name']}: {why}")
    return Outcome(
        not bad,
        total - len(bad),
        total,
        "InferenceServices Ready",
        "InferenceService not Ready: the reason above names the part; check the model exists in "
        "MinIO, the storage secret, and GPU node labels/taints",
        detail="; ".join(bad),
    )


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
        formats,
        ["pytorch", "huggingface"],
        "model formats served",
        "install KServe's ClusterServingRuntimes (kserve-torchserve, kserve-huggingfaceserver)",
    )
