"""Builds ``cluster.json``: the seed objects of the Kubernetes API STAND-IN.

This is NOT a real cluster. The objects below are written in the shapes that a real
kubeadm cluster (v1.29) with the NVIDIA GPU Operator v24.9, KServe v0.13 (RawDeployment
mode), ingress-nginx, cert-manager and kube-prometheus-stack returns from
``kubectl get -o json``: the same keys, label sets, owner references, container states
and conditions. Names, uids, IPs and hashes are derived deterministically from the names,
and every timestamp is fixed, so the JSON is byte-stable.

Edit this script, then run it; the test suite checks that ``cluster.json`` is its output::

    python deploy/sandbox/standins/kube_fixtures/build_cluster.py
"""

from __future__ import annotations

import hashlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("cluster.json")

K8S_VERSION = "v1.29.10"
CREATED = "2025-01-15T09:12:44Z"  # cluster bootstrap
INSTALLED = "2025-01-15T09:31:02Z"  # add-ons (helm releases)
STARTED = "2025-01-15T09:31:40Z"
DEPLOYED = "2025-01-20T14:05:11Z"  # the mnist InferenceService

GPU_NODES = ["k8s-gpu-01", "k8s-gpu-02"]
CP_NODE = "k8s-cp-01"
ALL_NODES = [CP_NODE, *GPU_NODES]
NODE_IP = {
    CP_NODE: "192.168.200.10",
    "k8s-gpu-01": "192.168.200.11",
    "k8s-gpu-02": "192.168.200.12",
}
POD_CIDR = {CP_NODE: "10.244.0.0/24", "k8s-gpu-01": "10.244.1.0/24", "k8s-gpu-02": "10.244.2.0/24"}

_RV = [1000]


def rv() -> str:
    _RV[0] += 7
    return str(_RV[0])


