"""The DDP smoke's warning scan on real logs of multi-node jobs: NCCL WARN lines (sockets,
proxy, InfiniBand/RoCE), gloo's loopback fallback and full-mesh failure in torch 1.x and 2.x
prefixes; c10d store retries and NCCL INFO lines are not warnings. Each counted line names its
usual cause, and any one makes the DDP verdict a FAIL that quotes it."""

from __future__ import annotations

import pytest

from mlops_assets.core import ddp_rules as rules
from mlops_assets_tests.corpus import Case, cases

LOGS = cases("ddp_logs")


def test_ddp_logs_cover_nccl_gloo_and_the_quiet_cases() -> None:
    assert len(LOGS) >= 8
    assert {c.verdict for c in LOGS} == {"PASS", "FAIL"}
    text = "\n".join(c.output for c in LOGS)
    assert "NCCL WARN NET/IB" in text and "ProcessGroupGloo" in text and "socket.cpp" in text


@pytest.mark.parametrize("case", LOGS, ids=[c.id for c in LOGS])
def test_each_warning_is_counted_with_its_cause(case: Case) -> None:
    found = rules.comm_warnings(case.output)
    assert len(found) == case.facts["warnings"], [w["line"] for w in found]
    for w, cause in zip(found, case.facts["causes"], strict=True):
        assert cause in w["cause"], (w["line"], w["cause"])
        assert w["fix"] and w["line"] in case.output


@pytest.mark.parametrize("case", LOGS, ids=[c.id for c in LOGS])
def test_the_ddp_verdict_quotes_every_warning(case: Case) -> None:
    """A DDP run that was right in every other way: the log alone decides PASS or FAIL."""
    result = {
        "nodes": 2,
        "nodes_requested": 2,
        "expected_nodes": ["gpu01", "gpu02"],
        "ranks": [
            {"rank": 0, "node": "gpu01", "hostname": "gpu01"},
            {"rank": 1, "node": "gpu02", "hostname": "gpu02"},
        ],
        "allreduce_exact": True,
        "params_identical": True,
        "accuracy": 0.98,
        "total_seconds": 80.0,
        "speedup": 1.8,
        "comm_warnings": rules.comm_warnings(case.output),
    }
    judged = rules.judge_ddp(result, min_accuracy=0.95, max_seconds=600, min_speedup=1.0)
    assert judged["verdict"] == case.verdict, judged["messages"]
    quoted = [m for m in judged["messages"] if "warning:" in m]
    assert len(quoted) == case.facts["warnings"]
    assert all("fix:" in m for m in quoted)
