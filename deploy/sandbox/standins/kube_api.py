"""Kubernetes API STAND-IN for the mlops_assets sandbox. This is NOT a real kube-apiserver.

No Kubernetes API server, etcd, k3s or kwok can be had on the sandbox machines, so this
small fixture server speaks enough of the Kubernetes REST API for the official
``kubernetes`` Python client and for ``kubectl`` (legacy discovery, server-side Table
printing, label and field selectors, get/list/watch, create/replace/patch/delete). Its
objects come from ``kube_fixtures/cluster.json``, written in the shapes that a real
v1.29 cluster with the GPU Operator, KServe, ingress-nginx and kube-prometheus-stack
returns. No controller runs: a Deployment that is created gets no pods.

Every response carries ``X-Mlops-Standin: kube-api`` and a ``Server`` header that names
the stand-in. Faults are injected through a small admin API (no auth, loopback only)::

    GET  /_standin/                 {"standin": "kube-api", "scenarios": [...], "active": [...]}
    POST /_standin/scenario         {"name": "gpu_node_not_ready"}  (stacks on the current state)
    POST /_standin/reset            back to the seed objects

Run: ``python kube_api.py --host 127.0.0.1 --port 6443 [--token-file F [--require-token]]
[--scenario NAME]``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import datetime as dt
import hashlib
import json
import os
import queue
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

STANDIN = "kube-api"
FIXTURE = Path(__file__).with_name("kube_fixtures") / "cluster.json"
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
CLUSTER_VERBS = VERBS

# group, versions (preferred first), plural, singular, kind, namespaced, shortNames, categories
BUILTIN: list[tuple[str, list[str], str, str, str, bool, list[str], list[str]]] = [
    ("", ["v1"], "namespaces", "namespace", "Namespace", False, ["ns"], []),
    ("", ["v1"], "nodes", "node", "Node", False, ["no"], []),
    ("", ["v1"], "pods", "pod", "Pod", True, ["po"], ["all"]),
    ("", ["v1"], "services", "service", "Service", True, ["svc"], ["all"]),
    ("", ["v1"], "events", "event", "Event", True, ["ev"], []),
    ("", ["v1"], "configmaps", "configmap", "ConfigMap", True, ["cm"], []),
    ("", ["v1"], "secrets", "secret", "Secret", True, [], []),
    ("", ["v1"], "serviceaccounts", "serviceaccount", "ServiceAccount", True, ["sa"], []),
    ("", ["v1"], "endpoints", "endpoints", "Endpoints", True, ["ep"], []),
    (
        "",
        ["v1"],
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        True,
        ["pvc"],
        [],
    ),
    ("", ["v1"], "persistentvolumes", "persistentvolume", "PersistentVolume", False, ["pv"], []),
    ("apps", ["v1"], "deployments", "deployment", "Deployment", True, ["deploy"], ["all"]),
    ("apps", ["v1"], "replicasets", "replicaset", "ReplicaSet", True, ["rs"], ["all"]),
    ("apps", ["v1"], "daemonsets", "daemonset", "DaemonSet", True, ["ds"], ["all"]),
    ("apps", ["v1"], "statefulsets", "statefulset", "StatefulSet", True, ["sts"], ["all"]),
    (
        "autoscaling",
        ["v2", "v1"],
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        True,
        ["hpa"],
        ["all"],
    ),
    ("batch", ["v1"], "jobs", "job", "Job", True, [], ["all"]),
    ("batch", ["v1"], "cronjobs", "cronjob", "CronJob", True, ["cj"], ["all"]),
    ("networking.k8s.io", ["v1"], "ingresses", "ingress", "Ingress", True, ["ing"], []),
    ("networking.k8s.io", ["v1"], "ingressclasses", "ingressclass", "IngressClass", False, [], []),
    (
        "networking.k8s.io",
        ["v1"],
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        True,
        ["netpol"],
        [],
    ),
    (
        "apiextensions.k8s.io",
        ["v1"],
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        False,
        ["crd", "crds"],
        ["api-extensions"],
    ),
    ("storage.k8s.io", ["v1"], "storageclasses", "storageclass", "StorageClass", False, ["sc"], []),
    ("coordination.k8s.io", ["v1"], "leases", "lease", "Lease", True, [], []),
]
SUBRESOURCES = {
    ("", "pods"): {"log": ["get"], "status": ["get", "patch", "update"]},
    ("", "nodes"): {"status": ["get", "patch", "update"]},
    ("", "namespaces"): {"status": ["get", "patch", "update"], "finalize": ["update"]},
    ("", "services"): {"status": ["get", "patch", "update"]},
    ("apps", "deployments"): {
        "scale": ["get", "patch", "update"],
        "status": ["get", "patch", "update"],
    },
    ("apps", "replicasets"): {
        "scale": ["get", "patch", "update"],
        "status": ["get", "patch", "update"],
    },
    ("apps", "statefulsets"): {
        "scale": ["get", "patch", "update"],
        "status": ["get", "patch", "update"],
    },
    ("apps", "daemonsets"): {"status": ["get", "patch", "update"]},
    ("autoscaling", "horizontalpodautoscalers"): {"status": ["get", "patch", "update"]},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"status": ["get", "patch", "update"]},
}

POD_LOGS = {
    "nvidia-operator-validator": "all validations are successful\n",
    "nvidia-cuda-validator": "cuda workload validation is successful\n",
    "cuda-validation": "[Vector addition of 50000 elements]\nCopy input data from the host memory"
    " to the CUDA device\nCUDA kernel launch with 196 blocks of 256 threads\n"
    "Copy output data from the CUDA device to the host memory\nTest PASSED\n"
    "Done\n",
}


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


def status_obj(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    s: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure" if code >= 400 else "Success",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        s["details"] = details
    s["code"] = code
    return s


def not_found(plural: str, name: str, group: str = "") -> ApiError:
    res = f"{plural}.{group}" if group else plural
    return ApiError(
        404,
        "NotFound",
        f'{res} "{name}" not found',
        {"name": name, "group": group, "kind": plural} if group else {"name": name, "kind": plural},
    )


def now_ts() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(ts: str | None) -> dt.datetime | None:
    if not ts:
        return None
    return dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration, as kubectl shows AGE."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m" if s % 60 == 0 else f"{m}m{s % 60}s"
    if m < 180:
        return f"{m}m"
    hrs = m // 60
    if hrs < 8:
        return f"{hrs}h" if m % 60 == 0 else f"{hrs}h{m % 60}m"
    if hrs < 48:
        return f"{hrs}h"
    if hrs < 24 * 8:
        return f"{hrs // 24}d" if hrs % 24 == 0 else f"{hrs // 24}d{hrs % 24}h"
    if hrs < 24 * 365 * 2:
        return f"{hrs // 24}d"
    years = hrs // 24 // 365
    if years < 8:
        days = hrs // 24 - years * 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{years}y"


def age(obj: dict) -> str:
    t = parse_ts(obj.get("metadata", {}).get("creationTimestamp"))
    if t is None:
        return "<unknown>"
    return human_duration((dt.datetime.now(dt.UTC) - t).total_seconds())


# --------------------------------------------------------------------------- selectors

_SEL_TERM = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9_./-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<val>[A-Za-z0-9_.-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<set>[^)]*)\))?\s*$"
)


def _split_terms(s: str) -> list[str]:
    terms, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        terms.append(cur)
    return terms


def parse_label_selector(s: str) -> list[tuple[str, str, list[str]]]:
    out = []
    for term in _split_terms(s or ""):
        m = _SEL_TERM.match(term)
        if not m or (m.group("neg") and (m.group("op") or m.group("setop"))):
            raise ApiError(
                400, "BadRequest", f"unable to parse requirement: invalid label selector: {term!r}"
            )
        key = m.group("key")
        if m.group("neg"):
            out.append((key, "!exists", []))
        elif m.group("op"):
            out.append((key, "!=" if m.group("op") == "!=" else "=", [m.group("val")]))
        elif m.group("setop"):
            vals = [v.strip() for v in m.group("set").split(",") if v.strip()]
            out.append((key, m.group("setop"), vals))
        else:
            out.append((key, "exists", []))
    return out


def match_labels(labels: dict, reqs: list[tuple[str, str, list[str]]]) -> bool:
    for key, op, vals in reqs:
        has = key in labels
        v = labels.get(key)
        if (op == "exists" and not has) or (op == "!exists" and has):
            return False
        if (op == "=" and v != vals[0]) or (op == "!=" and has and v == vals[0]):
            return False
        if (op == "in" and v not in vals) or (op == "notin" and has and v in vals):
            return False
    return True


def _dotted(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def match_fields(obj: dict, selector: str) -> bool:
    for term in _split_terms(selector or ""):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise ApiError(400, "BadRequest", f"invalid field selector: {term!r}")
        path, op, val = m.groups()
        got = _dotted(obj, path)
        got_s = "" if got is None else (str(got).lower() if isinstance(got, bool) else str(got))
        if (op == "!=" and got_s == val) or (op != "!=" and got_s != val):
            return False
    return True


# --------------------------------------------------------------------------- jsonpath (CRD columns)


def jsonpath(obj: Any, expr: str) -> list[Any]:
    """The subset of JSONPath that CRD printer columns use: .a.b, [n], [*], [?(@.k==v)]."""
    tokens = re.findall(r"\.([A-Za-z0-9_-]+)|\[(\*|\d+|\?\(@\.[^)]*\))\]", expr)
    cur = [obj]
    for field, bracket in tokens:
        nxt: list[Any] = []
        for c in cur:
            if field:
                if isinstance(c, dict) and field in c:
                    nxt.append(c[field])
            elif bracket == "*":
                if isinstance(c, list):
                    nxt.extend(c)
            elif bracket.isdigit():
                if isinstance(c, list) and int(bracket) < len(c):
                    nxt.append(c[int(bracket)])
            else:
                m = re.match(r"\?\(@\.([A-Za-z0-9_.]+)\s*==\s*(.+)\)$", bracket)
                if not m or not isinstance(c, list):
                    continue
                key, raw = m.group(1), m.group(2).strip()
                want: Any = raw.strip("'\"")
                if raw in ("true", "false"):
                    want = raw == "true"
                for item in c:
                    got = _dotted(item, key)
                    if got == want or (
                        isinstance(want, str) and str(got) == want and not isinstance(got, bool)
                    ):
                        nxt.append(item)
        cur = nxt
    return cur


# --------------------------------------------------------------------------- resources


class Resource:
    def __init__(
        self,
        group: str,
        versions: list[str],
        plural: str,
        singular: str,
        kind: str,
        namespaced: bool,
        short: list[str],
        categories: list[str],
        crd: dict | None = None,
    ):
        self.group, self.versions, self.plural, self.singular = group, versions, plural, singular
        self.kind, self.namespaced, self.short, self.categories = (
            kind,
            namespaced,
            short,
            categories,
        )
        self.crd = crd

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    def api_version(self, version: str) -> str:
        return f"{self.group}/{version}" if self.group else version

    def discovery(self, version: str) -> list[dict]:
        h = base64.b64encode(
            hashlib.sha256(f"{self.group}/{version}/{self.plural}".encode()).digest()[:8]
        ).decode()
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": CLUSTER_VERBS,
        }
        if self.short:
            entry["shortNames"] = self.short
        if self.categories:
            entry["categories"] = self.categories
        entry["storageVersionHash"] = h
        out = [entry]
        subs = SUBRESOURCES.get(self.key, {})
        if self.crd:
            subs = {"status": ["get", "patch", "update"]}
        for sub, verbs in sorted(subs.items()):
            out.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": "Scale" if sub == "scale" else self.kind,
                    "verbs": verbs,
                }
                | ({"group": "autoscaling", "version": "v1"} if sub == "scale" else {})
            )
        return out


BUILTIN_RESOURCES = [Resource(*r) for r in BUILTIN]


class Store:
    """The in-memory object store; scenarios mutate it, reset reloads the fixture."""

    def __init__(self, fixture: Path = FIXTURE):
        self.fixture = fixture
        self.lock = threading.RLock()
        self.watchers: list[tuple[tuple[str, str], queue.Queue]] = []
        self.reset()

    # ---- state
    def reset(self) -> None:
        with self.lock:
            data = json.loads(self.fixture.read_text())
            self.version = data["version"]
            self.objs: dict[tuple[str, str], dict[tuple[str, str], dict]] = {}
            self.disabled_gv: set[tuple[str, str]] = set()
            self.active: list[str] = []
            self.rv = 1000
            for o in data["objects"]:
                self.rv = max(self.rv, int(o["metadata"].get("resourceVersion", "0")))
            kinds = {(r.group, r.kind): r for r in BUILTIN_RESOURCES}
            for o in data["objects"]:
                group = o["apiVersion"].rsplit("/", 1)[0] if "/" in o["apiVersion"] else ""
                res = kinds.get((group, o["kind"]))
                if res is None:
                    res = self._crd_resource_for_kind(group, o["kind"], data["objects"])
                if res is None:
                    raise ValueError(
                        f"fixture object of unknown kind {o['apiVersion']} {o['kind']}"
                    )
                self.objs.setdefault(res.key, {})[
                    (o["metadata"].get("namespace", ""), o["metadata"]["name"])
                ] = o

    def _crd_resource_for_kind(self, group: str, kind: str, objects: list[dict]) -> Resource | None:
        for o in objects:
            if (
                o["kind"] == "CustomResourceDefinition"
                and o["spec"]["group"] == group
                and o["spec"]["names"]["kind"] == kind
            ):
                return self._crd_resource(o)
        return None

    @staticmethod
    def _crd_resource(crd: dict) -> Resource:
        spec = crd["spec"]
        names = spec["names"]
        versions = [v["name"] for v in spec["versions"] if v.get("served")]
        return Resource(
            spec["group"],
            versions,
            names["plural"],
            names.get("singular", names["kind"].lower()),
            names["kind"],
            spec["scope"] == "Namespaced",
            names.get("shortNames", []),
            names.get("categories", []),
            crd=crd,
        )

    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def resources(self) -> list[Resource]:
        out = list(BUILTIN_RESOURCES)
        for crd in self.objs.get(
            ("apiextensions.k8s.io", "customresourcedefinitions"), {}
        ).values():
            out.append(self._crd_resource(crd))
        return out

    def served(self) -> dict[str, list[str]]:
        """group -> served versions (preferred first), honouring disabled group versions."""
        groups: dict[str, list[str]] = {}
        for r in self.resources():
            for v in r.versions:
                if (r.group, v) in self.disabled_gv:
                    continue
                vs = groups.setdefault(r.group, [])
                if v not in vs:
                    vs.append(v)
        return {g: vs for g, vs in groups.items() if vs}

    def resource(self, group: str, version: str, plural: str) -> Resource:
        if version not in self.served().get(group, []):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        for r in self.resources():
            if r.group == group and r.plural == plural and version in r.versions:
                return r
        raise ApiError(404, "NotFound", "the server could not find the requested resource", {})

    # ---- watch fan-out
    def notify(self, key: tuple[str, str], etype: str, obj: dict) -> None:
        for wkey, q in list(self.watchers):
            if wkey == key:
                q.put((etype, copy.deepcopy(obj)))

    # ---- object access
    def bucket(self, res: Resource) -> dict[tuple[str, str], dict]:
        return self.objs.setdefault(res.key, {})

    def find(self, group: str, plural: str, ns: str, name: str) -> dict | None:
        return self.objs.get((group, plural), {}).get((ns, name))

    def all(self, group: str, plural: str) -> list[dict]:
        return list(self.objs.get((group, plural), {}).values())

    # ---- scenarios
    SCENARIOS = [
        "gpu_node_not_ready",
        "no_gpu_label",
        "kserve_old_version",
        "kserve_crd_missing",
        "isvc_not_ready",
        "namespace_missing:<ns>",
        "old_kubernetes",
        "validator_failed",
        "no_ingressclass",
        "hpa_not_served",
    ]

    def apply_scenario(self, name: str) -> None:
        with self.lock:
            base, _, arg = name.partition(":")
            fn = getattr(self, f"_sc_{base}", None)
            if fn is None or (base == "namespace_missing") != bool(arg):
                raise ApiError(
                    400,
                    "BadRequest",
                    f"unknown scenario {name!r}; known: {', '.join(self.SCENARIOS)}",
                )
            fn(arg) if arg else fn()
            self.active.append(name)

    def _touch(self, obj: dict) -> None:
        obj["metadata"]["resourceVersion"] = self.next_rv()

    def _sc_gpu_node_not_ready(self) -> None:
        n = self.find("", "nodes", "", "k8s-gpu-02")
        if n is None:
            return
        for c in n["status"]["conditions"]:
            if c["type"] == "Ready":
                c.update(
                    status="False",
                    reason="KubeletNotReady",
                    message="container runtime network not ready: NetworkReady=false "
                    "reason:NetworkPluginNotReady message:Network plugin returns "
                    "error: cni plugin not initialized",
                    lastTransitionTime=now_ts(),
                )
        n["spec"]["taints"] = [
            {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule", "timeAdded": now_ts()}
        ]
        self._touch(n)

    def _sc_no_gpu_label(self) -> None:
        for n in self.all("", "nodes"):
            labels = n["metadata"].get("labels", {})
            for k in [k for k in labels if k.startswith("nvidia.com/")]:
                del labels[k]
            self._touch(n)

    def _sc_kserve_old_version(self) -> None:
        old = "v0.10.0"
        for group, plural in [("apps", "deployments"), ("apps", "replicasets"), ("", "pods")]:
            for o in self.all(group, plural):
                if o["metadata"].get("namespace") != "kserve":
                    continue
                text = json.dumps(o).replace(
                    "kserve-controller:v0.13.0", f"kserve-controller:{old}"
                )
                text = text.replace(
                    '"app.kubernetes.io/version": "v0.13.0"',
                    f'"app.kubernetes.io/version": "{old}"',
                )
                text = text.replace(
                    '"helm.sh/chart": "kserve-v0.13.0"', f'"helm.sh/chart": "kserve-{old}"'
                )
                o.clear()
                o.update(json.loads(text))
                self._touch(o)

    def _sc_kserve_crd_missing(self) -> None:
        crds = self.objs.get(("apiextensions.k8s.io", "customresourcedefinitions"), {})
        for key, crd in list(crds.items()):
            if crd["spec"]["group"] == "serving.kserve.io":
                del crds[key]
                self.objs.pop(("serving.kserve.io", crd["spec"]["names"]["plural"]), None)

    def _sc_isvc_not_ready(self) -> None:
        isvc = self.find("serving.kserve.io", "inferenceservices", "production", "mnist")
        if isvc is None:
            return
        ts = now_ts()
        msg = (
            'Revision "mnist-predictor-00001" failed with message: Container failed with: '
            "storage-initializer: failed to download s3://models/mnist/v1: NoSuchKey: "
            "The specified key does not exist."
        )
        isvc["status"]["conditions"] = [
            {"lastTransitionTime": ts, "status": "True", "type": "IngressReady"},
            {
                "lastTransitionTime": ts,
                "message": msg,
                "reason": "RevisionFailed",
                "severity": "Info",
                "status": "False",
                "type": "PredictorReady",
            },
            {
                "lastTransitionTime": ts,
                "message": msg,
                "reason": "RevisionFailed",
                "status": "False",
                "type": "Ready",
            },
        ]
        isvc["status"]["modelStatus"] = {
            "copies": {"failedCopies": 1, "totalCopies": 0},
            "lastFailureInfo": {"message": msg, "reason": "ModelLoadFailed"},
            "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
            "transitionStatus": "BlockedByFailedLoad",
        }
        self._touch(isvc)

    def _sc_namespace_missing(self, ns: str) -> None:
        self._delete_namespace(ns)

    def _delete_namespace(self, ns: str) -> None:
        for key, bucket in self.objs.items():
            for okey in [k for k in bucket if k[0] == ns]:
                obj = bucket.pop(okey)
                self.notify(key, "DELETED", obj)
        nss = self.objs.get(("", "namespaces"), {})
        obj = nss.pop(("", ns), None)
        if obj:
            self.notify(("", "namespaces"), "DELETED", obj)

    def _sc_old_kubernetes(self) -> None:
        self.version.update(
            minor="26",
            gitVersion="v1.26.3",
            gitCommit="9e644106593f3f4aa98f8a84b23db5fa378900bd",
            buildDate="2023-03-15T13:33:12Z",
            goVersion="go1.19.7",
        )
        for n in self.all("", "nodes"):
            n["status"]["nodeInfo"]["kubeletVersion"] = "v1.26.3"
            n["status"]["nodeInfo"]["kubeProxyVersion"] = "v1.26.3"
            self._touch(n)

    def _sc_validator_failed(self) -> None:
        node = "k8s-gpu-02"
        ts = now_ts()
        for p in self.all("", "pods"):
            if (
                p["metadata"].get("namespace") != "gpu-operator"
                or p["spec"].get("nodeName") != node
            ):
                continue
            app = p["metadata"].get("labels", {}).get("app")
            if app == "nvidia-cuda-validator":
                p["status"]["phase"] = "Failed"
                for cs in p["status"].get("initContainerStatuses", []):
                    cs["state"] = {
                        "terminated": {
                            "exitCode": 1,
                            "reason": "Error",
                            "startedAt": ts,
                            "finishedAt": ts,
                            "message": "Failed to allocate device vector A"
                            " (error code no CUDA-capable device"
                            " is detected)!",
                        }
                    }
                for cs in p["status"].get("containerStatuses", []):
                    cs["state"] = {"waiting": {"reason": "PodInitializing"}}
                    cs["ready"] = False
                for c in p["status"]["conditions"]:
                    if c["type"] in ("Initialized", "Ready", "ContainersReady"):
                        c.update(
                            status="False",
                            reason="ContainersNotInitialized"
                            if c["type"] == "Initialized"
                            else "ContainersNotReady",
                        )
                self._touch(p)
            elif app == "nvidia-operator-validator":
                p["status"]["phase"] = "Pending"
                for cs in p["status"].get("initContainerStatuses", []):
                    if cs["name"] == "cuda-validation":
                        cs["lastState"] = {
                            "terminated": {
                                "exitCode": 1,
                                "reason": "Error",
                                "startedAt": ts,
                                "finishedAt": ts,
                            }
                        }
                        cs["state"] = {
                            "waiting": {
                                "reason": "CrashLoopBackOff",
                                "message": "back-off 5m0s restarting failed "
                                "container=cuda-validation",
                            }
                        }
                        cs["restartCount"] = 7
                        cs["ready"] = False
                    elif cs["name"] == "plugin-validation":
                        cs["state"] = {"waiting": {"reason": "PodInitializing"}}
                        cs["ready"] = False
                for cs in p["status"].get("containerStatuses", []):
                    cs.update(
                        ready=False, started=False, state={"waiting": {"reason": "PodInitializing"}}
                    )
                for c in p["status"]["conditions"]:
                    if c["type"] in ("Initialized", "Ready", "ContainersReady"):
                        c.update(
                            status="False",
                            reason="ContainersNotInitialized"
                            if c["type"] == "Initialized"
                            else "ContainersNotReady",
                        )
                self._touch(p)
        ds = self.find("apps", "daemonsets", "gpu-operator", "nvidia-operator-validator")
        if ds:
            ds["status"].update(numberReady=1, numberAvailable=1, numberUnavailable=1)
            self._touch(ds)
        cp = self.find("nvidia.com", "clusterpolicies", "", "cluster-policy")
        if cp:
            # as gpu-operator's controller writes it (SetConditionsError, OperandNotReady)
            cp["status"]["state"] = "notReady"
            cp["status"]["conditions"] = [
                {
                    "lastTransitionTime": ts,
                    "message": "",
                    "reason": "Error",
                    "status": "False",
                    "type": "Ready",
                },
                {
                    "lastTransitionTime": ts,
                    "message": "ClusterPolicy is not ready, states not ready: "
                    "[state-operator-validation]",
                    "reason": "OperandNotReady",
                    "status": "True",
                    "type": "Error",
                },
            ]
            self._touch(cp)

    def _sc_no_ingressclass(self) -> None:
        self.objs.get(("networking.k8s.io", "ingressclasses"), {}).clear()

    def _sc_hpa_not_served(self) -> None:
        self.disabled_gv.add(("autoscaling", "v2"))


# --------------------------------------------------------------------------- tables


def _cell_ready_pod(p: dict) -> tuple[str, str, int]:
    """kubectl's pod READY / STATUS / RESTARTS logic (printers.printPod)."""
    spec, st = p.get("spec", {}), p.get("status", {})
    total = len(spec.get("containers", []))
    ready = 0
    restarts = 0
    reason = st.get("reason") or st.get("phase", "Unknown")
    initializing = False
    inits = spec.get("initContainers", [])
    for i, cs in enumerate(st.get("initContainerStatuses", [])):
        restarts += cs.get("restartCount", 0)
        state = cs.get("state", {})
        term, wait = state.get("terminated"), state.get("waiting")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + (term.get("reason") or f"ExitCode:{term.get('exitCode')}")
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(inits)}"
        initializing = True
        break
    if not initializing:
        restarts = 0
        has_running = False
        for cs in reversed(st.get("containerStatuses", [])):
            restarts += cs.get("restartCount", 0)
            state = cs.get("state", {})
            if state.get("waiting", {}).get("reason"):
                reason = state["waiting"]["reason"]
            elif state.get("terminated", {}).get("reason"):
                reason = state["terminated"]["reason"]
            elif "terminated" in state:
                reason = f"ExitCode:{state['terminated'].get('exitCode')}"
            elif cs.get("ready") and "running" in state:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running"
    if p.get("metadata", {}).get("deletionTimestamp"):
        reason = "Terminating"
    return f"{ready}/{total}", reason, restarts