def h(*parts: str, n: int = 10, alphabet: str = "bcdfghjklmnpqrstvwxz2456789") -> str:
    """Deterministic k8s-style random suffix (same alphabet as apimachinery's rand)."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:n])


def uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "mlops-standin:" + "/".join(parts)))


def sha(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def meta(
    name: str,
    ns: str | None = None,
    *,
    kind: str,
    created: str = INSTALLED,
    labels: dict | None = None,
    annotations: dict | None = None,
    owner: dict | None = None,
) -> dict:
    m: dict[str, Any] = {"name": name}
    if ns is not None:
        m["namespace"] = ns
    m["uid"] = uid(kind, ns or "", name)
    m["resourceVersion"] = rv()
    m["creationTimestamp"] = created
    if labels:
        m["labels"] = labels
    if annotations:
        m["annotations"] = annotations
    if owner:
        m["ownerReferences"] = [owner]
    return m


def owner_ref(kind: str, api_version: str, name: str, ns: str | None, controller: bool = True):
    ref = {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid(kind, ns or "", name)}
    if controller:
        ref["controller"] = True
        ref["blockOwnerDeletion"] = True
    return ref


# --------------------------------------------------------------------------- nodes

GPU_LABELS = {
    "feature.node.kubernetes.io/pci-10de.present": "true",
    "nvidia.com/cuda.driver-version.full": "550.127.08",
    "nvidia.com/cuda.driver-version.major": "550",
    "nvidia.com/cuda.driver-version.minor": "127",
    "nvidia.com/cuda.driver-version.revision": "08",
    "nvidia.com/cuda.driver.major": "550",
    "nvidia.com/cuda.driver.minor": "127",
    "nvidia.com/cuda.driver.rev": "08",
    "nvidia.com/cuda.runtime-version.full": "12.4",
    "nvidia.com/cuda.runtime-version.major": "12",
    "nvidia.com/cuda.runtime-version.minor": "4",
    "nvidia.com/cuda.runtime.major": "12",
    "nvidia.com/cuda.runtime.minor": "4",
    "nvidia.com/gfd.timestamp": "1736933521",
    "nvidia.com/gpu-driver-upgrade-state": "upgrade-done",
    "nvidia.com/gpu.compute.major": "9",
    "nvidia.com/gpu.compute.minor": "0",
    "nvidia.com/gpu.count": "2",
    "nvidia.com/gpu.deploy.container-toolkit": "true",
    "nvidia.com/gpu.deploy.dcgm": "true",
    "nvidia.com/gpu.deploy.dcgm-exporter": "true",
    "nvidia.com/gpu.deploy.device-plugin": "true",
    "nvidia.com/gpu.deploy.driver": "pre-installed",
    "nvidia.com/gpu.deploy.gpu-feature-discovery": "true",
    "nvidia.com/gpu.deploy.node-status-exporter": "true",
    "nvidia.com/gpu.deploy.operator-validator": "true",
    "nvidia.com/gpu.family": "hopper",
    "nvidia.com/gpu.machine": "PowerEdge-XE8640",
    "nvidia.com/gpu.memory": "143771",
    "nvidia.com/gpu.mode": "compute",
    "nvidia.com/gpu.present": "true",
    "nvidia.com/gpu.product": "NVIDIA-H200",
    "nvidia.com/gpu.replicas": "1",
    "nvidia.com/gpu.sharing-strategy": "none",
    "nvidia.com/mig.capable": "true",
    "nvidia.com/mig.config": "all-disabled",
    "nvidia.com/mig.strategy": "single",
    "nvidia.com/mps.capable": "false",
}

NODE_IMAGES = {
    CP_NODE: [
        ("registry.k8s.io/etcd:3.5.15-0", 56909194),
        ("registry.k8s.io/kube-apiserver:" + K8S_VERSION, 32675521),
        ("registry.k8s.io/kube-controller-manager:" + K8S_VERSION, 31460138),
        ("registry.k8s.io/kube-proxy:" + K8S_VERSION, 28616935),
        ("registry.k8s.io/kube-scheduler:" + K8S_VERSION, 18414462),
        ("registry.k8s.io/coredns/coredns:v1.11.1", 18182961),
        ("registry.k8s.io/pause:3.9", 321520),
    ],
    "gpu": [
        ("nvcr.io/nvidia/k8s/dcgm-exporter:3.3.8-3.6.0-ubuntu22.04", 352185634),
        ("nvcr.io/nvidia/cloud-native/gpu-operator-validator:v24.9.1", 171003320),
        ("nvcr.io/nvidia/k8s/container-toolkit:v1.17.3-ubuntu20.04", 137268051),
        ("nvcr.io/nvidia/k8s-device-plugin:v0.17.0", 129617733),
        ("registry.k8s.io/kube-proxy:" + K8S_VERSION, 28616935),
        ("registry.k8s.io/pause:3.9", 321520),
    ],
}


def node(name: str) -> dict:
    gpu = name in GPU_NODES
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "feature.node.kubernetes.io/cpu-model.vendor_id": "Intel",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }
    taints = []
    if gpu:
        labels.update(GPU_LABELS)
        labels["node-role.kubernetes.io/gpu-worker"] = ""
        cpu, mem, alloc_cpu, alloc_mem = "64", "528278992Ki", "63800m", "527152592Ki"
    else:
        labels["node-role.kubernetes.io/control-plane"] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        taints.append({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
        cpu, mem, alloc_cpu, alloc_mem = "8", "32863764Ki", "7800m", "32249364Ki"
    capacity = {
        "cpu": cpu,
        "ephemeral-storage": "959786032Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": mem,
        "pods": "110",
    }
    allocatable = dict(
        capacity, cpu=alloc_cpu, memory=alloc_mem, **{"ephemeral-storage": "884538615496"}
    )
    if gpu:
        capacity["nvidia.com/gpu"] = "2"
        allocatable["nvidia.com/gpu"] = "2"
    annotations = {
        "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock",
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    if gpu:
        annotations["nfd.node.kubernetes.io/feature-labels"] = (
            "pci-10de.present,cpu-model.vendor_id"
        )
        annotations["nvidia.com/gpu-driver-upgrade-enabled"] = "true"
    heartbeat = "2025-02-03T08:15:27Z"
    cond = [
        (
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    images = NODE_IMAGES["gpu" if gpu else CP_NODE]
    spec: dict[str, Any] = {"podCIDR": POD_CIDR[name], "podCIDRs": [POD_CIDR[name]]}
    if taints:
        spec["taints"] = taints
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": meta(
            name, kind="Node", created=CREATED, labels=labels, annotations=annotations
        ),
        "spec": spec,
        "status": {
            "addresses": [
                {"address": NODE_IP[name], "type": "InternalIP"},
                {"address": name, "type": "Hostname"},
            ],
            "allocatable": allocatable,
            "capacity": capacity,
            "conditions": [
                {
                    "lastHeartbeatTime": heartbeat,
                    "lastTransitionTime": STARTED,
                    "message": m,
                    "reason": r,
                    "status": s,
                    "type": t,
                }
                for t, s, r, m in cond
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "images": [
                {"names": [img, img.split(":")[0] + "@sha256:" + sha(img)], "sizeBytes": size}
                for img, size in images
            ],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": uid("boot", name),
                "containerRuntimeVersion": "containerd://1.7.24",
                "kernelVersion": "5.15.0-130-generic",
                "kubeProxyVersion": K8S_VERSION,
                "kubeletVersion": K8S_VERSION,
                "machineID": sha("machine", name)[:32],
                "operatingSystem": "linux",
                "osImage": "Ubuntu 22.04.5 LTS",
                "systemUUID": uid("system", name).upper(),
            },
        },
    }


# --------------------------------------------------------------------------- workloads


def container(
    name: str,
    image: str,
    *,
    ports: list | None = None,
    args: list | None = None,
    command: list | None = None,
    resources: dict | None = None,
    env: list | None = None,
    security: dict | None = None,
) -> dict:
    c: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}
    if command:
        c["command"] = command
    if args:
        c["args"] = args
    if env:
        c["env"] = env
    if ports:
        c["ports"] = [{"containerPort": p, "name": n, "protocol": proto} for n, p, proto in ports]
    c["resources"] = resources or {}
    if security:
        c["securityContext"] = security
    c["terminationMessagePath"] = "/dev/termination-log"
    c["terminationMessagePolicy"] = "File"
    return c


def pod_spec(
    containers: list,
    *,
    init: list | None = None,
    node_selector: dict | None = None,
    sa: str = "default",
    tolerations: list | None = None,
    host_network: bool = False,
    priority_class: str | None = None,
) -> dict:
    spec: dict[str, Any] = {"containers": containers}
    if init:
        spec["initContainers"] = init
    spec.update(
        {
            "dnsPolicy": "ClusterFirstWithHostNet" if host_network else "ClusterFirst",
            "enableServiceLinks": True,
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "serviceAccount": sa,
            "serviceAccountName": sa,
            "terminationGracePeriodSeconds": 30,
        }
    )
    if host_network:
        spec["hostNetwork"] = True
    if node_selector:
        spec["nodeSelector"] = node_selector
    if priority_class:
        spec["priorityClassName"] = priority_class
    spec["tolerations"] = (tolerations or []) + [
        {
            "effect": "NoExecute",
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "tolerationSeconds": 300,
        },
        {
            "effect": "NoExecute",
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "tolerationSeconds": 300,
        },
    ]
    return spec


def _image_id(image: str) -> str:
    repo = image.rsplit(":", 1)[0]
    return f"{repo}@sha256:{sha('image', image)}"


def running_status(c: dict, node_name: str, started: str, restarts: int = 0) -> dict:
    return {
        "containerID": "containerd://" + sha("ctr", node_name, c["name"], c["image"], started),
        "image": c["image"],
        "imageID": _image_id(c["image"]),
        "lastState": {},
        "name": c["name"],
        "ready": True,
        "restartCount": restarts,
        "started": True,
        "state": {"running": {"startedAt": started}},
    }


def completed_status(c: dict, node_name: str, started: str, finished: str) -> dict:
    return {
        "containerID": "containerd://" + sha("ctr", node_name, c["name"], c["image"], started),
        "image": c["image"],
        "imageID": _image_id(c["image"]),
        "lastState": {},
        "name": c["name"],
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {
            "terminated": {
                "containerID": "containerd://"
                + sha("ctr", node_name, c["name"], c["image"], started),
                "exitCode": 0,
                "finishedAt": finished,
                "reason": "Completed",
                "startedAt": started,
            }
        },
    }


def pod(
    name: str,
    ns: str,
    node_name: str,
    spec: dict,
    *,
    labels: dict,
    owner: dict | None,
    created: str = STARTED,
    phase: str = "Running",
    annotations: dict | None = None,
    ip: str | None = None,
) -> dict:
    spec = json.loads(json.dumps(spec))
    spec["nodeName"] = node_name
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    spec.setdefault(
        "priority",
        2000001000
        if spec.get("priorityClassName") == "system-node-critical"
        else 2000000000
        if spec.get("priorityClassName") == "system-cluster-critical"
        else 0,
    )
    if spec.get("hostNetwork"):
        pod_ip = NODE_IP[node_name]
    else:
        third = POD_CIDR[node_name].split(".")[2]
        pod_ip = ip or f"10.244.{third}.{int(sha('ip', ns, name)[:4], 16) % 200 + 20}"
    started = created
    init = spec.get("initContainers", [])
    init_status = [completed_status(c, node_name, started, started) for c in init]
    if phase == "Succeeded":
        c_status = [completed_status(c, node_name, started, started) for c in spec["containers"]]
        conditions = [
            ("PodReadyToStartContainers", "False"),
            ("Initialized", "True"),
            ("Ready", "False"),
            ("ContainersReady", "False"),
            ("PodScheduled", "True"),
        ]
    else:
        c_status = [running_status(c, node_name, started) for c in spec["containers"]]
        conditions = [
            ("PodReadyToStartContainers", "True"),
            ("Initialized", "True"),
            ("Ready", "True"),
            ("ContainersReady", "True"),
            ("PodScheduled", "True"),
        ]
    status: dict[str, Any] = {
        "conditions": [
            {"lastProbeTime": None, "lastTransitionTime": started, "status": s, "type": t}
            | (
                {"reason": "PodCompleted"}
                if s == "False" and t != "PodReadyToStartContainers"
                else {}
            )
            for t, s in conditions
        ],
        "containerStatuses": c_status,
        "hostIP": NODE_IP[node_name],
        "hostIPs": [{"ip": NODE_IP[node_name]}],
    }
    if init_status:
        status["initContainerStatuses"] = init_status
    status.update(
        {
            "phase": phase,
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "qosClass": "BestEffort",
            "startTime": started,
        }
    )
    if any(c.get("resources", {}).get("requests") for c in spec["containers"]):
        status["qosClass"] = "Burstable"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta(
            name,
            ns,
            kind="Pod",
            created=created,
            labels=labels,
            annotations=annotations,
            owner=owner,
        ),
        "spec": spec,
        "status": status,
    }


OBJECTS: list[dict] = []


def add(obj: dict) -> dict:
    OBJECTS.append(obj)
    return obj


def deployment(
    name: str,
    ns: str,
    spec: dict,
    *,
    labels: dict,
    selector: dict,
    replicas: int = 1,
    created: str = INSTALLED,
    nodes: list[str] | None = None,
    annotations: dict | None = None,
    pod_annotations: dict | None = None,
) -> dict:
    """A Deployment, its ReplicaSet and its pods (on `nodes`, round robin)."""
    template_labels = dict(selector)
    for k in ("app.kubernetes.io/instance", "app.kubernetes.io/name", "app.kubernetes.io/version"):
        if k in labels:
            template_labels.setdefault(k, labels[k])
    pth = h("pth", ns, name, n=10)
    template = {"metadata": {"creationTimestamp": None, "labels": template_labels}, "spec": spec}
    if pod_annotations:
        template["metadata"]["annotations"] = pod_annotations
    dep_ann = {"deployment.kubernetes.io/revision": "1"} | (annotations or {})
    add(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(
                name, ns, kind="Deployment", created=created, labels=labels, annotations=dep_ann
            )
            | {"generation": 1},
            "spec": {
                "progressDeadlineSeconds": 600,
                "replicas": replicas,
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": selector},
                "strategy": {
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                    "type": "RollingUpdate",
                },
                "template": template,
            },
            "status": {
                "availableReplicas": replicas,
                "conditions": [
                    {
                        "lastTransitionTime": created,
                        "lastUpdateTime": created,
                        "message": "Deployment has minimum availability.",
                        "reason": "MinimumReplicasAvailable",
                        "status": "True",
                        "type": "Available",
                    },
                    {
                        "lastTransitionTime": created,
                        "lastUpdateTime": created,
                        "message": f'ReplicaSet "{name}-{pth}" has successfully progressed.',
                        "reason": "NewReplicaSetAvailable",
                        "status": "True",
                        "type": "Progressing",
                    },
                ],
                "observedGeneration": 1,
                "readyReplicas": replicas,
                "replicas": replicas,
                "updatedReplicas": replicas,
            },
        }
    )
    rs_name = f"{name}-{pth}"
    rs_labels = template_labels | {"pod-template-hash": pth}
    add(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": meta(
                rs_name,
                ns,
                kind="ReplicaSet",
                created=created,
                labels=rs_labels,
                annotations={
                    "deployment.kubernetes.io/desired-replicas": str(replicas),
                    "deployment.kubernetes.io/max-replicas": str(replicas + 1),
                    "deployment.kubernetes.io/revision": "1",
                },
                owner=owner_ref("Deployment", "apps/v1", name, ns),
            )
            | {"generation": 1},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector | {"pod-template-hash": pth}},
                "template": {
                    "metadata": {"creationTimestamp": None, "labels": rs_labels}
                    | ({"annotations": pod_annotations} if pod_annotations else {}),
                    "spec": spec,
                },
            },
            "status": {
                "availableReplicas": replicas,
                "fullyLabeledReplicas": replicas,
                "observedGeneration": 1,
                "readyReplicas": replicas,
                "replicas": replicas,
            },
        }
    )
    nodes = nodes or GPU_NODES
    for i in range(replicas):
        nd = nodes[i % len(nodes)]
        add(
            pod(
                f"{rs_name}-{h('pod', ns, name, str(i), n=5)}",
                ns,
                nd,
                spec,
                labels=rs_labels,
                owner=owner_ref("ReplicaSet", "apps/v1", rs_name, ns),
                created=created,
                annotations=pod_annotations,
            )
        )
    return OBJECTS[-1]


def daemonset(
    name: str,
    ns: str,
    spec: dict,
    *,
    labels: dict,
    selector: dict,
    nodes: list[str],
    node_selector: dict | None = None,
    created: str = INSTALLED,
    pod_annotations: dict | None = None,
) -> list[dict]:
    crh = h("crh", ns, name, n=10, alphabet="0123456789abcdef")[:10]
    template_labels = dict(selector) | {
        k: v
        for k, v in labels.items()
        if k in ("app.kubernetes.io/instance", "app.kubernetes.io/part-of")
    }
    spec = dict(spec)
    if node_selector:
        spec["nodeSelector"] = node_selector
    n = len(nodes)
    add(
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": meta(
                name,
                ns,
                kind="DaemonSet",
                created=created,
                labels=labels,
                annotations={"deprecated.daemonset.template.generation": "1"},
            )
            | {"generation": 1},
            "spec": {
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {"creationTimestamp": None, "labels": template_labels}
                    | ({"annotations": pod_annotations} if pod_annotations else {}),
                    "spec": spec,
                },
                "updateStrategy": {
                    "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
                    "type": "RollingUpdate",
                },
            },
            "status": {
                "currentNumberScheduled": n,
                "desiredNumberScheduled": n,
                "numberAvailable": n,
                "numberMisscheduled": 0,
                "numberReady": n,
                "observedGeneration": 1,
                "updatedNumberScheduled": n,
            },
        }
    )
    pods = []
    for nd in nodes:
        pspec = json.loads(json.dumps(spec))
        pspec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": [nd]}
                            ]
                        }
                    ]
                }
            }
        }
        pods.append(
            add(
                pod(
                    f"{name}-{h('ds', ns, name, nd, n=5)}",
                    ns,
                    nd,
                    pspec,
                    labels=template_labels
                    | {"controller-revision-hash": crh, "pod-template-generation": "1"},
                    owner=owner_ref("DaemonSet", "apps/v1", name, ns),
                    created=created,
                    annotations=pod_annotations,
                )
            )
        )
    return pods


def service(
    name: str,
    ns: str,
    ports: list,
    *,
    selector: dict | None,
    labels: dict | None = None,
    cluster_ip: str | None = None,
    svc_type: str = "ClusterIP",
    created: str = INSTALLED,
    annotations: dict | None = None,
) -> dict:
    ip = (
        cluster_ip
        or f"10.96.{int(sha('svc', ns, name)[:2], 16)}."
        f"{int(sha('svc', ns, name)[2:4], 16) % 250 + 2}"
    )
    spec: dict[str, Any] = {
        "clusterIP": ip,
        "clusterIPs": [ip] if ip != "None" else ["None"],
        "internalTrafficPolicy": "Cluster",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "ports": [],
        "sessionAffinity": "None",
        "type": svc_type,
    }
    for pname, port, target, proto, *node_port in ports:
        p = {"name": pname, "port": port, "protocol": proto, "targetPort": target}
        if node_port:
            p["nodePort"] = node_port[0]
        spec["ports"].append(p)
    if svc_type == "NodePort":
        spec["externalTrafficPolicy"] = "Cluster"
    if selector:
        spec["selector"] = selector
    return add(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(
                name, ns, kind="Service", created=created, labels=labels, annotations=annotations
            ),
            "spec": spec,
            "status": {"loadBalancer": {}},
        }
    )


# --------------------------------------------------------------------------- the cluster


def build() -> dict:
    OBJECTS.clear()
    _RV[0] = 1000

    for nd in ALL_NODES:
        add(node(nd))

    for ns, created in [
        ("default", CREATED),
        ("kube-system", CREATED),
        ("kube-public", CREATED),
        ("kube-node-lease", CREATED),
        ("cert-manager", INSTALLED),
        ("gpu-operator", INSTALLED),
        ("ingress-nginx", INSTALLED),
        ("kserve", INSTALLED),
        ("monitoring", INSTALLED),
        ("mlops", INSTALLED),
        ("production", INSTALLED),
    ]:
        labels = {"kubernetes.io/metadata.name": ns}
        if ns == "gpu-operator":
            labels["pod-security.kubernetes.io/enforce"] = "privileged"
        if ns == "production":
            labels["serving.kserve.io/inferenceservice"] = "enabled"
        add(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": meta(ns, kind="Namespace", created=created, labels=labels),
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            }
        )

    # ---- kube-system: static control-plane pods, kube-proxy, coredns, calico
    for comp, image, port in [
        ("etcd", "registry.k8s.io/etcd:3.5.15-0", 2381),
        ("kube-apiserver", f"registry.k8s.io/kube-apiserver:{K8S_VERSION}", 6443),
        (
            "kube-controller-manager",
            f"registry.k8s.io/kube-controller-manager:{K8S_VERSION}",
            10257,
        ),
        ("kube-scheduler", f"registry.k8s.io/kube-scheduler:{K8S_VERSION}", 10259),
    ]:
        spec = pod_spec(
            [container(comp, image, command=[comp], resources={"requests": {"cpu": "100m"}})],
            host_network=True,
            priority_class="system-node-critical",
        )
        spec["tolerations"] = [{"effect": "NoExecute", "operator": "Exists"}]
        add(
            pod(
                f"{comp}-{CP_NODE}",
                "kube-system",
                CP_NODE,
                spec,
                labels={"component": comp, "tier": "control-plane"},
                owner=owner_ref("Node", "v1", CP_NODE, None),
                created=CREATED,
                annotations={
                    "kubernetes.io/config.hash": sha("cfg", comp)[:32],
                    "kubernetes.io/config.seen": "2025-01-15T09:12:30.118254671Z",
                    "kubernetes.io/config.source": "file",
                    **(
                        {
                            "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint": (
                                f"{NODE_IP[CP_NODE]}:{port}"
                            )
                        }
                        if comp == "kube-apiserver"
                        else {}
                    ),
                },
            )
        )
    daemonset(
        "kube-proxy",
        "kube-system",
        pod_spec(
            [
                container(
                    "kube-proxy",
                    f"registry.k8s.io/kube-proxy:{K8S_VERSION}",
                    command=[
                        "/usr/local/bin/kube-proxy",
                        "--config=/var/lib/kube-proxy/config.conf",
                        "--hostname-override=$(NODE_NAME)",
                    ],
                    security={"privileged": True},
                )
            ],
            sa="kube-proxy",
            host_network=True,
            priority_class="system-node-critical",
            tolerations=[{"operator": "Exists"}],
        ),
        labels={"k8s-app": "kube-proxy"},
        selector={"k8s-app": "kube-proxy"},
        nodes=ALL_NODES,
        node_selector={"kubernetes.io/os": "linux"},
        created=CREATED,
    )
    daemonset(
        "calico-node",
        "kube-system",
        pod_spec(
            [
                container(
                    "calico-node",
                    "docker.io/calico/node:v3.28.2",
                    resources={"requests": {"cpu": "250m"}},
                    security={"privileged": True},
                )
            ],
            sa="calico-node",
            host_network=True,
            priority_class="system-node-critical",
            tolerations=[
                {"effect": "NoSchedule", "operator": "Exists"},
                {"key": "CriticalAddonsOnly", "operator": "Exists"},
            ],
        ),
        labels={"k8s-app": "calico-node"},
        selector={"k8s-app": "calico-node"},
        nodes=ALL_NODES,
        node_selector={"kubernetes.io/os": "linux"},
        created=CREATED,
    )
    deployment(
        "coredns",
        "kube-system",
        pod_spec(
            [
                container(
                    "coredns",
                    "registry.k8s.io/coredns/coredns:v1.11.1",
                    args=["-conf", "/etc/coredns/Corefile"],
                    ports=[("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")],
                    resources={
                        "limits": {"memory": "170Mi"},
                        "requests": {"cpu": "100m", "memory": "70Mi"},
                    },
                )
            ],
            sa="coredns",
            priority_class="system-cluster-critical",
            node_selector={"kubernetes.io/os": "linux"},
            tolerations=[
                {"key": "CriticalAddonsOnly", "operator": "Exists"},
                {"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"},
            ],
        ),
        labels={"k8s-app": "kube-dns"},
        selector={"k8s-app": "kube-dns"},
        replicas=2,
        created=CREATED,
        nodes=[CP_NODE],
    )
    service(
        "kubernetes",
        "default",
        [("https", 443, 6443, "TCP")],
        selector=None,
        labels={"component": "apiserver", "provider": "kubernetes"},
        cluster_ip="10.96.0.1",
        created=CREATED,
    )
    service(
        "kube-dns",
        "kube-system",
        [("dns", 53, 53, "UDP"), ("dns-tcp", 53, 53, "TCP"), ("metrics", 9153, 9153, "TCP")],
        selector={"k8s-app": "kube-dns"},
        labels={
            "k8s-app": "kube-dns",
            "kubernetes.io/cluster-service": "true",
            "kubernetes.io/name": "CoreDNS",
        },
        cluster_ip="10.96.0.10",
        created=CREATED,
        annotations={"prometheus.io/port": "9153", "prometheus.io/scrape": "true"},
    )

    # ---- gpu-operator (Helm release gpu-operator, chart v24.9.1, driver pre-installed)
    helm = {"app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": "gpu-operator-v24.9.1"}
    deployment(
        "gpu-operator",
        "gpu-operator",
        pod_spec(
            [
                container(
                    "gpu-operator",
                    "nvcr.io/nvidia/gpu-operator:v24.9.1",
                    command=["gpu-operator"],
                    args=["--leader-elect", "--zap-time-encoding=epoch", "--zap-log-level=info"],
                    ports=[("metrics", 8080, "TCP")],
                    resources={
                        "limits": {"cpu": "500m", "memory": "350Mi"},
                        "requests": {"cpu": "200m", "memory": "100Mi"},
                    },
                )
            ],
            sa="gpu-operator",
            priority_class="system-node-critical",
        ),
        labels=helm
        | {
            "app": "gpu-operator",
            "app.kubernetes.io/component": "gpu-operator",
            "app.kubernetes.io/instance": "gpu-operator",
            "app.kubernetes.io/name": "gpu-operator",
            "app.kubernetes.io/version": "v24.9.1",
        },
        selector={"app": "gpu-operator", "app.kubernetes.io/component": "gpu-operator"},
        nodes=[GPU_NODES[0]],
    )
    deployment(
        "gpu-operator-node-feature-discovery-master",
        "gpu-operator",
        pod_spec(
            [
                container(
                    "master",
                    "registry.k8s.io/nfd/node-feature-discovery:v0.16.6",
                    command=["nfd-master"],
                    resources={
                        "limits": {"memory": "4Gi"},
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                    },
                )
            ],
            sa="node-feature-discovery",
        ),
        labels={
            "app.kubernetes.io/instance": "gpu-operator",
            "app.kubernetes.io/managed-by": "Helm",
            "app.kubernetes.io/name": "node-feature-discovery",
            "app.kubernetes.io/version": "v0.16.6",
            "role": "master",
        },
        selector={
            "app.kubernetes.io/instance": "gpu-operator",
            "app.kubernetes.io/name": "node-feature-discovery",
            "role": "master",
        },
        nodes=[GPU_NODES[1]],
    )
    daemonset(
        "gpu-operator-node-feature-discovery-worker",
        "gpu-operator",
        pod_spec(
            [
                container(
                    "worker",
                    "registry.k8s.io/nfd/node-feature-discovery:v0.16.6",
                    command=["nfd-worker"],
                )
            ],
            sa="node-feature-discovery",
            tolerations=[
                {
                    "effect": "NoSchedule",
                    "key": "node-role.kubernetes.io/control-plane",
                    "operator": "Equal",
                },
                {"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"},
            ],
        ),
        labels={
            "app.kubernetes.io/instance": "gpu-operator",
            "app.kubernetes.io/managed-by": "Helm",
            "app.kubernetes.io/name": "node-feature-discovery",
            "app.kubernetes.io/version": "v0.16.6",
            "role": "worker",
        },
        selector={
            "app.kubernetes.io/instance": "gpu-operator",
            "app.kubernetes.io/name": "node-feature-discovery",
            "role": "worker",
        },
        nodes=ALL_NODES,
    )
    gpu_tol = [{"effect": "NoSchedule", "key": "nvidia.com/gpu", "operator": "Exists"}]
    cp_owner_labels = {
        "app.kubernetes.io/managed-by": "gpu-operator",
        "helm.sh/chart": "gpu-operator-v24.9.1",
    }

    def operand(
        name: str,
        app: str,
        image: str,
        deploy_label: str,
        *,
        init: list | None = None,
        ports: list | None = None,
        command: list | None = None,
        args: list | None = None,
    ):
        return daemonset(
            name,
            "gpu-operator",
            pod_spec(
                [
                    container(
                        name if app != "nvidia-operator-validator" else app,
                        image,
                        command=command,
                        args=args,
                        ports=ports,
                        security={"privileged": True},
                    )
                ],
                init=init,
                sa=app,
                priority_class="system-node-critical",
                tolerations=gpu_tol,
                node_selector={f"nvidia.com/gpu.deploy.{deploy_label}": "true"},
            ),
            labels=cp_owner_labels | {"app": app, "app.kubernetes.io/part-of": "nvidia-gpu"},
            selector={"app": app, "app.kubernetes.io/part-of": "nvidia-gpu"},
            nodes=GPU_NODES,
            created=INSTALLED,
        )

    validator_img = "nvcr.io/nvidia/cloud-native/gpu-operator-validator:v24.9.1"
    operand(
        "nvidia-container-toolkit-daemonset",
        "nvidia-container-toolkit-daemonset",
        "nvcr.io/nvidia/k8s/container-toolkit:v1.17.3-ubuntu20.04",
        "container-toolkit",
        command=["/bin/bash", "-c"],
        args=["/bin/entrypoint.sh"],
        init=[
            container(
                "driver-validation",
                validator_img,
                command=["sh", "-c"],
                args=["nvidia-validator"],
                security={"privileged": True},
            )
        ],
    )
    operand(
        "nvidia-device-plugin-daemonset",
        "nvidia-device-plugin-daemonset",
        "nvcr.io/nvidia/k8s-device-plugin:v0.17.0",
        "device-plugin",
        command=["/bin/bash", "-c"],
        args=["/bin/entrypoint.sh"],
        init=[
            container(
                "toolkit-validation",
                validator_img,
                command=["sh", "-c"],
                args=[
                    "until [ -f /run/nvidia/validations/toolkit-ready ]; do echo "
                    "waiting for nvidia container stack to be setup; sleep 5; done"
                ],
                security={"privileged": True},
            )
        ],
    )
    operand(
        "gpu-feature-discovery",
        "gpu-feature-discovery",
        "nvcr.io/nvidia/k8s-device-plugin:v0.17.0",
        "gpu-feature-discovery",
        command=["/bin/bash", "-c"],
        args=["/bin/entrypoint.sh"],
        init=[
            container(
                "toolkit-validation",
                validator_img,
                command=["sh", "-c"],
                args=[
                    "until [ -f /run/nvidia/validations/toolkit-ready ]; do echo "
                    "waiting for nvidia container stack to be setup; sleep 5; done"
                ],
                security={"privileged": True},
            )
        ],
    )
    operand(
        "nvidia-dcgm-exporter",
        "nvidia-dcgm-exporter",
        "nvcr.io/nvidia/k8s/dcgm-exporter:3.3.8-3.6.0-ubuntu22.04",
        "dcgm-exporter",
        ports=[("metrics", 9400, "TCP")],
        command=["/bin/bash", "-c"],
        args=["dcgm-exporter -f /etc/dcgm-exporter/dcp-metrics-included.csv"],
    )
    validation_init = [
        container(
            n,
            validator_img,
            command=["sh", "-c"],
            args=["nvidia-validator"],
            env=[{"name": "WITH_WAIT", "value": "true"}, {"name": "COMPONENT", "value": comp}],
            security={"privileged": True},
        )
        for n, comp in [
            ("driver-validation", "driver"),
            ("toolkit-validation", "toolkit"),
            ("cuda-validation", "cuda"),
            ("plugin-validation", "plugin"),
        ]
    ]
    operand(
        "nvidia-operator-validator",
        "nvidia-operator-validator",
        validator_img,
        "operator-validator",
        init=validation_init,
        command=["sh", "-c"],
        args=["echo all validations are successful; sleep infinity"],
    )
    for nd in GPU_NODES:
        img = validator_img
        spec = pod_spec(
            [
                container(
                    "nvidia-cuda-validator",
                    img,
                    command=["sh", "-c"],
                    args=["echo cuda workload validation is successful"],
                    security={"allowPrivilegeEscalation": False},
                )
            ],
            init=[
                container(
                    "cuda-validation",
                    img,
                    command=["sh", "-c"],
                    args=["vectorAdd"],
                    security={"allowPrivilegeEscalation": False},
                )
            ],
            sa="nvidia-operator-validator",
            tolerations=gpu_tol,
        )
        spec["restartPolicy"] = "OnFailure"
        p = pod(
            f"nvidia-cuda-validator-{h('cudaval', nd, n=5)}",
            "gpu-operator",
            nd,
            spec,
            labels={"app": "nvidia-cuda-validator"},
            phase="Succeeded",
            owner=owner_ref("ClusterPolicy", "nvidia.com/v1", "cluster-policy", None),
        )
        add(p)
    service(
        "gpu-operator",
        "gpu-operator",
        [("gpu-operator-metrics", 8080, "metrics", "TCP")],
        selector={"app": "gpu-operator"},
        labels={"app": "gpu-operator"},
    )
    service(
        "nvidia-dcgm-exporter",
        "gpu-operator",
        [("gpu-metrics", 9400, 9400, "TCP")],
        selector={"app": "nvidia-dcgm-exporter"},
        labels={"app": "nvidia-dcgm-exporter"},
        annotations={"prometheus.io/scrape": "true"},
    )
    add(
        {
            "apiVersion": "nvidia.com/v1",
            "kind": "ClusterPolicy",
            "metadata": meta(
                "cluster-policy",
                kind="ClusterPolicy",
                labels=helm | {"app.kubernetes.io/component": "gpu-operator"},
            )
            | {"generation": 1},
            "spec": {
                "daemonsets": {"priorityClassName": "system-node-critical", "tolerations": gpu_tol},
                "devicePlugin": {"enabled": True, "version": "v0.17.0"},
                "driver": {"enabled": False},
                "operator": {"defaultRuntime": "containerd"},
                "toolkit": {"enabled": True, "version": "v1.17.3-ubuntu20.04"},
                "validator": {"version": "v24.9.1"},
            },
            "status": {
                "conditions": [
                    {
                        "lastTransitionTime": STARTED,
                        "message": "",
                        "reason": "Ready",
                        "status": "True",
                        "type": "Ready",
                    },
                    {
                        "lastTransitionTime": STARTED,
                        "message": "",
                        "reason": "Ready",
                        "status": "False",
                        "type": "Error",
                    },
                ],
                "namespace": "gpu-operator",
                "state": "ready",
            },
        }
    )

    # ---- cert-manager and ingress-nginx (KServe prerequisites)
    for comp, image in [
        ("cert-manager", "quay.io/jetstack/cert-manager-controller:v1.15.3"),
        ("cert-manager-webhook", "quay.io/jetstack/cert-manager-webhook:v1.15.3"),
    ]:
        short = "controller" if comp == "cert-manager" else "webhook"
        app = "cert-manager" if comp == "cert-manager" else "webhook"
        deployment(
            comp,
            "cert-manager",
            pod_spec([container(f"cert-manager-{short}", image)], sa=comp),
            labels={
                "app": app,
                "app.kubernetes.io/component": short,
                "app.kubernetes.io/instance": "cert-manager",
                "app.kubernetes.io/name": app,
                "app.kubernetes.io/version": "v1.15.3",
            },
            selector={
                "app.kubernetes.io/component": short,
                "app.kubernetes.io/instance": "cert-manager",
                "app.kubernetes.io/name": app,
            },
            nodes=[GPU_NODES[1]],
        )
    nginx_labels = {
        "app.kubernetes.io/component": "controller",
        "app.kubernetes.io/instance": "ingress-nginx",
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/name": "ingress-nginx",
        "app.kubernetes.io/part-of": "ingress-nginx",
        "app.kubernetes.io/version": "1.11.3",
        "helm.sh/chart": "ingress-nginx-4.11.3",
    }
    nginx_sel = {
        "app.kubernetes.io/component": "controller",
        "app.kubernetes.io/instance": "ingress-nginx",
        "app.kubernetes.io/name": "ingress-nginx",
    }
    deployment(
        "ingress-nginx-controller",
        "ingress-nginx",
        pod_spec(
            [
                container(
                    "controller",
                    "registry.k8s.io/ingress-nginx/controller:v1.11.3",
                    args=[
                        "/nginx-ingress-controller",
                        "--publish-service=$(POD_NAMESPACE)/ingress-nginx-controller",
                        "--election-id=ingress-nginx-leader",
                        "--controller-class=k8s.io/ingress-nginx",
                        "--ingress-class=nginx",
                    ],
                    ports=[("http", 80, "TCP"), ("https", 443, "TCP"), ("webhook", 8443, "TCP")],
                    resources={"requests": {"cpu": "100m", "memory": "90Mi"}},
                )
            ],
            sa="ingress-nginx",
            node_selector={"kubernetes.io/os": "linux"},
        ),
        labels=nginx_labels,
        selector=nginx_sel,
        nodes=[GPU_NODES[0]],
    )
    service(
        "ingress-nginx-controller",
        "ingress-nginx",
        [("http", 80, "http", "TCP", 30080), ("https", 443, "https", "TCP", 30443)],
        selector=nginx_sel,
        labels=nginx_labels,
        svc_type="NodePort",
    )
    add(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": meta(
                "nginx",
                kind="IngressClass",
                labels=nginx_labels,
                annotations={
                    "ingressclass.kubernetes.io/is-default-class": "true",
                    "meta.helm.sh/release-name": "ingress-nginx",
                    "meta.helm.sh/release-namespace": "ingress-nginx",
                },
            )
            | {"generation": 1},
            "spec": {"controller": "k8s.io/ingress-nginx"},
        }
    )

    # ---- KServe v0.13.0 (Helm chart kserve v0.13.0, RawDeployment by default)
    kserve_labels = {
        "app.kubernetes.io/instance": "kserve",
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/name": "kserve",
        "app.kubernetes.io/version": "v0.13.0",
        "control-plane": "kserve-controller-manager",
        "controller-tools.k8s.io": "1.0",
        "helm.sh/chart": "kserve-v0.13.0",
    }
    deployment(
        "kserve-controller-manager",
        "kserve",
        pod_spec(
            [
                container(
                    "manager",
                    "kserve/kserve-controller:v0.13.0",
                    command=["/manager"],
                    args=["--metrics-addr=127.0.0.1:8080", "--leader-elect"],
                    ports=[("webhook-server", 9443, "TCP")],
                    env=[
                        {
                            "name": "POD_NAMESPACE",
                            "valueFrom": {
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}
                            },
                        },
                        {"name": "SECRET_NAME", "value": "kserve-webhook-server-cert"},
                    ],
                    resources={
                        "limits": {"cpu": "100m", "memory": "300Mi"},
                        "requests": {"cpu": "100m", "memory": "200Mi"},
                    },
                    security={"allowPrivilegeEscalation": False},
                ),
                container(
                    "kube-rbac-proxy",
                    "gcr.io/kubebuilder/kube-rbac-proxy:v0.13.1",
                    args=[
                        "--secure-listen-address=0.0.0.0:8443",
                        "--upstream=http://127.0.0.1:8080/",
                        "--logtostderr=true",
                        "--v=10",
                    ],
                    ports=[("https", 8443, "TCP")],
                ),
            ],
            sa="kserve-controller-manager",
        ),
        labels=kserve_labels,
        selector={
            "app.kubernetes.io/name": "kserve",
            "control-plane": "kserve-controller-manager",
            "controller-tools.k8s.io": "1.0",
        },
        nodes=[GPU_NODES[1]],
    )
    service(
        "kserve-controller-manager-service",
        "kserve",
        [("https", 8443, "https", "TCP")],
        selector={"control-plane": "kserve-controller-manager", "controller-tools.k8s.io": "1.0"},
        labels={"control-plane": "kserve-controller-manager", "controller-tools.k8s.io": "1.0"},
    )
    service(
        "kserve-webhook-server-service",
        "kserve",
        [("", 443, "webhook-server", "TCP")],
        selector={"control-plane": "kserve-controller-manager"},
    )
    for rt, image, fmt in [
        ("kserve-torchserve", "pytorch/torchserve-kfs:0.9.0", "pytorch"),
        ("kserve-huggingfaceserver", "kserve/huggingfaceserver:v0.13.0", "huggingface"),
        ("kserve-sklearnserver", "kserve/sklearnserver:v0.13.0", "sklearn"),
    ]:
        add(
            {
                "apiVersion": "serving.kserve.io/v1alpha1",
                "kind": "ClusterServingRuntime",
                "metadata": meta(
                    rt,
                    kind="ClusterServingRuntime",
                    labels={
                        "app.kubernetes.io/instance": "kserve",
                        "app.kubernetes.io/managed-by": "Helm",
                    },
                )
                | {"generation": 1},
                "spec": {
                    "annotations": {
                        "prometheus.kserve.io/path": "/metrics",
                        "prometheus.kserve.io/port": "8082",
                    },
                    "containers": [
                        {
                            "name": "kserve-container",
                            "image": image,
                            "args": ["--model_name={{.Name}}"],
                            "resources": {
                                "limits": {"cpu": "1", "memory": "2Gi"},
                                "requests": {"cpu": "1", "memory": "2Gi"},
                            },
                        }
                    ],
                    "protocolVersions": ["v1", "v2"],
                    "supportedModelFormats": [
                        {"autoSelect": True, "name": fmt, "priority": 1, "version": "1"}
                    ],
                },
            }
        )

    # ---- monitoring: kube-prometheus-stack 65.x
    kps = {
        "app.kubernetes.io/instance": "kube-prometheus-stack",
        "app.kubernetes.io/managed-by": "Helm",
        "release": "kube-prometheus-stack",
    }
    deployment(
        "kube-prometheus-stack-operator",
        "monitoring",
        pod_spec(
            [
                container(
                    "kube-prometheus-stack",
                    "quay.io/prometheus-operator/prometheus-operator:v0.78.2",
                    ports=[("https", 10250, "TCP")],
                )
            ],
            sa="kube-prometheus-stack-operator",
        ),
        labels=kps
        | {
            "app": "kube-prometheus-stack-operator",
            "app.kubernetes.io/component": "prometheus-operator",
            "app.kubernetes.io/name": "kube-prometheus-stack-prometheus-operator",
            "app.kubernetes.io/version": "65.8.1",
        },
        selector={"app": "kube-prometheus-stack-operator", "release": "kube-prometheus-stack"},
        nodes=[GPU_NODES[0]],
    )
    grafana_labels = {
        "app.kubernetes.io/instance": "kube-prometheus-stack",
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/name": "grafana",
        "app.kubernetes.io/version": "11.3.1",
        "helm.sh/chart": "grafana-8.6.3",
    }
    deployment(
        "kube-prometheus-stack-grafana",
        "monitoring",
        pod_spec(
            [
                container("grafana-sc-dashboard", "quay.io/kiwigrid/k8s-sidecar:1.28.0"),
                container("grafana-sc-datasources", "quay.io/kiwigrid/k8s-sidecar:1.28.0"),
                container(
                    "grafana",
                    "docker.io/grafana/grafana:11.3.1",
                    ports=[("grafana", 3000, "TCP")],
                    env=[
                        {
                            "name": "GF_SECURITY_ADMIN_USER",
                            "valueFrom": {
                                "secretKeyRef": {
                                    "key": "admin-user",
                                    "name": "kube-prometheus-stack-grafana",
                                }
                            },
                        }
                    ],
                ),
            ],
            sa="kube-prometheus-stack-grafana",
        ),
        labels=grafana_labels,
        selector={
            "app.kubernetes.io/instance": "kube-prometheus-stack",
            "app.kubernetes.io/name": "grafana",
        },
        nodes=[GPU_NODES[1]],
    )
    deployment(
        "kube-prometheus-stack-kube-state-metrics",
        "monitoring",
        pod_spec(
            [
                container(
                    "kube-state-metrics",
                    "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.13.0",
                    ports=[("http", 8080, "TCP")],
                )
            ],
            sa="kube-prometheus-stack-kube-state-metrics",
        ),
        labels=kps
        | {"app.kubernetes.io/name": "kube-state-metrics", "app.kubernetes.io/version": "2.13.0"},
        selector={
            "app.kubernetes.io/instance": "kube-prometheus-stack",
            "app.kubernetes.io/name": "kube-state-metrics",
        },
        nodes=[GPU_NODES[0]],
    )
    daemonset(
        "kube-prometheus-stack-prometheus-node-exporter",
        "monitoring",
        pod_spec(
            [
                container(
                    "node-exporter",
                    "quay.io/prometheus/node-exporter:v1.8.2",
                    args=[
                        "--path.procfs=/host/proc",
                        "--path.sysfs=/host/sys",
                        "--web.listen-address=[$(HOST_IP)]:9100",
                    ],
                    ports=[("http-metrics", 9100, "TCP")],
                )
            ],
            sa="kube-prometheus-stack-prometheus-node-exporter",
            host_network=True,
            tolerations=[{"effect": "NoSchedule", "operator": "Exists"}],
        ),
        labels=kps
        | {
            "app.kubernetes.io/name": "prometheus-node-exporter",
            "app.kubernetes.io/part-of": "prometheus-node-exporter",
            "app.kubernetes.io/version": "1.8.2",
        },
        selector={
            "app.kubernetes.io/instance": "kube-prometheus-stack",
            "app.kubernetes.io/name": "prometheus-node-exporter",
        },
        nodes=ALL_NODES,
    )
    prom_name = "prometheus-kube-prometheus-stack-prometheus"
    prom_labels = {
        "app.kubernetes.io/instance": "kube-prometheus-stack-prometheus",
        "app.kubernetes.io/managed-by": "prometheus-operator",
        "app.kubernetes.io/name": "prometheus",
        "app.kubernetes.io/version": "2.55.1",
        "operator.prometheus.io/name": "kube-prometheus-stack-prometheus",
        "operator.prometheus.io/shard": "0",
        "prometheus": "kube-prometheus-stack-prometheus",
    }
    prom_spec = pod_spec(
        [
            container(
                "prometheus",
                "quay.io/prometheus/prometheus:v2.55.1",
                args=[
                    "--web.console.templates=/etc/prometheus/consoles",
                    "--storage.tsdb.retention.time=10d",
                    "--config.file=/etc/prometheus/config_out/prometheus.env.yaml",
                    "--web.enable-lifecycle",
                    "--web.route-prefix=/",
                ],
                ports=[("http-web", 9090, "TCP")],
            ),
            container(
                "config-reloader",
                "quay.io/prometheus-operator/prometheus-config-reloader:v0.78.2",
                ports=[("reloader-web", 8080, "TCP")],
            ),
        ],
        init=[
            container(
                "init-config-reloader",
                "quay.io/prometheus-operator/prometheus-config-reloader:v0.78.2",
                args=["--watch-interval=0", "--listen-address=:8081"],
            )
        ],
        sa="kube-prometheus-stack-prometheus",
    )
    add(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": meta(
                prom_name,
                "monitoring",
                kind="StatefulSet",
                labels=prom_labels | {"managed-by": "prometheus-operator"},
                owner=owner_ref(
                    "Prometheus",
                    "monitoring.coreos.com/v1",
                    "kube-prometheus-stack-prometheus",
                    "monitoring",
                ),
            )
            | {"generation": 1},
            "spec": {
                "podManagementPolicy": "Parallel",
                "replicas": 1,
                "revisionHistoryLimit": 10,
                "selector": {
                    "matchLabels": {
                        "app.kubernetes.io/instance": "kube-prometheus-stack-prometheus",
                        "app.kubernetes.io/managed-by": "prometheus-operator",
                        "app.kubernetes.io/name": "prometheus",
                        "operator.prometheus.io/name": "kube-prometheus-stack-prometheus",
                        "operator.prometheus.io/shard": "0",
                        "prometheus": "kube-prometheus-stack-prometheus",
                    }
                },
                "serviceName": "prometheus-operated",
                "template": {
                    "metadata": {"creationTimestamp": None, "labels": prom_labels},
                    "spec": prom_spec,
                },
                "updateStrategy": {"type": "RollingUpdate"},
            },
            "status": {
                "availableReplicas": 1,
                "collisionCount": 0,
                "currentReplicas": 1,
                "currentRevision": f"{prom_name}-{h('rev', prom_name, n=10)}",
                "observedGeneration": 1,
                "readyReplicas": 1,
                "replicas": 1,
                "updateRevision": f"{prom_name}-{h('rev', prom_name, n=10)}",
                "updatedReplicas": 1,
            },
        }
    )
    add(
        pod(
            f"{prom_name}-0",
            "monitoring",
            GPU_NODES[0],
            prom_spec,
            labels=prom_labels
            | {
                "apps.kubernetes.io/pod-index": "0",
                "controller-revision-hash": f"{prom_name}-{h('rev', prom_name, n=10)}",
                "statefulset.kubernetes.io/pod-name": f"{prom_name}-0",
            },
            owner=owner_ref("StatefulSet", "apps/v1", prom_name, "monitoring"),
        )
    )
    add(
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "Prometheus",
            "metadata": meta(
                "kube-prometheus-stack-prometheus",
                "monitoring",
                kind="Prometheus",
                labels=kps | {"app": "kube-prometheus-stack-prometheus"},
            )
            | {"generation": 1},
            "spec": {
                "replicas": 1,
                "retention": "10d",
                "version": "v2.55.1",
                "serviceMonitorSelector": {"matchLabels": {"release": "kube-prometheus-stack"}},
            },
            "status": {
                "availableReplicas": 1,
                "paused": False,
                "replicas": 1,
                "unavailableReplicas": 0,
                "updatedReplicas": 1,
                "conditions": [
                    {
                        "lastTransitionTime": STARTED,
                        "observedGeneration": 1,
                        "status": "True",
                        "type": "Available",
                    },
                    {
                        "lastTransitionTime": STARTED,
                        "observedGeneration": 1,
                        "status": "True",
                        "type": "Reconciled",
                    },
                ],
            },
        }
    )
    service(
        "kube-prometheus-stack-prometheus",
        "monitoring",
        [("http-web", 9090, 9090, "TCP"), ("reloader-web", 8080, "reloader-web", "TCP")],
        selector={
            "app.kubernetes.io/name": "prometheus",
            "operator.prometheus.io/name": "kube-prometheus-stack-prometheus",
        },
        labels=kps | {"app": "kube-prometheus-stack-prometheus", "self-monitor": "true"},
    )
    service(
        "prometheus-operated",
        "monitoring",
        [("http-web", 9090, "http-web", "TCP")],
        selector={"app.kubernetes.io/name": "prometheus"},
        cluster_ip="None",
        labels={"managed-by": "prometheus-operator", "operated-prometheus": "true"},
    )
    service(
        "kube-prometheus-stack-grafana",
        "monitoring",
        [("http-web", 80, 3000, "TCP")],
        selector={
            "app.kubernetes.io/instance": "kube-prometheus-stack",
            "app.kubernetes.io/name": "grafana",
        },
        labels=grafana_labels,
    )
    service(
        "kube-prometheus-stack-operator",
        "monitoring",
        [("https", 443, "https", "TCP")],
        selector={"app": "kube-prometheus-stack-operator", "release": "kube-prometheus-stack"},
        labels=kps | {"app": "kube-prometheus-stack-operator"},
    )
    service(
        "kube-prometheus-stack-kube-state-metrics",
        "monitoring",
        [("http", 8080, 8080, "TCP")],
        selector={
            "app.kubernetes.io/instance": "kube-prometheus-stack",
            "app.kubernetes.io/name": "kube-state-metrics",
        },
        labels=kps | {"app.kubernetes.io/name": "kube-state-metrics"},
    )

    # ---- mlops: MLflow tracking server and MinIO
    mlflow_labels = {
        "app.kubernetes.io/instance": "mlflow",
        "app.kubernetes.io/name": "mlflow",
        "app.kubernetes.io/version": "2.17.2",
    }
    deployment(
        "mlflow",
        "mlops",
        pod_spec(
            [
                container(
                    "mlflow",
                    "ghcr.io/mlflow/mlflow:v2.17.2",
                    command=["mlflow", "server"],
                    args=[
                        "--host=0.0.0.0",
                        "--port=5000",
                        "--backend-store-uri=postgresql://mlflow@mlflow-postgresql:5432/mlflow",
                        "--artifacts-destination=s3://mlflow/artifacts",
                    ],
                    ports=[("http", 5000, "TCP")],
                    env=[
                        {
                            "name": "MLFLOW_S3_ENDPOINT_URL",
                            "value": "http://minio.mlops.svc.cluster.local:9000",
                        }
                    ],
                    resources={"requests": {"cpu": "250m", "memory": "512Mi"}},
                )
            ],
            sa="mlflow",
        ),
        labels=mlflow_labels,
        selector={"app.kubernetes.io/instance": "mlflow", "app.kubernetes.io/name": "mlflow"},
        nodes=[GPU_NODES[1]],
    )
    service(
        "mlflow",
        "mlops",
        [("http", 5000, "http", "TCP")],
        selector={"app.kubernetes.io/instance": "mlflow", "app.kubernetes.io/name": "mlflow"},
        labels=mlflow_labels,
    )
    minio_labels = {
        "app": "minio",
        "app.kubernetes.io/instance": "minio",
        "app.kubernetes.io/name": "minio",
        "app.kubernetes.io/version": "RELEASE.2024-10-13T13-34-11Z",
    }
    deployment(
        "minio",
        "mlops",
        pod_spec(
            [
                container(
                    "minio",
                    "quay.io/minio/minio:RELEASE.2024-10-13T13-34-11Z",
                    command=[
                        "/bin/sh",
                        "-ce",
                        "/usr/bin/docker-entrypoint.sh minio server /export "
                        "-S /etc/minio/certs/ --address :9000 "
                        "--console-address :9001",
                    ],
                    ports=[("http", 9000, "TCP"), ("http-console", 9001, "TCP")],
                    resources={"requests": {"memory": "1Gi"}},
                )
            ],
            sa="minio-sa",
        ),
        labels=minio_labels,
        selector={"app": "minio"},
        nodes=[GPU_NODES[0]],
    )
    service(
        "minio",
        "mlops",
        [("http", 9000, 9000, "TCP")],
        selector={"app": "minio"},
        labels=minio_labels,
    )
    service(
        "minio-console",
        "mlops",
        [("http", 9001, 9001, "TCP")],
        selector={"app": "minio"},
        labels=minio_labels,
    )
    for ing_name, ns, host, svc, port in [
        ("mlflow", "mlops", "mlflow.cloud-cluster.local", "mlflow", 5000),
        ("minio", "mlops", "minio.cloud-cluster.local", "minio", 9000),
        (
            "kube-prometheus-stack-grafana",
            "monitoring",
            "grafana.cloud-cluster.local",
            "kube-prometheus-stack-grafana",
            80,
        ),
    ]:
        add(ingress(ing_name, ns, host, svc, port))

    # ---- production: the mnist InferenceService, KServe RawDeployment mode
    isvc_labels = {
        "app": "isvc.mnist-predictor",
        "component": "predictor",
        "serving.kserve.io/inferenceservice": "mnist",
    }
    ts_image = "pytorch/torchserve-kfs:0.9.0"
    mnist_spec = pod_spec(
        [
            container(
                "kserve-container",
                ts_image,
                args=[
                    "torchserve",
                    "--start",
                    "--model-store=/mnt/models/model-store",
                    "--ts-config=/mnt/models/config/config.properties",
                ],
                ports=[("", 8080, "TCP")],
                env=[
                    {"name": "PROTOCOL_VERSION", "value": "v1"},
                    {"name": "STORAGE_URI", "value": "s3://models/mnist/v1"},
                ],
                resources={
                    "limits": {"cpu": "1", "memory": "2Gi"},
                    "requests": {"cpu": "1", "memory": "2Gi"},
                },
            )
        ],
        init=[
            container(
                "storage-initializer",
                "kserve/storage-initializer:v0.13.0",
                args=["s3://models/mnist/v1", "/mnt/models"],
                resources={
                    "limits": {"cpu": "1", "memory": "1Gi"},
                    "requests": {"cpu": "100m", "memory": "100Mi"},
                },
            )
        ],
        sa="kserve-s3-sa",
    )
    deployment(
        "mnist-predictor",
        "production",
        mnist_spec,
        labels=isvc_labels | {"serving.kserve.io/inferenceservice": "mnist"},
        selector={"app": "isvc.mnist-predictor"},
        created=DEPLOYED,
        annotations={"serving.kserve.io/deploymentMode": "RawDeployment"},
        pod_annotations={
            "serving.kserve.io/deploymentMode": "RawDeployment",
            "prometheus.kserve.io/path": "/metrics",
            "prometheus.kserve.io/port": "8082",
        },
        nodes=[GPU_NODES[0]],
    )
    dep = next(
        o
        for o in OBJECTS
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "mnist-predictor"
    )
    dep["metadata"]["ownerReferences"] = [
        owner_ref("InferenceService", "serving.kserve.io/v1beta1", "mnist", "production")
    ]
    service(
        "mnist-predictor",
        "production",
        [("mnist-predictor", 80, 8080, "TCP")],
        selector={"app": "isvc.mnist-predictor"},
        labels=isvc_labels,
        created=DEPLOYED,
    )
    add(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": meta(
                "mnist-predictor",
                "production",
                kind="HorizontalPodAutoscaler",
                created=DEPLOYED,
                labels=isvc_labels,
                owner=owner_ref(
                    "InferenceService", "serving.kserve.io/v1beta1", "mnist", "production"
                ),
            ),
            "spec": {
                "maxReplicas": 3,
                "minReplicas": 1,
                "metrics": [
                    {
                        "resource": {
                            "name": "cpu",
                            "target": {"averageUtilization": 80, "type": "Utilization"},
                        },
                        "type": "Resource",
                    }
                ],
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "mnist-predictor",
                },
            },
            "status": {
                "conditions": [
                    {
                        "lastTransitionTime": DEPLOYED,
                        "message": "recommended size matches current size",
                        "reason": "ReadyForNewScale",
                        "status": "True",
                        "type": "AbleToScale",
                    },
                    {
                        "lastTransitionTime": DEPLOYED,
                        "message": "the HPA was able to successfully calculate a replica count "
                        "from cpu "
                        "resource utilization (percentage of request)",
                        "reason": "ValidMetricFound",
                        "status": "True",
                        "type": "ScalingActive",
                    },
                    {
                        "lastTransitionTime": DEPLOYED,
                        "message": "the desired count is within the acceptable range",
                        "reason": "DesiredWithinRange",
                        "status": "False",
                        "type": "ScalingLimited",
                    },
                ],
                "currentMetrics": [
                    {
                        "resource": {
                            "current": {"averageUtilization": 3, "averageValue": "31m"},
                            "name": "cpu",
                        },
                        "type": "Resource",
                    }
                ],
                "currentReplicas": 1,
                "desiredReplicas": 1,
            },
        }
    )
    ing = ingress(
        "mnist",
        "production",
        "mnist-production.example.com",
        "mnist-predictor",
        80,
        created=DEPLOYED,
    )
    ing["metadata"]["ownerReferences"] = [
        owner_ref("InferenceService", "serving.kserve.io/v1beta1", "mnist", "production")
    ]
    add(ing)
    add(
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": meta(
                "mnist",
                "production",
                kind="InferenceService",
                created=DEPLOYED,
                annotations={
                    "serving.kserve.io/autoscalerClass": "hpa",
                    "serving.kserve.io/deploymentMode": "RawDeployment",
                    "serving.kserve.io/metric": "cpu",
                    "serving.kserve.io/targetUtilizationPercentage": "80",
                },
            )
            | {"finalizers": ["inferenceservice.finalizers"], "generation": 1},
            "spec": {
                "predictor": {
                    "maxReplicas": 3,
                    "minReplicas": 1,
                    "model": {
                        "modelFormat": {"name": "pytorch"},
                        "name": "",
                        "protocolVersion": "v1",
                        "resources": {
                            "limits": {"cpu": "1", "memory": "2Gi"},
                            "requests": {"cpu": "1", "memory": "2Gi"},
                        },
                        "runtime": "kserve-torchserve",
                        "storageUri": "s3://models/mnist/v1",
                    },
                    "serviceAccountName": "kserve-s3-sa",
                }
            },
            "status": {
                "address": {"url": "http://mnist-predictor.production.svc.cluster.local"},
                "components": {"predictor": {}},
                "conditions": [
                    {
                        "lastTransitionTime": "2025-01-20T14:06:02Z",
                        "status": "True",
                        "type": "IngressReady",
                    },
                    {
                        "lastTransitionTime": "2025-01-20T14:06:02Z",
                        "status": "True",
                        "type": "PredictorReady",
                    },
                    {
                        "lastTransitionTime": "2025-01-20T14:06:02Z",
                        "status": "True",
                        "type": "Ready",
                    },
                ],
                "deploymentMode": "RawDeployment",
                "modelStatus": {
                    "copies": {"failedCopies": 0, "totalCopies": 1},
                    "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
                    "transitionStatus": "UpToDate",
                },
                "observedGeneration": 1,
                "url": "http://mnist-production.example.com",
            },
        }
    )

    # ---- CRDs (the ones that the installed add-ons register; schemas shortened)
    isvc_cols = [
        {"jsonPath": ".status.url", "name": "URL", "type": "string"},
        {
            "jsonPath": ".status.conditions[?(@.type=='Ready')].status",
            "name": "Ready",
            "type": "string",
        },
        {
            "jsonPath": ".status.components.predictor.traffic[?(@.tag=='prev')].percent",
            "name": "Prev",
            "type": "integer",
        },
        {
            "jsonPath": ".status.components.predictor.traffic[?(@.latestRevision==true)].percent",
            "name": "Latest",
            "type": "integer",
        },
        {
            "jsonPath": ".status.components.predictor.traffic[?(@.tag=='prev')].revisionName",
            "name": "PrevRolledoutRevision",
            "type": "string",
        },
        {
            "jsonPath": ".status.components.predictor.traffic"
            "[?(@.latestRevision==true)].revisionName",
            "name": "LatestReadyRevision",
            "type": "string",
        },
        {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"},
    ]
    kserve_crd_labels = {
        "app.kubernetes.io/instance": "kserve-crd",
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/name": "kserve-crd",
        "app.kubernetes.io/version": "v0.13.0",
        "helm.sh/chart": "kserve-crd-v0.13.0",
    }
    crds = [
        (
            "serving.kserve.io",
            "inferenceservices",
            "InferenceService",
            "Namespaced",
            ["isvc"],
            ["v1beta1"],
            isvc_cols,
            kserve_crd_labels,
            {
                "cert-manager.io/inject-ca-from": "kserve/serving-cert",
                "controller-gen.kubebuilder.io/version": "v0.12.0",
            },
        ),
        (
            "serving.kserve.io",
            "servingruntimes",
            "ServingRuntime",
            "Namespaced",
            [],
            ["v1alpha1"],
            [
                {"jsonPath": ".spec.disabled", "name": "Disabled", "type": "boolean"},
                {
                    "jsonPath": ".spec.supportedModelFormats[*].name",
                    "name": "ModelType",
                    "type": "string",
                },
                {"jsonPath": ".spec.containers[*].name", "name": "Containers", "type": "string"},
                {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"},
            ],
            kserve_crd_labels,
            {"controller-gen.kubebuilder.io/version": "v0.12.0"},
        ),
        (
            "serving.kserve.io",
            "clusterservingruntimes",
            "ClusterServingRuntime",
            "Cluster",
            [],
            ["v1alpha1"],
            [
                {"jsonPath": ".spec.disabled", "name": "Disabled", "type": "boolean"},
                {
                    "jsonPath": ".spec.supportedModelFormats[*].name",
                    "name": "ModelType",
                    "type": "string",
                },
                {"jsonPath": ".spec.containers[*].name", "name": "Containers", "type": "string"},
                {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"},
            ],
            kserve_crd_labels,
            {"controller-gen.kubebuilder.io/version": "v0.12.0"},
        ),
        (
            "serving.kserve.io",
            "trainedmodels",
            "TrainedModel",
            "Namespaced",
            ["tm"],
            ["v1alpha1"],
            [
                {"jsonPath": ".status.url", "name": "URL", "type": "string"},
                {
                    "jsonPath": ".status.conditions[?(@.type=='Ready')].status",
                    "name": "Ready",
                    "type": "string",
                },
                {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"},
            ],
            kserve_crd_labels,
            {"controller-gen.kubebuilder.io/version": "v0.12.0"},
        ),
        (
            "serving.kserve.io",
            "inferencegraphs",
            "InferenceGraph",
            "Namespaced",
            ["ig"],
            ["v1alpha1"],
            [
                {"jsonPath": ".status.url", "name": "URL", "type": "string"},
                {
                    "jsonPath": ".status.conditions[?(@.type=='Ready')].status",
                    "name": "Ready",
                    "type": "string",
                },
                {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"},
            ],
            kserve_crd_labels,
            {"controller-gen.kubebuilder.io/version": "v0.12.0"},
        ),
        (
            "serving.kserve.io",
            "clusterstoragecontainers",
            "ClusterStorageContainer",
            "Cluster",
            [],
            ["v1alpha1"],
            [],
            kserve_crd_labels,
            {"controller-gen.kubebuilder.io/version": "v0.12.0"},
        ),
        (
            "nvidia.com",
            "clusterpolicies",
            "ClusterPolicy",
            "Cluster",
            [],
            ["v1"],
            [
                {"jsonPath": ".status.state", "name": "Status", "type": "string"},
                {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "string"},
            ],
            helm | {"app.kubernetes.io/component": "gpu-operator"},
            {"controller-gen.kubebuilder.io/version": "v0.14.0"},
        ),
        (
            "nvidia.com",
            "nvidiadrivers",
            "NVIDIADriver",
            "Cluster",
            ["nvd", "nvdriver", "nvdrivers"],
            ["v1alpha1"],
            [
                {"jsonPath": ".status.state", "name": "Status", "type": "string"},
                {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "string"},
            ],
            helm | {"app.kubernetes.io/component": "gpu-operator"},
            {"controller-gen.kubebuilder.io/version": "v0.14.0"},
        ),
        (
            "monitoring.coreos.com",
            "prometheuses",
            "Prometheus",
            "Namespaced",
            ["prom"],
            ["v1"],
            [
                {"jsonPath": ".spec.version", "name": "Version", "type": "string"},
                {"jsonPath": ".spec.replicas", "name": "Desired", "type": "integer"},
                {"jsonPath": ".status.availableReplicas", "name": "Ready", "type": "integer"},
                {
                    "jsonPath": ".status.conditions[?(@.type == 'Reconciled')].status",
                    "name": "Reconciled",
                    "type": "string",
                },
                {
                    "jsonPath": ".status.conditions[?(@.type == 'Available')].status",
                    "name": "Available",
                    "type": "string",
                },
                {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"},
            ],
            {},
            {
                "controller-gen.kubebuilder.io/version": "v0.16.4",
                "operator.prometheus.io/version": "0.78.2",
            },
        ),
        (
            "monitoring.coreos.com",
            "servicemonitors",
            "ServiceMonitor",
            "Namespaced",
            ["smon"],
            ["v1"],
            [],
            {},
            {
                "controller-gen.kubebuilder.io/version": "v0.16.4",
                "operator.prometheus.io/version": "0.78.2",
            },
        ),
        (
            "cert-manager.io",
            "certificates",
            "Certificate",
            "Namespaced",
            ["cert", "certs"],
            ["v1"],
            [
                {
                    "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                    "name": "Ready",
                    "type": "string",
                },
                {"jsonPath": ".spec.secretName", "name": "Secret", "type": "string"},
                {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"},
            ],
            {
                "app.kubernetes.io/instance": "cert-manager",
                "app.kubernetes.io/name": "cert-manager",
                "app.kubernetes.io/version": "v1.15.3",
            },
            {},
        ),
        (
            "cert-manager.io",
            "issuers",
            "Issuer",
            "Namespaced",
            [],
            ["v1"],
            [
                {
                    "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                    "name": "Ready",
                    "type": "string",
                },
                {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"},
            ],
            {
                "app.kubernetes.io/instance": "cert-manager",
                "app.kubernetes.io/name": "cert-manager",
                "app.kubernetes.io/version": "v1.15.3",
            },
            {},
        ),
    ]
    for group, plural, kind, scope, short, versions, cols, labels, ann in crds:
        names = {
            "kind": kind,
            "listKind": kind + "List",
            "plural": plural,
            "singular": kind.lower(),
        }
        if short:
            names["shortNames"] = short
        vers = []
        for i, v in enumerate(versions):
            ver: dict[str, Any] = {
                "name": v,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
                "served": True,
                "storage": i == len(versions) - 1,
            }
            if cols:
                ver["additionalPrinterColumns"] = cols
            ver["subresources"] = {"status": {}}
            vers.append(ver)
        name = f"{plural}.{group}"
        add(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": meta(
                    name,
                    kind="CustomResourceDefinition",
                    labels=labels or None,
                    annotations=ann or None,
                )
                | {"generation": 1},
                "spec": {
                    "conversion": {"strategy": "None"},
                    "group": group,
                    "names": names,
                    "scope": scope,
                    "versions": vers,
                },
                "status": {
                    "acceptedNames": names,
                    "conditions": [
                        {
                            "lastTransitionTime": INSTALLED,
                            "message": "no conflicts found",
                            "reason": "NoConflicts",
                            "status": "True",
                            "type": "NamesAccepted",
                        },
                        {
                            "lastTransitionTime": INSTALLED,
                            "message": "the initial names have been accepted",
                            "reason": "InitialNamesAccepted",
                            "status": "True",
                            "type": "Established",
                        },
                    ],
                    "storedVersions": [versions[-1]],
                },
            }
        )

    return {
        "_comment": "Seed objects of the Kubernetes API STAND-IN (not a real cluster). "
        "Generated by build_cluster.py; edit that script and rerun it.",
        "version": {
            "major": "1",
            "minor": "29",
            "gitVersion": K8S_VERSION,
            "gitCommit": "a4e6d3d9d1e5a8b1bd4a1c7b0d8bc3b7e1e0f0a1",
            "gitTreeState": "clean",
            "buildDate": "2024-10-22T20:26:40Z",
            "goVersion": "go1.22.8",
            "compiler": "gc",
            "platform": "linux/amd64",
        },
        "objects": OBJECTS[:],
    }


def ingress(name: str, ns: str, host: str, svc: str, port: int, created: str = INSTALLED) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta(name, ns, kind="Ingress", created=created) | {"generation": 1},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "backend": {"service": {"name": svc, "port": {"number": port}}},
                                "path": "/",
                                "pathType": "Prefix",
                            }
                        ]
                    },
                }
            ],
        },
        "status": {"loadBalancer": {"ingress": [{"ip": NODE_IP["k8s-gpu-01"]}]}},
    }


def render() -> str:
    return json.dumps(build(), indent=1, sort_keys=False) + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text() == text else 1)
    OUT.write_text(text)
    print(f"wrote {OUT} ({len(build()['objects'])} objects)")
