"""Every SLURM corpus case through the parser the platform uses for that command's output
(core.parse.slurm; sacct through core.slurm_jobs.outcome_from_sacct, which decides whether a smoke
job succeeded). Facts are what a correct reading gives; ``error`` names the documented
ValueError a case must raise (a node list or state cut to its column width, a grep-trimmed
block): unreadable output is never read as a healthy cluster or a succeeded job."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_assets.core import slurm_jobs as sj
from mlops_assets.core.parse.slurm import jobs as sl_jobs
from mlops_assets.core.parse.slurm import nodes as sl_nodes
from mlops_assets.core.parse.slurm import states as sl_states
from mlops_assets_tests.corpus import Case, cases

TOOLS = ("sinfo", "scontrol_node", "scontrol_partition", "scontrol_config", "squeue", "sacct")
ALL = [c for t in TOOLS for c in cases(t)]


def _nodes_facts(nodes: list[sl_nodes.SlurmNode], facts: dict[str, Any]) -> None:
    by_name = {n.name: n for n in nodes}
    if "nodes" in facts:
        assert len(by_name) == facts["nodes"], sorted(by_name)
    if "names" in facts:
        assert sorted(by_name) == sorted(facts["names"])
    for name, state in (facts.get("states") or {}).items():
        assert str(by_name[name].state) == state, (name, by_name[name].state)
    if "unhealthy" in facts:
        assert sorted(n.name for n in nodes if not n.state.healthy) == sorted(facts["unhealthy"])
    if "available" in facts:
        assert sum(n.state.available for n in nodes) == facts["available"]
    for name, parts in (facts.get("partitions") or {}).items():
        assert list(by_name[name].partitions) == parts, (name, by_name[name].partitions)
    for name, gpus in (facts.get("gpus") or {}).items():
        assert by_name[name].gpus == gpus, (name, by_name[name].gres)
    for name, cpus in (facts.get("cpus") or {}).items():
        assert by_name[name].cpus == cpus, name
    for name, text in (facts.get("reasons") or {}).items():
        reason = by_name[name].reason
        assert reason is not None and reason.text == text, (name, reason)
    for name, mismatch in (facts.get("gres_mismatch") or {}).items():
        got = sl_states.parse_gres_mismatch(by_name[name].reason)
        assert got is not None and [got.found, got.configured] == mismatch, name


def _sinfo(case: Case) -> None:
    _nodes_facts(sl_nodes.parse_sinfo_nodes(case.output), case.facts)


def _scontrol_node(case: Case) -> None:
    _nodes_facts(sl_nodes.parse_scontrol_nodes(case.output), case.facts)


def _scontrol_partition(case: Case) -> None:
    parts = {p.name: p for p in sl_nodes.parse_scontrol_partitions(case.output)}
    want = case.facts["partitions"]
    assert sorted(parts) == sorted(want)
    for name, fact in want.items():
        p = parts[name]
        if "state" in fact:
            assert p.state == fact["state"], (name, p.state)
        if "nodes" in fact:
            assert len(p.nodes) == fact["nodes"], (name, p.nodes)
        if "default" in fact:
            assert p.default == fact["default"], name
        if "gpus" in fact:
            assert p.gpus == fact["gpus"], name


def _scontrol_config(case: Case) -> None:
    cfg = sl_nodes.parse_scontrol_config(case.output)
    for key, value in case.facts["keys"].items():
        assert cfg.get(key) == value, (key, cfg.get(key))


def _squeue(case: Case) -> None:
    recs = sl_jobs.parse_squeue(case.output)
    by_id = {r.job_id: r for r in recs}
    facts = case.facts
    if "jobs" in facts:
        assert len(recs) == facts["jobs"]
    for job, state in (facts.get("states") or {}).items():
        assert by_id[job].state == state, (job, by_id[job].state)
    for job, reason in (facts.get("reasons") or {}).items():
        assert by_id[job].reason == reason, (job, by_id[job].reason)
    for job, nodes in (facts.get("nodes") or {}).items():
        assert list(by_id[job].nodes) == nodes, (job, by_id[job].nodes)


def _sacct(case: Case) -> None:
    recs = sl_jobs.parse_sacct(case.output)
    facts = case.facts
    if "records" in facts:
        assert len(recs) == facts["records"]
    by_id = {r.job_id: r for r in recs}
    for job_id, state in (facts.get("states") or {}).items():
        assert by_id[job_id].state == state, (job_id, by_id[job_id].state)
    # The production verdict on each job: PASS only for a job whose line and steps all succeeded.
    for job, verdict in (facts.get("outcomes") or {}).items():
        out = sj.outcome_from_sacct(case.output, job)
        assert out is not None, job
        assert ("PASS" if out.succeeded else "FAIL") == verdict, (job, out.describe())


RUN = {
    "sinfo": _sinfo,
    "scontrol_node": _scontrol_node,
    "scontrol_partition": _scontrol_partition,
    "scontrol_config": _scontrol_config,
    "squeue": _squeue,
    "sacct": _sacct,
}


def test_slurm_share_of_the_corpus() -> None:
    assert len(ALL) >= 65, len(ALL)
    assert {c.tool for c in ALL} == set(TOOLS)


@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_slurm_case(case: Case) -> None:
    error = case.facts.get("error")
    if error is not None:
        with pytest.raises(ValueError, match=str(error)):
            RUN[case.tool](case)
        return
    RUN[case.tool](case)
