"""Kubernetes objects from other clusters (kubectl get -o yaml/json, i.e. what the API server
answers) through the production cloud rules (core/probes/cloud.py): each case's facts and
verdict, and never a PASS for a broken platform."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.probes import cloud
from mlops_assets_tests.corpus import Case, cases

KUBE = cases("kubernetes")


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


def test_the_kubernetes_share_of_the_corpus_is_there() -> None:
    assert KUBE


@pytest.mark.parametrize("case", KUBE, ids=[c.id for c in KUBE])
def test_kubernetes(case: Case, catalog: Catalog) -> None:
    f = case.facts
    obj = yaml.safe_load(case.output)
    if f["kind"] == "nodes":
        kube = ReplayKube({"/api/v1/nodes": _as_list(obj)})
        nodes = kube.answers["/api/v1/nodes"]["items"]
        assert len(nodes) == f["nodes"]
        res = catalog.cloud.kubernetes.gpu_resource
        for name, n in f.get("allocatable_gpus", {}).items():
            node = next(x for x in nodes if x["metadata"]["name"] == name)
            assert cloud._allocatable_gpus(node, res) == n
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
            for word in f["reason_words"]:
                assert word in why, why
        path = f"/apis/serving.kserve.io/v1beta1/namespaces/{obj['metadata'].get('namespace', 'default')}/inferenceservices"
        kube = ReplayKube({path: _as_list(obj)})
        catalog = catalog.model_copy(deep=True)
        catalog.cloud.components.kserve.watched_namespaces = [obj["metadata"].get("namespace", "default")]
        out = cloud.kserve_isvcs_ready(kube, catalog)
    else:
        pytest.fail(f"{case.id}: unknown kind {f['kind']}")
    assert ("PASS" if out.passed else "FAIL") == case.verdict, out
