"""Kubernetes objects from other clusters (kubectl get -o yaml/json, i.e. what the API server
answers) through the production cloud rules (core/probes/cloud/): each case's facts and
verdict, and never a PASS for a broken platform."""

from __future__ import annotations

import ast
from typing import Any

import pytest
import yaml

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.probes import cloud
from mlops_assets.core.probes.cloud import k8s
from mlops_assets_tests.corpus import Case, cases

KUBE = cases("kubernetes") + cases("kserve")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(profile="production", env={"MLOPS_SANDBOX_HOME": "/x"}).catalog


class ReplayKube:
    """Answers the API paths a rule asks for with the recorded objects (a list, or one
    object wrapped as the list the API returns)."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def get(self, path: str, query: dict[str, str] | None = None) -> Any:
        self.asked.append(path)
        return self.answers.get(path)


def _as_list(obj: dict[str, Any]) -> dict[str, Any]:
    return obj if "items" in obj else {"items": [obj]}


def _load(case: Case) -> Any:
    """YAML/JSON as kubectl prints it, or the Python dict repr the KServe SDK prints (after
    any warning lines the SDK wrote before it)."""
    if case.facts.get("format") == "python_repr":
        return ast.literal_eval(case.output[case.output.index("{'") :])
    return yaml.safe_load(case.output)


def test_the_kubernetes_share_of_the_corpus_is_there() -> None:
    assert KUBE


@pytest.mark.parametrize("case", KUBE, ids=[c.id for c in KUBE])
def test_kubernetes(case: Case, catalog: Catalog) -> None:
    f = case.facts
    obj = _load(case)
    if f["kind"] == "node_labels":
        # a labels map (jq .metadata.labels): the label test k8s_gpu_nodes applies to a node
        node = {"metadata": {"name": case.name, "labels": obj}}
        assert k8s._has_label(node, catalog.cloud.kubernetes.gpu_node_label) is f["gpu_node_label"]
        assert obj["nvidia.com/gpu.product"] == f["product"]
        assert int(obj["nvidia.com/gpu.count"]) == f["count"]
        assert obj["nvidia.com/mig.strategy"] == f["mig_strategy"]
        mig = {
            k.split("/")[1].removeprefix("mig-").removesuffix(".count"): int(v)
            for k, v in obj.items()
            if k.startswith("nvidia.com/mig-") and k.endswith(".count")
        }
        assert mig == f.get("mig_counts", {})
        return
    if f["kind"] == "nodes":
        kube = ReplayKube({"/api/v1/nodes": _as_list(obj)})
        nodes = kube.answers["/api/v1/nodes"]["items"]
        assert len(nodes) == f["nodes"]
        res = catalog.cloud.kubernetes.gpu_resource
        for name, n in f.get("allocatable_gpus", {}).items():
            node = next(x for x in nodes if x["metadata"]["name"] == name)
            assert k8s._allocatable_gpus(node, res) == n
        out = cloud.k8s_gpu_nodes(kube, catalog)
        assert out.measured == len(f["good"])
        assert sorted(out.nodes) == sorted(f["bad"])
        for name, why in f["bad"].items():
            assert f"{name}: {', '.join(why)}" in out.detail, out.detail
    elif f["kind"] == "isvc":
        why = cloud.isvc_not_ready(obj)
        if f["ready"]:
            assert why is None
        else:
            assert why is not None
            for word in f.get("reason_words", []):
                assert word in why, why
        ns = obj["metadata"].get("namespace", "default")
        ks = catalog.cloud.components.kserve
        path = f"/apis/serving.kserve.io/{ks.served_version}/namespaces/{ns}/inferenceservices"
        kube = ReplayKube({path: _as_list(obj)})
        components = catalog.cloud.components.model_copy(
            update={"kserve": ks.model_copy(update={"watched_namespaces": [ns]})}
        )
        watching = catalog.model_copy(
            update={"cloud": catalog.cloud.model_copy(update={"components": components})}
        )
        out = cloud.kserve_isvcs_ready(kube, watching)
        assert out.measured == (1 if f["ready"] else 0) and out.threshold == 1
    else:
        pytest.fail(f"{case.id}: unknown kind {f['kind']}")
    assert ("PASS" if out.passed else "FAIL") == case.verdict, out
