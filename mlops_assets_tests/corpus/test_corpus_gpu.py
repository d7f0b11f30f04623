"""nvidia-smi and nccl-tests outputs from other clusters through the production parsers and
rules: every case's facts and verdict, no crash (a parser may only raise its ValueError, which
a case expects through ``facts: {error: ...}``), and never a PASS for a broken platform."""

from __future__ import annotations

import re
from typing import Any

import pytest

from mlops_assets.catalog.loader import DEFAULT_CATALOG, load_catalog
from mlops_assets.core.parse import nccl_tests, nvidia_smi
from mlops_assets.core.probes.hpc import judge_smi_output
from mlops_assets_tests.corpus import Case, cases

CATALOG = load_catalog(DEFAULT_CATALOG, "production", env={"MLOPS_SANDBOX_HOME": "/x"}).catalog
PROFILES = {k: p.model_dump() for k, p in CATALOG.smoke.gpu_profiles.items()}
MIN_DRIVER = CATALOG.hpc.gpus.min_driver_version


def _ids(cs: list[Case]) -> list[str]:
    return [c.id for c in cs]


ERRORS = cases("nvidia_smi_error")
LISTS = cases("nvidia_smi_L")
CSVS = cases("nvidia_smi_csv")
QS = cases("nvidia_smi_q")
BANNERS = cases("nvidia_smi_banner")
NCCL = cases("nccl_tests")


def test_gpu_share_of_the_corpus() -> None:
    assert len(ERRORS + LISTS + CSVS + QS + BANNERS + NCCL) >= 75
    classes = {c.facts["error_class"] for c in ERRORS}
    assert {
        "version_mismatch",
        "no_devices",
        "device_handle",
        "gpu_lost",
        "driver_not_loaded",
    } <= classes


@pytest.mark.parametrize("case", ERRORS, ids=_ids(ERRORS))
def test_nvidia_smi_failure_is_named_with_its_fix(case: Case) -> None:
    failure = nvidia_smi.classify_failure(case.output)
    assert failure is not None and failure.cause == case.facts["error_class"], case.id
    assert failure.hint and failure.line
    # The node rule on the same text, whether nvidia-smi's exit code came through or not.
    for rc in (1, 0):
        health, named = judge_smi_output(
            "node1", rc, case.output, "", expected_count=2, min_driver=MIN_DRIVER
        )
        assert health.verdict == case.verdict == "FAIL", case.id
        assert named == failure and failure.meaning in health.fact
    with pytest.raises(ValueError):
        nvidia_smi.parse_query_gpu(case.output)


def test_distinct_failures_get_distinct_fixes() -> None:
    hints = {nvidia_smi.classify_failure(c.output).hint for c in ERRORS}  # type: ignore[union-attr]
    assert len(hints) == len({c.facts["error_class"] for c in ERRORS})
    mismatch = nvidia_smi.classify_failure(
        next(c.output for c in ERRORS if c.facts["error_class"] == "version_mismatch")
    )
    assert mismatch is not None and "reboot" in mismatch.hint and "not needed" in mismatch.hint


@pytest.mark.parametrize("case", LISTS, ids=_ids(LISTS))
def test_nvidia_smi_list(case: Case) -> None:
    f = case.facts
    if f.get("strict_error"):
        with pytest.raises(ValueError):
            nvidia_smi.parse_nvidia_smi_list(case.output)
    gpus = nvidia_smi.parse_nvidia_smi_list(case.output, strict=not f.get("strict_error"))
    assert len(gpus) == f["gpus"]
    assert sorted({g.name for g in gpus}) == f["names"]
    assert [len(g.mig_devices) for g in gpus] == f["mig_devices"]
    assert [g.index for g in gpus] == list(range(len(gpus)))
    if "mig_profiles" in f:
        assert sorted({m.profile for g in gpus for m in g.mig_devices}) == f["mig_profiles"]