def _node_status(n: dict) -> str:
    ready = next(
        (c for c in n.get("status", {}).get("conditions", []) if c["type"] == "Ready"), None
    )
    s = (
        "Unknown"
        if ready is None
        else {"True": "Ready", "False": "NotReady"}.get(ready["status"], "Unknown")
    )
    if n.get("spec", {}).get("unschedulable"):
        s += ",SchedulingDisabled"
    return s


def _roles(n: dict) -> str:
    labels = n.get("metadata", {}).get("labels", {})
    roles = sorted(
        k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k
    )
    if labels.get("kubernetes.io/role"):
        roles.append(labels["kubernetes.io/role"])
    return ",".join(roles) or "<none>"


def _svc_ports(s: dict) -> str:
    out = []
    for p in s.get("spec", {}).get("ports", []):
        txt = str(p["port"])
        if p.get("nodePort"):
            txt += f":{p['nodePort']}"
        out.append(f"{txt}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _selector_str(sel: dict | None) -> str:
    if not sel:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(sel.items()))


def _hpa_targets(h: dict) -> str:
    out = []
    cur = {
        m.get("resource", {}).get("name"): m
        for m in h.get("status", {}).get("currentMetrics", []) or []
    }
    for m in h.get("spec", {}).get("metrics", []) or []:
        if m.get("type") == "Resource":
            name = m["resource"]["name"]
            target = m["resource"]["target"]
            want = (
                f"{target.get('averageUtilization')}%"
                if "averageUtilization" in target
                else target.get("averageValue", "<unset>")
            )
            got = cur.get(name, {}).get("resource", {}).get("current", {})
            have = f"{got['averageUtilization']}%" if "averageUtilization" in got else "<unknown>"
            out.append(f"{name}: {have}/{want}")
    return ", ".join(out) or "<none>"


