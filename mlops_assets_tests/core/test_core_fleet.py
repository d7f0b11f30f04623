"""core/fleet.py: the peers rule (leave-one-out, robust for small fleets), the own-past rule,
bounded history and the check outcomes, on the edge cases a real fleet produces."""

from __future__ import annotations

import json
import math

import pytest

from mlops_assets.core import fleet
from mlops_assets.core.checks import Severity

RULE = fleet.FleetRule()
FIG = "smoke_gpu.min_matmul_bf16_tflops"


def test_one_slow_node_of_four_is_named_although_no_node_is_2_sigma_out_of_all_four() -> None:
    values = {"n1": 776.0, "n2": 781.0, "n3": 779.0, "n4": 540.0}
    # counted with itself, the slow node is only 1.5 sigma out: (n-1)/sqrt(n) for n = 4
    import statistics

    allv = list(values.values())
    assert (statistics.fmean(allv) - 540) / statistics.pstdev(allv) < 2
    j = fleet.judge_group(FIG, values, RULE)
    assert [f.node for f in j.findings] == ["n4"]
    f = j.findings[0]
    assert f.kind == fleet.FLEET and f.sigmas is not None and f.sigmas > 2
    assert f.fraction == pytest.approx(540 / 779, rel=1e-6)
    assert "n4" in f.message and "peers" in f.message and not j.unjudged


@pytest.mark.parametrize("n", [1, 2])
def test_fewer_than_three_nodes_cannot_be_judged(n: int) -> None:
    values = {f"n{i}": 100.0 - 50 * i for i in range(n)}
    j = fleet.judge_group(FIG, values, RULE)
    assert j.findings == () and "cannot be judged" in j.unjudged
    out = fleet.peers_outcome(fleet.FleetReport(fleet=[j]), RULE)
    assert not out.passed and out.severity == Severity.WARN and out.measured == "unjudged"


def test_all_equal_zero_variance_names_nobody_and_a_small_dip_is_within_the_noise_floor() -> None:
    assert fleet.judge_group(FIG, {"a": 5.0, "b": 5.0, "c": 5.0, "d": 5.0}, RULE).findings == ()
    # identical peers: sigma 0, floored at 5 % of the mean, so 2 % below is no outlier ...
    j = fleet.judge_group(FIG, {"a": 100.0, "b": 100.0, "c": 100.0, "d": 98.0}, RULE)
    assert j.findings == ()
    # ... but 15 % below is (2 x 5 % = 10 % < 15 %), by the sigma rule alone
    j = fleet.judge_group(FIG, {"a": 100.0, "b": 100.0, "c": 100.0, "d": 85.0}, RULE)
    assert [f.node for f in j.findings] == ["d"] and "sigma" in j.findings[0].message
    assert "median" not in j.findings[0].message  # 85 % is above the 80 % median rule


def test_all_zero_figures_name_nobody() -> None:
    assert fleet.judge_group(FIG, {"a": 0.0, "b": 0, "c": 0.0}, RULE).findings == ()


def test_missing_nan_negative_and_text_figures_are_unmeasured_not_zero() -> None:
    values = {"a": 10.0, "b": 10.2, "c": 9.9, "d": math.nan, "e": None, "f": -1.0, "g": "fast"}
    j = fleet.judge_group(FIG, values, RULE)
    assert j.unmeasured == ("d", "e", "f", "g") and j.findings == ()
    assert j.nodes == ("a", "b", "c")
    out = fleet.peers_outcome(fleet.FleetReport(fleet=[j]), RULE)
    assert not out.passed and out.severity == Severity.WARN
    assert set(out.nodes) == {"d", "e", "f", "g"} and "no valid figure" in out.detail
    assert fleet.measurement(True) is None and fleet.measurement(math.inf) is None


def test_nan_leaves_too_few_nodes_to_judge() -> None:
    j = fleet.judge_group(FIG, {"a": 10.0, "b": math.nan, "c": 10.0}, RULE)
    assert "2 node(s) measured" in j.unjudged and j.unmeasured == ("b",)


def test_two_slow_nodes_of_three_the_median_rule_still_names_the_slowest() -> None:
    j = fleet.judge_group(FIG, {"a": 10.0, "b": 6.0, "c": 5.0}, RULE)
    assert "c" in [f.node for f in j.findings]


def test_peers_are_grouped_so_an_a100_is_not_compared_with_h200s() -> None:
    current = {FIG: {"h1": 780.0, "h2": 776.0, "h3": 779.0, "a1": 280.0}}
    groups = {FIG: {"h1": "gpu:h200:2", "h2": "gpu:h200:2", "h3": "gpu:h200:2", "a1": "gpu:a100:4"}}
    js = fleet.judge_fleet(current, RULE, groups)
    assert [f.node for j in js for f in j.findings] == []
    by = {j.group: j for j in js}
    assert "cannot be judged" in by["gpu:a100:4"].unjudged and not by["gpu:h200:2"].unjudged
    # without groups the A100 is (wrongly for hardware, rightly for the rule) named
    assert [f.node for j in fleet.judge_fleet(current, RULE) for f in j.findings] == ["a1"]