def _fields(case: Case) -> list[str]:
    m = re.search(r"--query-gpu=(\S+)", str(case.meta["command"]))
    assert m, case.id
    return m.group(1).split(",")


@pytest.mark.parametrize("case", CSVS, ids=_ids(CSVS))
def test_nvidia_smi_csv(case: Case) -> None:
    f = case.facts
    fields = _fields(case)
    if "error" in f:
        with pytest.raises(ValueError, match=f["error"]):
            nvidia_smi.parse_query_csv(case.output, fields)
        return
    rows = nvidia_smi.parse_query_csv(case.output, fields)
    assert len(rows) == f["rows"]
    for key, want in f["values"].items():
        assert rows[0][key] == want, key
    assert not any(v in ("N/A", "[N/A]", "[Not Supported]") for r in rows for v in r.values())
    gpus = nvidia_smi.parse_query_gpu(case.output, fields)
    health = nvidia_smi.judge_gpu_health(gpus, where=case.name, min_driver=MIN_DRIVER)
    assert health.verdict == case.verdict, health
    assert health.verdict != "PASS" or not health.unjudged


@pytest.mark.parametrize("case", QS, ids=_ids(QS))
def test_nvidia_smi_q(case: Case) -> None:
    f = case.facts
    if "error" in f:
        with pytest.raises(ValueError, match=f["error"]):
            nvidia_smi.parse_nvidia_smi_q(case.output)
        return
    gpus = nvidia_smi.parse_nvidia_smi_q(case.output)
    assert len(gpus) == f["gpus"]
    assert sorted({g.name for g in gpus}) == f["names"]
    assert {g.driver_version for g in gpus} == {f["driver"]}
    assert gpus[0].uuid == f["uuid0"]
    if "pending_retirement" in f:
        assert [g.index for g in gpus if g.retired_pages_pending] == f["pending_retirement"]
    health = nvidia_smi.judge_gpu_health(gpus, where=case.name, min_driver=MIN_DRIVER)
    assert health.verdict == case.verdict, health
    for i in f.get("pending_retirement", []):
        assert any(
            p.startswith(f"{case.name} GPU{i}: page retirement pending") for p in health.problems
        ), health


@pytest.mark.parametrize("case", BANNERS, ids=_ids(BANNERS))
def test_nvidia_smi_banner(case: Case) -> None:
    v = nvidia_smi.parse_nvidia_smi_versions(case.output)
    assert (v.driver, v.cuda) == (case.facts["driver"], case.facts["cuda"])


@pytest.mark.parametrize("case", NCCL, ids=_ids(NCCL))
def test_all_reduce_perf(case: Case) -> None:
    f: dict[str, Any] = case.facts
    if "error" in f:
        with pytest.raises(ValueError, match=f["error"]):
            nccl_tests.parse_all_reduce_perf(case.output)
        return
    perf = nccl_tests.parse_all_reduce_perf(case.output)
    judged = nccl_tests.judge_all_reduce_perf(perf, PROFILES)
    assert judged["verdict"] == case.verdict, judged["messages"]
    assert len(perf.rows) == f["rows"]
    if "ranks" in f:
        assert perf.world_size == f["ranks"]
    if "hosts" in f:
        assert len(perf.hosts) == f["hosts"]
    if "malformed" in f:
        assert len(perf.problems) == f["malformed"]
    if perf.rows:
        largest = max(perf.rows, key=lambda r: r.bytes)
        assert largest.bytes == f["largest_bytes"]
        if "busbw_at_largest" in f:
            assert min(largest.oop_busbw, largest.ip_busbw) == f["busbw_at_largest"]
    for key, attr in (("avg_busbw", "avg_busbw"), ("out_of_bounds", "out_of_bounds")):
        if key in f:
            assert getattr(perf, attr) == f[key]
    if "gpu" in f:
        assert perf.gpu_names == [f["gpu"]]
    if "max_error" in f:
        assert max(r.max_error or 0 for r in perf.rows) == f["max_error"]
    assert judged["verdict"] != "PASS" or judged["messages"] == []