def _col(name: str, typ: str = "string", priority: int = 0, fmt: str = "", desc: str = "") -> dict:
    return {
        "name": name,
        "type": typ,
        "format": fmt,
        "description": desc or name,
        "priority": priority,
    }


NAME_COL = _col("Name", fmt="name", desc="Name must be unique within a namespace.")
AGE_COL = _col(
    "Age",
    desc="CreationTimestamp is a timestamp representing the server time when "
    "this object was created.",
)


def table_for(res: Resource, version: str, objs: list[dict]) -> tuple[list[dict], list[list]]:
    key = res.key
    if key == ("", "pods"):
        cols = [
            NAME_COL,
            _col("Ready"),
            _col("Status"),
            _col("Restarts", "string"),
            AGE_COL,
            _col("IP", priority=1),
            _col("Node", priority=1),
            _col("Nominated Node", priority=1),
            _col("Readiness Gates", priority=1),
        ]
        rows = []
        for p in objs:
            ready, status, restarts = _cell_ready_pod(p)
            rows.append(
                [
                    p["metadata"]["name"],
                    ready,
                    status,
                    str(restarts),
                    age(p),
                    p.get("status", {}).get("podIP", "<none>"),
                    p.get("spec", {}).get("nodeName", "<none>"),
                    "<none>",
                    "<none>",
                ]
            )
        return cols, rows
    if key == ("", "nodes"):
        cols = [
            NAME_COL,
            _col("Status"),
            _col("Roles"),
            AGE_COL,
            _col("Version"),
            _col("Internal-IP", priority=1),
            _col("External-IP", priority=1),
            _col("OS-Image", priority=1),
            _col("Kernel-Version", priority=1),
            _col("Container-Runtime", priority=1),
        ]
        rows = []
        for n in objs:
            addrs = {a["type"]: a["address"] for a in n.get("status", {}).get("addresses", [])}
            info = n.get("status", {}).get("nodeInfo", {})
            rows.append(
                [
                    n["metadata"]["name"],
                    _node_status(n),
                    _roles(n),
                    age(n),
                    info.get("kubeletVersion", ""),
                    addrs.get("InternalIP", "<none>"),
                    addrs.get("ExternalIP", "<none>"),
                    info.get("osImage", ""),
                    info.get("kernelVersion", ""),
                    info.get("containerRuntimeVersion", ""),
                ]
            )
        return cols, rows
    if key == ("", "namespaces"):
        return [NAME_COL, _col("Status"), AGE_COL], [
            [o["metadata"]["name"], o.get("status", {}).get("phase", ""), age(o)] for o in objs
        ]
    if key == ("", "services"):
        cols = [
            NAME_COL,
            _col("Type"),
            _col("Cluster-IP"),
            _col("External-IP"),
            _col("Port(s)"),
            AGE_COL,
            _col("Selector", priority=1),
        ]
        return cols, [
            [
                o["metadata"]["name"],
                o["spec"].get("type", "ClusterIP"),
                o["spec"].get("clusterIP", "<none>"),
                ",".join(
                    i.get("ip", i.get("hostname", ""))
                    for i in o.get("status", {}).get("loadBalancer", {}).get("ingress", [])
                )
                or "<none>",
                _svc_ports(o),
                age(o),
                _selector_str(o["spec"].get("selector")),
            ]
            for o in objs
        ]
    if key == ("apps", "deployments"):
        cols = [
            NAME_COL,
            _col("Ready"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            AGE_COL,
            _col("Containers", priority=1),
            _col("Images", priority=1),
            _col("Selector", priority=1),
        ]
        rows = []
        for o in objs:
            st, cs = o.get("status", {}), o["spec"]["template"]["spec"]["containers"]
            rows.append(
                [
                    o["metadata"]["name"],
                    f"{st.get('readyReplicas', 0)}/{o['spec'].get('replicas', 1)}",
                    st.get("updatedReplicas", 0),
                    st.get("availableReplicas", 0),
                    age(o),
                    ",".join(c["name"] for c in cs),
                    ",".join(c["image"] for c in cs),
                    _selector_str(o["spec"].get("selector", {}).get("matchLabels")),
                ]
            )
        return cols, rows
    if key == ("apps", "daemonsets"):
        cols = [
            NAME_COL,
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            _col("Up-to-date", "integer"),
            _col("Available", "integer"),
            _col("Node Selector"),
            AGE_COL,
        ]
        return cols, [
            [
                o["metadata"]["name"],
                o["status"].get("desiredNumberScheduled", 0),
                o["status"].get("currentNumberScheduled", 0),
                o["status"].get("numberReady", 0),
                o["status"].get("updatedNumberScheduled", 0),
                o["status"].get("numberAvailable", 0),
                _selector_str(o["spec"]["template"]["spec"].get("nodeSelector")),
                age(o),
            ]
            for o in objs
        ]
    if key == ("apps", "replicasets"):
        cols = [
            NAME_COL,
            _col("Desired", "integer"),
            _col("Current", "integer"),
            _col("Ready", "integer"),
            AGE_COL,
        ]
        return cols, [
            [
                o["metadata"]["name"],
                o["spec"].get("replicas", 0),
                o["status"].get("replicas", 0),
                o["status"].get("readyReplicas", 0),
                age(o),
            ]
            for o in objs
        ]
    if key == ("apps", "statefulsets"):
        return [NAME_COL, _col("Ready"), AGE_COL], [
            [
                o["metadata"]["name"],
                f"{o['status'].get('readyReplicas', 0)}/{o['spec'].get('replicas', 1)}",
                age(o),
            ]
            for o in objs
        ]
    if key == ("autoscaling", "horizontalpodautoscalers"):
        cols = [
            NAME_COL,
            _col("Reference"),
            _col("Targets"),
            _col("MinPods", "integer"),
            _col("MaxPods", "integer"),
            _col("Replicas", "integer"),
            AGE_COL,
        ]
        return cols, [
            [
                o["metadata"]["name"],
                f"{o['spec']['scaleTargetRef']['kind']}/{o['spec']['scaleTargetRef']['name']}",
                _hpa_targets(o),
                o["spec"].get("minReplicas", 1),
                o["spec"]["maxReplicas"],
                o.get("status", {}).get("currentReplicas", 0),
                age(o),
            ]
            for o in objs
        ]
    if key == ("networking.k8s.io", "ingresses"):
        cols = [NAME_COL, _col("Class"), _col("Hosts"), _col("Address"), _col("Ports"), AGE_COL]
        return cols, [
            [
                o["metadata"]["name"],
                o["spec"].get("ingressClassName", "<none>"),
                ",".join(r.get("host", "*") for r in o["spec"].get("rules", [])),
                ",".join(
                    i.get("ip", "")
                    for i in o.get("status", {}).get("loadBalancer", {}).get("ingress", [])
                ),
                "443" if o["spec"].get("tls") else "80",
                age(o),
            ]
            for o in objs
        ]
    if key == ("networking.k8s.io", "ingressclasses"):
        return [NAME_COL, _col("Controller"), _col("Parameters"), AGE_COL], [
            [o["metadata"]["name"], o["spec"].get("controller", ""), "<none>", age(o)] for o in objs
        ]
    if key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        return [NAME_COL, _col("Created At", "date")], [
            [o["metadata"]["name"], o["metadata"].get("creationTimestamp", "")] for o in objs
        ]
    if key == ("", "events"):
        cols = [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")]
        return cols, [
            [
                age(o),
                o.get("type", ""),
                o.get("reason", ""),
                f"{o.get('involvedObject', {}).get('kind', '').lower()}/"
                f"{o.get('involvedObject', {}).get('name', '')}",
                o.get("message", ""),
            ]
            for o in objs
        ]
    if res.crd:
        ver = next((v for v in res.crd["spec"]["versions"] if v["name"] == version), {})
        pcols = ver.get("additionalPrinterColumns", [])
        if not pcols:
            return [NAME_COL, AGE_COL], [[o["metadata"]["name"], age(o)] for o in objs]
        cols = [NAME_COL] + [
            _col(
                c["name"],
                c.get("type", "string"),
                c.get("priority", 0),
                desc=c.get("description", ""),
            )
            for c in pcols
        ]
        rows = []
        for o in objs:
            row: list[Any] = [o["metadata"]["name"]]
            for c in pcols:
                vals = jsonpath(o, c["jsonPath"])
                if c.get("type") == "date" and vals:
                    t = parse_ts(vals[0])
                    row.append(
                        human_duration((dt.datetime.now(dt.UTC) - t).total_seconds()) if t else None
                    )
                elif not vals:
                    row.append(None)
                elif len(vals) == 1 and not isinstance(vals[0], (dict, list)):
                    row.append(vals[0])
                else:
                    row.append(
                        ",".join(
                            json.dumps(v) if isinstance(v, (dict, list)) else str(v) for v in vals
                        )
                    )
            rows.append(row)
        return cols, rows
    return [NAME_COL, AGE_COL], [[o["metadata"]["name"], age(o)] for o in objs]


def to_table(res: Resource, version: str, objs: list[dict], rv: str, include: str) -> dict:
    cols, rows = table_for(res, version, objs)
    out_rows = []
    for o, cells in zip(objs, rows, strict=True):
        if include == "None":
            ro = None
        elif include == "Object":
            ro = o
        else:
            ro = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": o["metadata"],
            }
        row: dict[str, Any] = {"cells": cells}
        if ro is not None:
            row["object"] = ro
        out_rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": cols,
        "rows": out_rows,
    }


