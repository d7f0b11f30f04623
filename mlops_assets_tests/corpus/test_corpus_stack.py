"""Apptainer/Singularity, BeeGFS and service-health outputs from other sites, read by the
production parsers and rules (core/parse/apptainer.py, core/probes/containers.py,
core/probes/hpc.py,
core/parse/storage.py, core/probes/cloud/). Every case must give its facts; no case may crash a
parser; no case showing a broken platform may PASS."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.checks import ProbeFailed
from mlops_assets.core.parse import apptainer as cli
from mlops_assets.core.parse import storage
from mlops_assets.core.parse.nvidia_smi import parse_nvidia_smi_list
from mlops_assets.core.probes import cloud, hpc
from mlops_assets.core.probes.containers import inside_start_failure, nv_exposes_gpus
from mlops_assets.core.transport.hostexec import CommandResult
from mlops_assets.core.transport.http import HttpAnswer
from mlops_assets_tests.corpus import Case, cases

APPTAINER = cases("apptainer")
BEEGFS = cases("beegfs")
HEALTH = cases("health")
MINIMUM = "1.1.0"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(profile="sandbox").catalog


# node probes read the partition first (core.probes.node_step): one idle GPU node in partition gpu
SINFO_IDLE_GPU_NODE = "n1|gpu|idle|8|64000|gpu:1|none\n"


class Replay:
    """A runner that answers every command with one recorded output (the rule under test runs
    for real on it)."""

    where = "login"

    def __init__(self, answer: Callable[[Sequence[str]], str], returncode: int = 0) -> None:
        self.answer = answer
        self.returncode = returncode

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        return CommandResult(tuple(argv), self.returncode, self.answer(argv), "", 0.01)

    def close(self) -> None:
        pass


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def test_the_stack_share_of_the_corpus_is_there() -> None:
    assert len(APPTAINER) >= 15 and len(BEEGFS) >= 3 and HEALTH


@pytest.mark.parametrize("case", APPTAINER, ids=[c.id for c in APPTAINER])
def test_apptainer(case: Case, catalog: Catalog) -> None:
    f = case.facts
    kind = f["kind"]
    if kind == "version":
        assert cli.parse_product_version(case.output) == (f["product"], f["version"])
        out = hpc.apptainer_outcome(case.output, MINIMUM)
        if f["product"] != "Apptainer":
            assert (
                f"{f['product']} {f['version']}" in out.detail
                and f"Apptainer >= {MINIMUM} needed" in out.detail
            )
        assert _verdict(out.passed) == case.verdict, out
    elif kind == "inspect":
        if "error" in f:
            with pytest.raises(ValueError, match=f["error"]):
                cli.parse_labels(case.output)
            return
        labels = cli.parse_labels(case.output)
        assert len(labels) == f["labels"]
        assert {k: labels[k] for k in f["label"]} == f["label"]
    elif kind == "exec_nv":
        failed = inside_start_failure(case.output)
        if f["started"]:
            assert (
                failed is None
                and len(parse_nvidia_smi_list(case.output, strict=False)) == f["gpus_inside"]
            )
        else:
            assert failed is not None and f["message"] in failed
        # the --nv rule on the same words inside its probe frame: never a pass, the cause named
        probe = (
            f"== outside\nGPU 0: NVIDIA A100 (UUID: GPU-x)\n== inside\n{case.output}== exit 255\n"
        )
        out = nv_exposes_gpus(
            Replay(lambda argv: SINFO_IDLE_GPU_NODE if argv[0] == "sinfo" else probe),
            "/c/x.sif",
            "gpu",
            1,
        )
        assert _verdict(out.passed) == case.verdict == "FAIL"
        assert ("did not start" in out.detail) is (not f["started"]), out.detail
    else:
        pytest.fail(f"{case.id}: unknown kind {kind}")


@pytest.mark.parametrize("case", BEEGFS, ids=[c.id for c in BEEGFS])
def test_beegfs(case: Case, catalog: Catalog) -> None:
    f = case.facts
    runner = Replay(lambda argv: case.output)
    if "error" in f:
        with pytest.raises(ValueError, match=f["error"]):
            storage.parse_beegfs_targets(case.output)
        with pytest.raises(ProbeFailed):
            hpc.beegfs_targets(runner, catalog)
        return
    targets = {t.target_id: t for t in storage.parse_beegfs_targets(case.output)}
    assert len(targets) == f["targets"]
    assert sorted(t.target_id for t in targets.values() if not t.good) == sorted(f["bad"])
    for tid, state in f.get("states", {}).items():
        assert f"{targets[tid].reachability}/{targets[tid].consistency}" == state
    for tid, node in f.get("node", {}).items():
        assert targets[tid].node == node
    out = hpc.beegfs_targets(runner, catalog)
    assert _verdict(out.passed) == case.verdict, out
    for tid in f["bad"]:
        assert f"target {tid}:" in out.detail


class Answer:
    url = "http://recorded"

    def __init__(self, body: str, status: int = 200) -> None:
        self.body, self.status = body.encode(), status

    def get(self, path: str, *, headers: dict[str, str] | None = None) -> HttpAnswer:
        return HttpAnswer(self.url + path, self.status, self.body, {}, 0.001)


RULES: dict[str, Callable[[Any, Catalog], Any]] = {
    "prometheus": cloud.prometheus_targets_up,
    "grafana": cloud.grafana_health,
    "mlflow": cloud.mlflow_health,
    "minio": cloud.minio_cluster_health,
}


@pytest.mark.parametrize("case", HEALTH, ids=[c.id for c in HEALTH])
def test_health(case: Case, catalog: Catalog) -> None:
    f = case.facts
    rule = RULES[f["service"]]
    # body_empty: the recorded text is curl's -w "%{http_code}" (or headers), not the body
    http = Answer("" if f.get("body_empty") else case.output, int(f.get("status", 200)))
    if f["service"] == "minio":  # the sandbox's S3 is SeaweedFS, without /minio/health/*
        catalog = load_catalog(profile="production", env={"MLOPS_SANDBOX_HOME": "/x"}).catalog
    if "error" in f:
        with pytest.raises(ProbeFailed, match=f["error"]):
            rule(http, catalog)
        return
    out = rule(http, catalog)
    assert _verdict(out.passed) == case.verdict, out
    for key in ("targets_up", "targets_total", "targets_not_scraped"):
        if key in f:
            assert out.extra[key] == f[key], (key, out.extra)
    if f["service"] == "minio":
        assert out.measured == f["status"]