def _series(values: list[float], t0: float = 1000.0) -> list[list[float]]:
    return [[t0 + i, v] for i, v in enumerate(values)]


def test_own_past_names_a_node_that_fell_below_its_median() -> None:
    res = fleet.judge_own_past(FIG, "n1", _series([100, 102, 99, 101, 70]), RULE)
    assert isinstance(res, fleet.Finding) and res.kind == fleet.OWN_PAST
    assert res.reference == pytest.approx(100.5) and res.fraction == pytest.approx(70 / 100.5)
    assert fleet.judge_own_past(FIG, "n1", _series([100, 102, 99, 101, 95]), RULE) is None


def test_own_past_needs_enough_history_and_a_nonzero_median() -> None:
    short = fleet.judge_own_past(FIG, "n1", _series([100, 50]), RULE)
    assert isinstance(short, str) and "needs 3" in short
    zero = fleet.judge_own_past(FIG, "n1", _series([0, 0, 0, 5]), RULE)
    assert isinstance(zero, str) and "median is 0" in zero


def test_own_past_window_forgets_old_runs() -> None:
    rule = fleet.FleetRule(own_window=3, history_length=10)
    # long ago 200, lately 100: against the last 3 runs, 95 is fine
    assert fleet.judge_own_past(FIG, "n", _series([200, 200, 200, 100, 100, 100, 95]), rule) is None


def test_history_is_bounded_ordered_and_round_trips_through_json() -> None:
    h: fleet.History = {}
    h = fleet.record(h, [(FIG, "n1", float(t), float(t)) for t in range(30)], limit=5)
    assert [v for _, v in h[FIG]["n1"]] == [25, 26, 27, 28, 29]
    h = fleet.record(h, [(FIG, "n1", 100.0, math.nan), (FIG, "n2", 3.0, 7.0)], limit=5)
    assert len(h[FIG]["n1"]) == 5 and h[FIG]["n2"] == [[3.0, 7.0]]
    back = fleet.read_history(json.loads(json.dumps(h)))
    assert back == h
    assert fleet.read_history({"x": {"n": [[1, "bad"], [2, 3], "junk"]}, "y": 3}) == {
        "x": {"n": [[2.0, 3.0]]}
    }
    assert fleet.read_history("not a dict") == {}


def test_stale_figures_leave_the_baseline() -> None:
    h = {FIG: {"gone": [[0.0, 10.0]], "a": [[990.0, 100.0]]}}
    assert fleet.latest(h, 1000.0, max_age_s=100) == {FIG: {"a": 100.0}}
    assert fleet.latest(h, 1000.0, max_age_s=None)[FIG]["gone"] == 10.0


def test_judge_reports_both_rules_and_invalid_newest_results() -> None:
    h = {
        FIG: {
            "n1": _series([100, 100, 100, 100]),
            "n2": _series([101, 99, 100, 100]),
            "n3": _series([100, 101, 100, 60]),
            "n4": _series([100, 100, 99, 101]),
        }
    }
    report = fleet.judge(h, RULE, now=1010.0, max_age_s=3600, invalid={FIG: ["n4"]})
    assert [f.node for f in report.below_fleet()] == ["n3"]
    assert [f.node for f in report.own_past] == ["n3"]
    assert report.fleet[0].unmeasured == ("n4",)
    peers = fleet.peers_outcome(report, RULE)
    assert not peers.passed and peers.severity is None and peers.nodes == ("n3",)
    assert "n3" in peers.detail and "n4" in peers.detail and "throttled" in peers.hint
    own = fleet.own_past_outcome(report, RULE)
    assert not own.passed and own.nodes == ("n3",) and own.measured == 1


def test_outcomes_pass_naming_the_nodes_compared() -> None:
    h = {FIG: {n: _series([100, 100, 100, 100]) for n in ("a", "b", "c")}}
    report = fleet.judge(h, RULE, now=1004.0)
    peers = fleet.peers_outcome(report, RULE)
    assert peers.passed and peers.nodes == ("a", "b", "c") and peers.extra["figures_judged"] == 1
    own = fleet.own_past_outcome(report, RULE)
    assert own.passed and own.nodes == ("a", "b", "c")


def test_nothing_recorded_is_a_warn_not_a_pass() -> None:
    report = fleet.judge({}, RULE, now=0.0)
    for out in (fleet.peers_outcome(report, RULE), fleet.own_past_outcome(report, RULE)):
        assert not out.passed and out.severity == Severity.WARN and out.measured == "unjudged"


def test_cause_hints_name_the_figure_kind() -> None:
    assert "NCCL" in fleet.cause_hint(["smoke_multi_gpu_nccl.busbw_gbps"])
    assert "CPU quota" in fleet.cause_hint(["smoke_gpu.cpu_matmul_fp32_gflops"])
    assert "ROW_REMAPPER" in fleet.cause_hint(["smoke_gpu.min_copy_gbps"])
    assert fleet.cause_hint([]) == ""
