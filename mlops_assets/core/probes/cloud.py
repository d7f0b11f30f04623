"""Probes of the cloud side: Kubernetes, GPU Operator, KServe, MLflow, MinIO, Prometheus,
Grafana. Each takes injected clients (anything with `.get(path)`) and the catalog; no
Dagster imports. They go past liveness: each proves the service does its job."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
import urllib.parse
from typing import Any, Protocol

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.checks import Outcome, ProbeFailed, Severity, missing_items
from mlops_assets.core.parse import versions
from mlops_assets.core.probes.hpc import version_text
from mlops_assets.core.transport.http import HttpAnswer, HttpUnreachable


class Kube(Protocol):
    def get(self, path: str, query: dict[str, str] | None = None) -> Any: ...


class Http(Protocol):
    url: str

    def get(self, path: str, *, headers: dict[str, str] | None = None) -> HttpAnswer: ...


class HttpCall(Http, Protocol):
    """An Http that also sends other methods and bodies (MLflow's REST and artifact APIs)."""

    def call(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> HttpAnswer: ...


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
            "check cloud.kubernetes.kubeconfig/context and that "
            "the API server answers (kubectl get nodes)",
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


def _pods(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    return _items(_kget(kube, f"/api/v1/namespaces/{namespace}/pods"))


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


# ------------------------------------------------------------------ services


# MLflow's /health, experiments/search and registered-models/search are read as plain HTTP on
# purpose: their measurement is the endpoint's status and answer (a 503 from the registry, a
# non-JSON page from a proxy), which MlflowClient would turn into an exception text. What uses
# MLflow (the artifact round trip, core.probes.model_registry) goes through MlflowClient.


def mlflow_health(http: Http, catalog: Catalog) -> Outcome:
    ans = _answer(http, "/health", "start the MLflow server and check its ingress")
    return Outcome(
        ans.status == 200,
        ans.status,
        200,
        "HTTP status",
        "MLflow /health fails: check the server's pod/log",
        extra={"latency_s": round(ans.elapsed_s, 3)},
    )


def mlflow_experiments(http: Http, catalog: Catalog) -> Outcome:
    ans = _answer(
        http, "/api/2.0/mlflow/experiments/search?max_results=1", "MLflow server unreachable"
    )
    ok = ans.status == 200
    detail = ""
    if ok:
        try:
            ans.json()
        except (ValueError, json.JSONDecodeError):
            ok, detail = False, "answer is not JSON"
    else:
        detail = ans.text[:200]
    return Outcome(
        ok,
        ans.status,
        200,
        "HTTP status of experiments/search",
        "the backend store does not answer: check MLflow's database connection",
        detail=detail,
    )


def mlflow_registry(http: Http, catalog: Catalog) -> Outcome:
    ans = _answer(
        http, "/api/2.0/mlflow/registered-models/search?max_results=1", "MLflow server unreachable"
    )
    return Outcome(
        ans.status == 200,
        ans.status,
        200,
        "HTTP status of registered-models/search",
        "the model registry does not answer: it needs a database-backed store",
        detail="" if ans.status == 200 else ans.text[:200],
    )


_MLFLOW_HINT = (
    "MLflow's artifact store failed: check --artifacts-destination, the server's S3 "
    "credentials and the bucket"
)


def _probe_experiment_id(client: Any, name: str) -> str:
    """The dedicated probe experiment: found, restored if deleted, or created."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return str(client.create_experiment(name))
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return str(exp.experiment_id)


PROXY_SCHEME = "mlflow-artifacts:"
ARTIFACT_API = "/api/2.0/mlflow-artifacts/artifacts/"


def _proxy_path(artifact_uri: str) -> str:
    """mlflow-artifacts:/1/<run>/artifacts or mlflow-artifacts://host/1/<run>/artifacts ->
    1/<run>/artifacts, the path the artifact proxy serves."""
    rest = artifact_uri[len(PROXY_SCHEME) :]
    if rest.startswith("//"):
        rest = rest[2:].partition("/")[2]
    return rest.lstrip("/")


def mlflow_artifact_round_trip(http: HttpCall, catalog: Catalog) -> Outcome:
    """Log a small probe artifact to the probe experiment, read it back byte-identical, then
    delete artifact and run: proves the artifact store behind MLflow, which /health and
    experiments/search never touch. Through MLflow's own client (core.probes.model_registry's
    bounded `mlflow_client`), as a training job logs: via the server's artifact proxy
    (`mlflow-artifacts:`) or straight to the store the server names (`s3://...`)."""
    import tempfile

    from mlflow.exceptions import MlflowException

    from mlops_assets.core.probes.model_registry import mlflow_client

    name = catalog.cloud.services.mlflow.probe_experiment
    payload = b"mlops-assets artifact probe " + os.urandom(16).hex().encode()
    start = time.monotonic()
    with mlflow_client(http) as client:
        exp_id = _probe_experiment_id(client, name)
        run = client.create_run(exp_id, run_name="mlops-assets-probe")
        run_id, artifact_uri = run.info.run_id, str(run.info.artifact_uri or "")
        try:
            with tempfile.TemporaryDirectory() as tmp:
                src = os.path.join(tmp, "probe.bin")
                with open(src, "wb") as fh:
                    fh.write(payload)
                try:
                    client.log_artifact(run_id, src)
                    back = client.download_artifacts(run_id, "probe.bin", os.path.join(tmp, "b"))
                except MlflowException as exc:
                    where = artifact_uri or "the server"
                    raise ProbeFailed(
                        f"artifact round trip via {where}: {exc.message[:300]}", _MLFLOW_HINT
                    ) from None
                with open(back, "rb") as fh:
                    got = fh.read()
        finally:
            _cleanup(http, client, run_id, artifact_uri)
    elapsed = round(time.monotonic() - start, 3)
    same = got == payload
    return Outcome(
        same,
        "identical" if same else f"different ({len(got)} of {len(payload)} bytes)",
        "identical",
        "bytes read back",
        "the artifact store returned other bytes than logged: check the bucket behind "
        "--artifacts-destination",
        detail=f"experiment {name} ({exp_id}), run {run_id} deleted, {elapsed}s",
        extra={"round_trip_s": elapsed, "probe_bytes": len(payload)},
    )


def _cleanup(http: HttpCall, client: Any, run_id: str, artifact_uri: str) -> None:
    """Best effort: the probe leaves no artifact and only a deleted run behind. The artifact
    is deleted through the proxy's REST call, written by hand: MlflowClient has no public call
    that deletes one artifact (a store URI such as s3:// keeps it, under a deleted run)."""
    with contextlib.suppress(Exception):
        if artifact_uri.startswith(PROXY_SCHEME):
            http.call(
                "DELETE",
                ARTIFACT_API + urllib.parse.quote(f"{_proxy_path(artifact_uri)}/probe.bin"),
            )
    with contextlib.suppress(Exception):
        client.delete_run(run_id)


def prometheus_ready(http: Http, catalog: Catalog) -> Outcome:
    ans = _answer(http, "/-/ready", "start Prometheus")
    return Outcome(
        ans.status == 200,
        ans.status,
        200,
        "HTTP status of /-/ready",
        "Prometheus is not ready to serve queries yet: check its log",
    )


def _active_targets(http: Http) -> list[dict[str, Any]]:
    ans = _answer(http, "/api/v1/targets?state=active", "start Prometheus")
    if ans.status != 200:
        raise ProbeFailed(f"/api/v1/targets answered {ans.status}", "check Prometheus")
    try:
        return list(ans.json().get("data", {}).get("activeTargets", []))
    except (ValueError, AttributeError):
        raise ProbeFailed("/api/v1/targets did not answer JSON", "is the URL Prometheus?") from None


def _job(target: dict[str, Any]) -> str:
    return str(target.get("labels", {}).get("job") or target.get("scrapePool") or "?")


def _instance(target: dict[str, Any]) -> str:
    return f"{_job(target)}@{target.get('labels', {}).get('instance', '?')}"


# /api/v1/targets health: "up", "down", or "unknown" before the first scrape (right after a
# restart or a new ServiceMonitor). Unknown is not down: it is not judged yet.
NOT_SCRAPED = "unknown"


def prometheus_targets_up(http: Http, catalog: Catalog) -> Outcome:
    """The share of scraped targets up against the catalog's threshold; down ones named.
    Targets not scraped yet are left out here and reported by prometheus_targets_scraped."""
    targets = _active_targets(http)
    minimum = catalog.cloud.services.prometheus.min_targets_up_fraction
    scraped = [t for t in targets if t.get("health") != NOT_SCRAPED]
    waiting = len(targets) - len(scraped)
    down = [t for t in scraped if t.get("health") != "up"]
    share = round((len(scraped) - len(down)) / len(scraped), 3) if scraped else 0.0
    if targets and not scraped:  # all waiting for their first scrape: nothing to judge yet
        return Outcome(
            True,
            "not scraped yet",
            minimum,
            "share of scraped targets up",
            "",
            detail=(
                f"all {waiting} active targets are not scraped yet (health unknown): see "
                "prometheus_targets_scraped"
            ),
            extra={"targets_up": 0, "targets_total": len(targets), "targets_not_scraped": waiting},
        )
    detail = "; ".join(f"down {_instance(t)}: {t.get('lastError', '')}".strip() for t in down)
    if not targets:
        detail = "no active targets"
    elif waiting:
        detail = "; ".join(filter(None, [detail, f"{waiting} not scraped yet, left out"]))
    return Outcome(
        bool(targets) and share >= minimum,
        share,
        minimum,
        "share of scraped targets up",
        "a scrape target is down: check the exporter's pod and the ServiceMonitor",
        nodes=tuple(_instance(t) for t in down),
        detail=detail,
        extra={
            "targets_up": len(scraped) - len(down),
            "targets_total": len(targets),
            "targets_not_scraped": waiting,
        },
    )


def prometheus_targets_scraped(http: Http, catalog: Catalog) -> Outcome:
    """Every active target scraped at least once (health not `unknown`). A WARN check: right
    after a Prometheus restart or a new ServiceMonitor this is normal for one scrape interval;
    a target that stays unknown is never scraped (interval, sharding or a stuck scrape pool)."""
    targets = _active_targets(http)
    waiting = [t for t in targets if t.get("health") == NOT_SCRAPED]
    return Outcome(
        not waiting,
        len(targets) - len(waiting),
        len(targets),
        "active targets scraped at least once",
        "not scraped yet: wait one scrape interval and re-check; if it stays unknown, check the "
        "scrape interval and Prometheus' log",
        nodes=tuple(_instance(t) for t in waiting),
        detail="; ".join(f"not scraped yet: {_instance(t)}" for t in waiting),
    )


def prometheus_expected_jobs(http: Http, catalog: Catalog) -> Outcome:
    jobs = {_job(t) for t in _active_targets(http)}
    return missing_items(
        jobs,
        catalog.cloud.services.prometheus.expected_jobs,
        "scrape jobs",
        "add the scrape config / ServiceMonitor for the missing job",
    )


def grafana_health(http: Http, catalog: Catalog) -> Outcome:
    ans = _answer(http, "/api/health", "start Grafana")
    try:
        body = ans.json()
    except ValueError:
        body = {}
    db = body.get("database", "unknown")
    version = str(body.get("version", "unknown"))
    return Outcome(
        ans.status == 200 and db == "ok",
        db,
        "ok",
        "database",
        "Grafana's database is failing: check its storage/PVC and log",
        detail=f"HTTP {ans.status}, version {version}",
        extra={"grafana_version": version, "grafana_commit": str(body.get("commit", "unknown"))},
    )


CREDENTIAL_ERRORS = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken"}
)


def s3_error_code(exc: BaseException) -> str:
    """The S3 error code of a botocore ClientError, else the exception's class name. Never
    the message: messages may quote request parameters."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


def _credentials_failure(catalog: Catalog, what: str, code: str) -> ProbeFailed:
    m = catalog.cloud.services.minio
    if code in CREDENTIAL_ERRORS:
        return ProbeFailed(
            f"{what} at {m.url} refused the credentials: {code} "
            f"(access key from ${m.access_key.env}, secret from ${m.secret_key.env})",
            f"wrong S3 credentials: set ${m.access_key.env} / "
            f"${m.secret_key.env} to a key pair the server knows",
        )
    return ProbeFailed(
        f"{what} at {m.url} failed: {code}",
        "the S3 endpoint does not answer: check cloud.services.minio.url and the service",
    )


def minio_buckets_listable(s3: Any, catalog: Catalog) -> Outcome:
    """Credentials valid and the S3 API answers: list_buckets is the cheapest signed call."""
    try:
        names = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    except Exception as exc:
        raise _credentials_failure(catalog, "S3 list_buckets", s3_error_code(exc)) from None
    return Outcome(True, len(names), 0, "buckets visible", "", detail=", ".join(names))


def minio_buckets_exist(s3: Any, catalog: Catalog, required: bool) -> Outcome:
    """HEAD on each catalog bucket (required or optional ones): works for users who may not
    list all buckets, and names each missing or forbidden one."""
    wanted = [b.name for b in catalog.cloud.buckets if b.required == required]
    present: list[str] = []
    problems: list[str] = []
    for name in wanted:
        try:
            s3.head_bucket(Bucket=name)
            present.append(name)
        except Exception as exc:
            code = s3_error_code(exc)
            if code in {"404", "NoSuchBucket", "NotFound"}:
                problems.append(f"{name}: missing")
            elif code in {"403", *CREDENTIAL_ERRORS}:
                problems.append(f"{name}: forbidden (403)")
            else:
                raise _credentials_failure(catalog, f"S3 head_bucket {name}", code) from None
    out = missing_items(
        present,
        wanted,
        "buckets",
        "materialize the bucket assets (mlops-assets "
        "materialize --select storage) or create them (mc mb)",
    )
    return dataclasses.replace(out, detail="; ".join(problems))


def minio_cluster_health(http: Http, catalog: Catalog) -> Outcome:
    """MinIO's /minio/health/cluster: 200 while the write quorum holds, 503 when lost. The
    quorum it needs comes back in X-Minio-Write-Quorum."""
    if not catalog.cloud.services.minio.minio_health_endpoints:
        return Outcome(
            True,
            "not MinIO",
            "n/a",
            "write quorum",
            "",
            detail=(
                "the S3 server is not MinIO: /minio/health/cluster "
                "does not exist (sandbox: SeaweedFS)"
            ),
        )
    ans = _answer(http, "/minio/health/cluster", "MinIO unreachable")
    headers = {k.lower(): v for k, v in ans.headers.items()}
    quorum = headers.get("x-minio-write-quorum", "")
    server = headers.get("server", "")
    return Outcome(
        ans.status == 200,
        ans.status,
        200,
        "HTTP status of /minio/health/cluster",
        "MinIO lost its write quorum (503): bring drives/nodes back (mc admin info)"
        if ans.status == 503
        else "unexpected answer: is cloud.services.minio.url a MinIO server?",
        detail=f"write quorum {quorum or '?'}, server {server or '?'}",
        extra={"write_quorum": quorum} if quorum else {},
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