# --------------------------------------------------------------------------- patch helpers


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def json_patch(doc: Any, ops: list[dict]) -> Any:
    doc = copy.deepcopy(doc)

    def walk(path: str) -> tuple[Any, str]:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        cur = doc
        for p in parts[:-1]:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur, parts[-1]

    for op in ops:
        parent, last = walk(op["path"])
        kind = op["op"]
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                idx = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(idx, op["value"])
                else:
                    parent[idx] = op["value"]
            else:
                if kind == "replace" and last not in parent:
                    raise ApiError(
                        422,
                        "Invalid",
                        f"replace operation does not apply: doc is missing key: {op['path']}",
                    )
                parent[last] = op["value"]
        elif kind == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                parent.pop(last)
        elif kind == "test":
            got = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if got != op["value"]:
                raise ApiError(422, "Invalid", f"testing value {op['path']} failed")
        else:
            raise ApiError(415, "UnsupportedMediaType", f"json patch op {kind} not supported")
    return doc


# --------------------------------------------------------------------------- HTTP


class Handler(BaseHTTPRequestHandler):
    server_version = "mlops-standin-kube-api/1.0 (stand-in, not a real kube-apiserver)"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    protocol_version = "HTTP/1.1"
    store: Store
    token: str | None = None
    require_token: bool = False

    def _authenticate(self) -> None:
        """A wrong bearer token is refused (401). A missing one is refused only with
        --require-token: kubectl never sends user credentials over plain http (client-go
        loads them for TLS transports only), so the sandbox runs anonymous-allowed."""
        if not self.token:
            return
        auth = self.headers.get("Authorization")
        if auth is None and not self.require_token:
            return
        if auth != f"Bearer {self.token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")

    # ---- plumbing
    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.log_date_time_string()} kube-api {format % args}\n")

    def _headers(self, code: int, ctype: str, length: int | None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("X-Mlops-Standin", STANDIN)
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send_json(self, code: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self._headers(code, "application/json", len(body))
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_text(self, code: int, text: str) -> None:
        body = text.encode()
        self._headers(code, "text/plain; charset=utf-8", len(body))
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(
                400,
                "BadRequest",
                f"the request body is not JSON (the stand-in speaks JSON only): {exc}",
            ) from exc

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if path.startswith("/_standin"):
                return self._admin(path, q)
            if path in ("/healthz", "/livez", "/readyz"):
                return self._send_text(200, "ok")
            if path == "/version":
                return self._send_json(200, self.store.version)
            self._authenticate()
            with self.store.lock:
                result = self._route(path, q)
            if result is not None:
                code, obj = result
                if isinstance(obj, str):
                    return self._send_text(code, obj)
                return self._send_json(code, obj)
        except ApiError as e:
            return self._send_json(e.code, status_obj(e.code, e.reason, e.message, e.details))
        except (KeyError, ValueError, TypeError, IndexError) as e:
            return self._send_json(400, status_obj(400, "BadRequest", f"bad request: {e!r}"))
        return None

    # ---- admin
    def _admin(self, path: str, q: dict) -> None:
        st = self.store
        if path in ("/_standin", "/_standin/health") and self.command == "GET":
            return self._send_json(
                200,
                {
                    "standin": STANDIN,
                    "pid": os.getpid(),
                    "scenarios": st.SCENARIOS,
                    "active": st.active,
                    "version": st.version["gitVersion"],
                },
            )
        if path == "/_standin/reset" and self.command == "POST":
            self._body()
            st.reset()
            return self._send_json(200, {"standin": STANDIN, "active": st.active})
        if path == "/_standin/scenario" and self.command == "POST":
            body = self._body() or {}
            name = body.get("name") or q.get("name")
            if not name:
                raise ApiError(400, "BadRequest", 'POST {"name": "<scenario>"}')
            st.apply_scenario(name)
            return self._send_json(200, {"standin": STANDIN, "active": st.active})
        raise ApiError(404, "NotFound", f"no stand-in admin endpoint {self.command} {path}", {})

    # ---- discovery and resources
    def _route(self, path: str, q: dict) -> tuple[int, Any] | None:
        st = self.store
        segs = [s for s in path.split("/") if s]
        served = st.served()
        if segs == ["api"]:
            return 200, {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "192.168.200.10:6443"}
                ],
            }
        if segs == ["apis"]:
            return 200, {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [self._group(g, vs) for g, vs in sorted(served.items()) if g],
            }
        if len(segs) == 2 and segs[0] == "apis":
            if segs[1] not in served:
                raise ApiError(
                    404, "NotFound", "the server could not find the requested resource", {}
                )
            return 200, self._group(segs[1], served[segs[1]]) | {
                "kind": "APIGroup",
                "apiVersion": "v1",
            }
        if segs[:1] == ["api"] and len(segs) >= 2:
            group, version, rest = "", segs[1], segs[2:]
        elif segs[:1] == ["apis"] and len(segs) >= 3:
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if version not in served.get(group, []):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        gv = f"{group}/{version}" if group else version
        if not rest:
            res = [
                e
                for r in st.resources()
                if r.group == group and version in r.versions
                for e in r.discovery(version)
            ]
            return 200, {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": gv,
                "resources": res,
            }
        ns = ""
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            ns, rest = rest[1], rest[2:]
        plural, name, sub = (
            rest[0],
            rest[1] if len(rest) > 1 else "",
            rest[2] if len(rest) > 2 else "",
        )
        if len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        r = st.resource(group, version, plural)
        if ns and not r.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if sub and sub not in (SUBRESOURCES.get(r.key, {}) if not r.crd else {"status": []}):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        m = self.command
        if m in ("GET", "HEAD") and not name:
            if q.get("watch", "").lower() in ("true", "1"):
                self._watch(r, version, ns, q)
                return None
            return 200, self._list(r, version, ns, q)
        if m in ("GET", "HEAD"):
            obj = self._get(r, version, ns, name)
            if sub == "log":
                return 200, self._log(obj, q)
            if sub == "scale":
                return 200, self._scale(obj)
            return 200, self._maybe_table(r, version, [obj], single=True)
        if m == "POST" and not name:
            return self._create(r, version, ns, self._body(), q)
        if m == "PUT" and name:
            return self._replace(r, version, ns, name, self._body(), q)
        if m == "PATCH" and name:
            return self._patch(r, version, ns, name, q)
        if m == "DELETE" and name:
            return self._delete(r, version, ns, name, q)
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource "
            "(the stand-in supports get, list, watch, create, update, patch, "
            "delete)",
            {},
        )

    @staticmethod
    def _group(g: str, vs: list[str]) -> dict:
        versions = [{"groupVersion": f"{g}/{v}", "version": v} for v in vs]
        return {"name": g, "versions": versions, "preferredVersion": versions[0]}

    def _out(self, r: Resource, version: str, obj: dict) -> dict:
        out = copy.deepcopy(obj)
        out["apiVersion"] = r.api_version(version)
        out["kind"] = r.kind
        if r.key == ("", "nodes"):
            # A live kubelet posts its status every few seconds: keep heartbeats fresh.
            beat = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=17)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
            for c in out.get("status", {}).get("conditions", []):
                c["lastHeartbeatTime"] = beat
        return out

    def _maybe_table(
        self,
        r: Resource,
        version: str,
        objs: list[dict],
        single: bool = False,
        rv: str | None = None,
    ) -> dict:
        if "as=Table" in (self.headers.get("Accept") or ""):
            include = "Metadata"
            q = parse_qs(urlsplit(self.path).query)
            if "includeObject" in q:
                include = q["includeObject"][-1]
            return to_table(r, version, objs, rv or str(self.store.rv), include)
        if single:
            return objs[0]
        return {
            "kind": f"{r.kind}List",
            "apiVersion": r.api_version(version),
            "metadata": {"resourceVersion": rv or str(self.store.rv)},
            "items": objs,
        }

    def _select(self, r: Resource, version: str, ns: str, q: dict) -> list[dict]:
        reqs = parse_label_selector(q.get("labelSelector", ""))
        fsel = q.get("fieldSelector", "")
        out = []
        for (ons, _), obj in sorted(self.store.bucket(r).items()):
            if ns and ons != ns:
                continue
            if not match_labels(obj["metadata"].get("labels") or {}, reqs):
                continue
            o = self._out(r, version, obj)
            if fsel and not match_fields(o, fsel):
                continue
            out.append(o)
        return out

    def _list(self, r: Resource, version: str, ns: str, q: dict) -> dict:
        return self._maybe_table(r, version, self._select(r, version, ns, q))

    def _get(self, r: Resource, version: str, ns: str, name: str) -> dict:
        obj = self.store.bucket(r).get((ns if r.namespaced else "", name))
        if obj is None:
            raise not_found(r.plural, name, r.group)
        return self._out(r, version, obj)

    def _log(self, pod: dict, q: dict) -> str:
        names = [
            c["name"]
            for c in pod["spec"].get("initContainers", []) + pod["spec"].get("containers", [])
        ]
        cname = q.get("container") or pod["spec"]["containers"][0]["name"]
        if cname not in names:
            raise ApiError(
                400,
                "BadRequest",
                f"container {cname} is not valid for pod {pod['metadata']['name']}",
            )
        return POD_LOGS.get(
            cname,
            f"[mlops stand-in] no log recorded for container {cname} of "
            f"pod {pod['metadata']['name']}\n",
        )

    @staticmethod
    def _scale(obj: dict) -> dict:
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: obj["metadata"][k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in obj["metadata"]
            },
            "spec": {"replicas": obj["spec"].get("replicas", 0)},
            "status": {
                "replicas": obj.get("status", {}).get("replicas", 0),
                "selector": _selector_str(
                    obj["spec"].get("selector", {}).get("matchLabels")
                ).replace("<none>", ""),
            },
        }

    def _check_ns(self, r: Resource, ns: str) -> None:
        if r.namespaced and not self.store.find("", "namespaces", "", ns):
            raise not_found("namespaces", ns)

    def _create(self, r: Resource, version: str, ns: str, body: Any, q: dict) -> tuple[int, dict]:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        if body.get("kind") and body["kind"] != r.kind:
            raise ApiError(
                400,
                "BadRequest",
                f"the API version in the data "
                f"({body.get('apiVersion')}) does not match the expected API version "
                f"({r.api_version(version)})",
            )
        md = body.setdefault("metadata", {})
        if r.namespaced:
            ns = ns or md.get("namespace") or "default"
            if md.get("namespace") and md["namespace"] != ns:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not "
                    "match the namespace sent on the request",
                )
            md["namespace"] = ns
            self._check_ns(r, ns)
        else:
            md.pop("namespace", None)
        if not md.get("name"):
            if md.get("generateName"):
                md["name"] = md["generateName"] + uuid.uuid4().hex[:5]
            else:
                raise ApiError(
                    422,
                    "Invalid",
                    f'{r.kind} "" is invalid: metadata.name: '
                    f"Required value: name or generateName is required",
                )
        key = (ns if r.namespaced else "", md["name"])
        if key in self.store.bucket(r):
            raise ApiError(
                409,
                "AlreadyExists",
                f'{r.plural}{"." + r.group if r.group else ""} "{md["name"]}" already exists',
                {"name": md["name"], "group": r.group, "kind": r.plural},
            )
        md.update(
            uid=str(uuid.uuid4()), resourceVersion=self.store.next_rv(), creationTimestamp=now_ts()
        )
        if r.group or r.plural not in ("namespaces", "pods", "services"):
            md.setdefault("generation", 1)
        obj = self._out(r, version, body)
        if r.key == ("", "namespaces"):
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = md["name"]
        if "dryRun" not in q:
            self.store.bucket(r)[key] = obj
            self.store.notify(r.key, "ADDED", obj)
        return 201, obj

    def _replace(
        self, r: Resource, version: str, ns: str, name: str, body: Any, q: dict
    ) -> tuple[int, dict]:
        cur = self._get(r, version, ns, name)
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the request body must be a JSON object")
        rv = body.get("metadata", {}).get("resourceVersion")
        if rv and rv != cur["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {r.plural} "{name}": the object has '
                f"been modified; please apply your changes to the latest version and "
                f"try again",
                {"name": name, "group": r.group, "kind": r.plural},
            )
        return self._store_update(r, version, ns, name, cur, body, q)

    def _store_update(
        self, r: Resource, version: str, ns: str, name: str, cur: dict, new: dict, q: dict
    ) -> tuple[int, dict]:
        new = self._out(r, version, new)
        md = new.setdefault("metadata", {})
        for k in ("uid", "creationTimestamp", "name"):
            md[k] = cur["metadata"][k]
        if r.namespaced:
            md["namespace"] = ns
        if "generation" in cur["metadata"]:
            md["generation"] = cur["metadata"]["generation"] + (
                1 if new.get("spec") != cur.get("spec") else 0
            )
        md["resourceVersion"] = self.store.next_rv()
        if "dryRun" not in q:
            self.store.bucket(r)[(ns if r.namespaced else "", name)] = new
            self.store.notify(r.key, "MODIFIED", new)
        return 200, new

    def _patch(self, r: Resource, version: str, ns: str, name: str, q: dict) -> tuple[int, dict]:
        cur = self._get(r, version, ns, name)
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        body = self._body()
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            new = merge_patch(cur, body)
        elif ctype == "application/json-patch+json":
            new = json_patch(cur, body)
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media "
                f"types include: application/json-patch+json, "
                f"application/merge-patch+json, application/strategic-merge-patch+json"
                f" (the stand-in has no server-side apply; got {ctype!r})",
            )
        return self._store_update(r, version, ns, name, cur, new, q)

    def _delete(self, r: Resource, version: str, ns: str, name: str, q: dict) -> tuple[int, dict]:
        obj = self._get(r, version, ns, name)
        if "dryRun" in q:
            return 200, obj
        if r.key == ("", "namespaces"):
            self.store._delete_namespace(name)
            obj["status"] = {"phase": "Terminating"}
            obj["metadata"]["deletionTimestamp"] = now_ts()
            return 200, obj
        del self.store.bucket(r)[(ns if r.namespaced else "", name)]
        if r.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self.store.objs.pop((obj["spec"]["group"], obj["spec"]["names"]["plural"]), None)
        self.store.notify(r.key, "DELETED", obj)
        return 200, obj

    def _watch(self, r: Resource, version: str, ns: str, q: dict) -> None:
        """A real (chunked, JSON lines) watch: initial ADDED events, then live changes."""
        timeout = min(float(q.get("timeoutSeconds") or 60), 300.0)
        qq: queue.Queue = queue.Queue()
        initial = (
            []
            if q.get("resourceVersion") not in (None, "", "0")
            else self._select(r, version, ns, q)
        )
        self.store.watchers.append((r.key, qq))
        self.store.lock.release()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Mlops-Standin", STANDIN)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            reqs = parse_label_selector(q.get("labelSelector", ""))

            def chunk(data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            for o in initial:
                chunk(json.dumps({"type": "ADDED", "object": o}).encode() + b"\n")
            deadline = time.monotonic() + timeout
            while (left := deadline - time.monotonic()) > 0:
                try:
                    etype, obj = qq.get(timeout=min(left, 1.0))
                except queue.Empty:
                    continue
                if ns and obj["metadata"].get("namespace") != ns:
                    continue
                if not match_labels(obj["metadata"].get("labels") or {}, reqs):
                    continue
                chunk(
                    json.dumps({"type": etype, "object": self._out(r, version, obj)}).encode()
                    + b"\n"
                )
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self.store.lock.acquire()
            self.store.watchers.remove((r.key, qq))
        self.close_connection = True


def make_server(
    host: str,
    port: int,
    *,
    token: str | None = None,
    require_token: bool = False,
    fixture: Path = FIXTURE,
    scenarios: list[str] | None = None,
) -> ThreadingHTTPServer:
    store = Store(fixture)
    for s in scenarios or []:
        store.apply_scenario(s)
    handler = type(
        "BoundHandler",
        (Handler,),
        {"store": store, "token": token, "require_token": require_token},
    )
    srv = ThreadingHTTPServer((host, port), handler)
    srv.daemon_threads = True
    return srv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6443)
    ap.add_argument("--fixture", type=Path, default=FIXTURE)
    ap.add_argument(
        "--token-file",
        type=Path,
        help="refuse a bearer token other than the one in this file (401)",
    )
    ap.add_argument(
        "--require-token",
        action="store_true",
        help="also refuse requests without a token (kubectl sends none over plain http)",
    )
    ap.add_argument(
        "--scenario",
        action="append",
        default=[],
        help="apply a fault scenario at start (repeatable)",
    )
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("the stand-in binds loopback only")
    token = args.token_file.read_text().strip() if args.token_file else None
    srv = make_server(
        args.host,
        args.port,
        token=token,
        require_token=args.require_token,
        fixture=args.fixture,
        scenarios=args.scenario,
    )
    print(
        f"kube-api STAND-IN (not a real kube-apiserver) on http://{args.host}:{args.port} "
        f"version {srv.RequestHandlerClass.store.version['gitVersion']}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
