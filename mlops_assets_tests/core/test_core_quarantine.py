"""core/quarantine.py: which node is drained and which resumed, the partition cap, only-own
resume, dry-run, hostile names; `apply` against a real subprocess runner (a fake `scontrol`
script on PATH that records its argv), so quoting is tested where it happens."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from mlops_assets.core import quarantine as q
from mlops_assets.core.parse.slurm.nodes import parse_sinfo_nodes
from mlops_assets.core.transport.hostexec import LocalRunner

PREFIX = "mlops_assets:"
LIVE = q.Policy(dry_run=False, max_drained_fraction=0.25, reason_prefix=PREFIX)
DRY = q.Policy(dry_run=True, max_drained_fraction=0.25, reason_prefix=PREFIX)


def sinfo(*rows: str) -> list:  # type: ignore[type-arg]
    """Rows as `sinfo -h -N -o '%N|%P|%T|%c|%m|%G|%E'` prints them."""
    return parse_sinfo_nodes("\n".join(rows) + "\n")


FOUR = [
    "n1|gpu*|idle|2|4000|gpu:h200:2|none",
    "n2|gpu*|mixed|2|4000|gpu:h200:2|none",
    "n3|gpu*|idle|2|4000|gpu:h200:2|none",
    "n4|gpu*|idle|2|4000|gpu:a100:4|none",
]


def fail(node: str, source: str = "smoke_gpu", run: str = "r1", t: float = 100.0) -> q.Evidence:
    return q.Evidence(node, source, False, run, t)


def ok(node: str, source: str = "smoke_gpu", run: str = "r2", t: float = 200.0) -> q.Evidence:
    return q.Evidence(node, source, True, run, t)


def by_node(d: q.Decision) -> dict[str, q.Action]:
    return {a.node: a for a in d.actions}


def test_a_failing_node_is_drained_with_a_reason_naming_check_and_run() -> None:
    d = q.decide(sinfo(*FOUR), [fail("n3", run="abc-123"), ok("n1")], LIVE, {}, now=500.0)
    a = by_node(d)["n3"]
    assert a.action == q.DRAIN and not a.dry_run
    assert a.reason == "mlops_assets: smoke_gpu failed in run abc-123"
    assert a.commands() == [
        [
            "scontrol",
            "update",
            "nodename=n3",
            "state=drain",
            "reason=mlops_assets: smoke_gpu failed in run abc-123",
        ]
    ]
    assert d.drained_at == {"n3": 500.0} and "n1" not in by_node(d)


def test_dry_run_decides_the_same_but_says_would_and_remembers_nothing() -> None:
    d = q.decide(sinfo(*FOUR), [fail("n3")], DRY, {}, now=500.0)
    a = by_node(d)["n3"]
    assert a.action == q.DRAIN and a.dry_run and a.message.startswith("would drain n3")
    assert d.drained_at == {}


def test_the_latest_result_counts_a_failure_followed_by_a_pass_drains_nothing() -> None:
    d = q.decide(sinfo(*FOUR), [fail("n3", t=100), ok("n3", t=200)], LIVE, {}, now=500.0)
    assert d.actions == []


def test_share_cap_counts_nodes_already_out_of_service() -> None:
    rows = [*FOUR[:3], "n4|gpu*|drained|2|4000|gpu:a100:4|admin: bad DIMM"]
    d = q.decide(sinfo(*rows), [fail("n3")], LIVE, {}, now=500.0)
    a = by_node(d)["n3"]
    assert a.action == q.CAPPED and "2 of 4 (50%)" in a.message and "25%" in a.message
    assert d.drained_at == {}


def test_share_cap_counts_drains_of_the_same_pass_worst_node_first() -> None:
    policy = q.Policy(dry_run=False, max_drained_fraction=0.5, reason_prefix=PREFIX)
    ev = [fail("n1"), fail("n2"), fail("n2", source="gpu_nodes/x"), fail("n3")]
    d = q.decide(sinfo(*FOUR), ev, policy, {}, now=1.0)
    acts = by_node(d)
    assert acts["n2"].action == q.DRAIN  # two failing sources: first
    assert acts["n1"].action == q.DRAIN
    assert acts["n3"].action == q.CAPPED and "3 of 4" in acts["n3"].message


def test_a_small_partition_below_one_node_share_drains_nothing_and_says_so() -> None:
    d = q.decide(sinfo(*FOUR[:3]), [fail("n1")], LIVE, {}, now=1.0)
    assert by_node(d)["n1"].action == q.CAPPED and "1 of 3 (33%)" in by_node(d)["n1"].message


def test_cap_applies_to_every_partition_of_the_node() -> None:
    rows = [*FOUR, "n1|debug|idle|2|4000|gpu:h200:2|none", "n5|debug|drained|2|4000|(null)|x"]
    policy = q.Policy(dry_run=False, max_drained_fraction=0.25, reason_prefix=PREFIX)
    d = q.decide(sinfo(*rows), [fail("n1")], policy, {}, now=1.0)
    assert by_node(d)["n1"].action == q.CAPPED and "partition debug" in by_node(d)["n1"].message


def test_nodes_drained_by_others_or_down_are_left_alone() -> None:
    rows = [
        "n1|gpu*|drained|2|4000|gpu:h200:2|admin: bad DIMM",
        "n2|gpu*|down*|2|4000|gpu:h200:2|Not responding",
        *FOUR[2:],
    ]
    d = q.decide(sinfo(*rows), [fail("n1"), fail("n2")], LIVE, {}, now=1.0)
    acts = by_node(d)
    assert acts["n1"].action == q.LEFT and "someone else (admin: bad DIMM)" in acts["n1"].message
    assert acts["n2"].action == q.LEFT and "out of service" in acts["n2"].message


def test_only_own_drains_are_resumed_and_only_after_a_newer_pass_of_the_named_source() -> None:
    rows = [
        "n1|gpu*|drained|2|4000|gpu:h200:2|mlops_assets: smoke_gpu failed in run r1",
        "n2|gpu*|drained|2|4000|gpu:h200:2|admin: bad DIMM",
        "n3|gpu*|drained|2|4000|gpu:h200:2|mlops_assets: smoke_gpu failed in run r7",
        *FOUR[3:],
    ]
    ev = [ok("n1", t=300), ok("n2", t=300), ok("n3", t=50), ok("n3", source="other/check", t=400)]
    d = q.decide(sinfo(*rows), ev, LIVE, {"n1": 200.0, "n3": 200.0}, now=500.0)
    acts = by_node(d)
    assert acts["n1"].action == q.RESUME and acts["n1"].commands() == [
        ["scontrol", "update", "nodename=n1", "state=resume"]
    ]
    assert "n2" not in acts  # someone else's drain: never ours to resume
    # n3: its smoke passed only before the drain; another source passing does not count
    assert acts["n3"].action == q.HOLD and "re-tests are off" in acts["n3"].message
    assert d.drained_at == {"n3": 200.0}


def test_own_drain_still_failing_is_held_and_unknown_drain_time_waits_for_a_newer_pass() -> None:
    rows = [
        "n1|gpu*|drained|2|4000|gpu:h200:2|mlops_assets: smoke_gpu failed in run r1",
        "n2|gpu*|drained|2|4000|gpu:h200:2|mlops_assets: smoke_gpu failed in run r1",
        *FOUR[2:],
    ]
    d = q.decide(sinfo(*rows), [fail("n1", t=300), ok("n2", t=300)], LIVE, {}, now=500.0)
    acts = by_node(d)
    assert acts["n1"].action == q.HOLD and "stays drained" in acts["n1"].message
    assert acts["n2"].action == q.HOLD and "no longer knows" in acts["n2"].message
    assert d.drained_at == {"n1": 500.0, "n2": 500.0}
    # next tick, a pass newer than that
    d2 = q.decide(sinfo(*rows), [ok("n2", t=600)], LIVE, d.drained_at, now=700.0)
    assert by_node(d2)["n2"].action == q.RESUME


def test_a_node_resumed_by_hand_is_forgotten() -> None:
    d = q.decide(sinfo(*FOUR), [], LIVE, {"n1": 5.0}, now=10.0)
    assert d.drained_at == {} and d.actions == []


@pytest.mark.parametrize("name", ["n[1-100]", "n1,n2", "n1 state=resume", "n1=x", "-rf", ""])
def test_names_scontrol_would_read_as_several_nodes_are_never_acted_on(name: str) -> None:
    d = q.decide(sinfo(*FOUR), [fail(name)], LIVE, {}, now=1.0)
    assert [a.action for a in d.actions] == [q.LEFT]


def test_reason_is_one_bounded_line_and_names_its_source() -> None:
    r = q.drain_reason(PREFIX, "smoke_gpu", "run\nwith newline " + "x" * 400)
    assert "\n" not in r and len(r) == q.MAX_REASON and r.startswith(PREFIX)
    assert q.reason_source("mlops_assets: gpu_nodes/chk failed in run 1", PREFIX) == "gpu_nodes/chk"
    assert q.reason_source("admin: whatever", PREFIX) is None


@pytest.fixture
def scontrol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in `scontrol` on PATH that records its argv as JSON, one call per line, and
    refuses nodes named `denied` with SLURM 22.05's words for a missing admin right."""
    log = tmp_path / "calls.jsonl"
    script = tmp_path / "scontrol"
    script.write_text(
        "#!/usr/bin/env python3\nimport json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "if 'nodename=denied' in sys.argv:\n"
        "    sys.stderr.write('slurm_update error: Invalid user id\\n'); sys.exit(1)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    return log


def test_apply_runs_argv_lists_so_a_hostile_reason_reaches_scontrol_as_one_argument(
    scontrol: Path,
) -> None:
    hostile = q.drain_reason(PREFIX, "smoke_gpu", "$(touch /tmp/pwned); `id` 'x\"")
    actions = [
        q.Action("n3", q.DRAIN, "m", dry_run=False, reason=hostile),
        q.Action("n4", q.DRAIN, "m", dry_run=True, reason=hostile),
        q.Action("n1", q.HOLD, "m", dry_run=False),
        q.Action("denied", q.RESUME, "m", dry_run=False),
    ]
    done = q.apply(actions, LocalRunner())
    calls = [json.loads(line) for line in scontrol.read_text().splitlines()]
    assert calls == [
        ["update", "nodename=n3", "state=drain", f"reason={hostile}"],
        ["update", "nodename=denied", "state=resume"],
    ]
    assert [a.executed for a in done] == [True, False, False, False]
    assert done[0].outcome == "ok" and done[1].outcome == "" and done[2].outcome == ""
    assert "Invalid user id" in done[3].outcome and "adminlevel=Admin" in done[3].outcome
    assert not Path("/tmp/pwned").exists()


RETEST = q.Policy(
    dry_run=False,
    max_drained_fraction=0.25,
    reason_prefix=PREFIX,
    retest_after_s=3600,
    retest_window_s=1800,
    user="mlops",
)
OWN = "n3|gpu*|drained|2|4000|gpu:h200:2|mlops_assets: smoke_gpu failed in run r1"
OWN_BY_CHECK = (
    "n3|gpu*|drained|2|4000|gpu:h200:2|"
    "mlops_assets: fleet_baseline/fleet_nodes_within_peers failed in run r1"
)
RESERVED = "n3|gpu*|maint|2|4000|gpu:h200:2|none"


def test_a_node_drained_long_enough_is_re_tested_in_a_reservation_for_the_login_user() -> None:
    rows = [*FOUR[:2], OWN, FOUR[3]]
    early = q.decide(sinfo(*rows), [fail("n3", t=50)], RETEST, {"n3": 100.0}, now=1000.0)
    assert by_node(early)["n3"].action == q.HOLD and "re-test due in 45 min" in (
        by_node(early)["n3"].message
    )
    d = q.decide(sinfo(*rows), [fail("n3", t=50)], RETEST, {"n3": 100.0}, now=3800.0)
    a = by_node(d)["n3"]
    assert a.action == q.RETEST and a.reservation == "mlops_retest_n3"
    assert a.commands() == [
        [
            "scontrol",
            "create",
            "reservation",
            "reservationname=mlops_retest_n3",
            "nodes=n3",
            "users=mlops",
            "starttime=now",
            "duration=30",
            "flags=maint,ignore_jobs",
        ],
        ["scontrol", "update", "nodename=n3", "state=resume"],
    ]
    assert d.requests == [q.Request("n3", q.SMOKE, "mlops_retest_n3")]
    assert d.retesting["n3"]["since"] == 3800.0 and d.drained_at == {}
    dry = q.decide(sinfo(*rows), [fail("n3", t=50)], replace_dry(RETEST), {"n3": 100.0}, 3800.0)
    assert by_node(dry)["n3"].message.startswith("would re-test") and dry.requests == []


def replace_dry(p: q.Policy) -> q.Policy:
    from dataclasses import replace

    return replace(p, dry_run=True)


def trial(source: str = "smoke_gpu", since: float = 1000.0) -> dict[str, dict[str, object]]:
    return {
        "n3": {"since": since, "source": source, "reservation": "mlops_retest_n3", "checked": False}
    }


def test_re_test_pass_ends_the_reservation_and_keeps_the_node_in_service() -> None:
    rows = [*FOUR[:2], RESERVED, FOUR[3]]
    ev = [fail("n3", t=50), ok("n3", run="r9", t=1100)]
    d = q.decide(sinfo(*rows), ev, RETEST, {}, now=1200.0, retesting=trial())
    a = by_node(d)["n3"]
    assert a.action == q.RESUME and a.run_id == "r9"
    assert a.commands() == [["scontrol", "delete", "reservationname=mlops_retest_n3"]]
    assert d.retesting == {} and d.drained_at == {}


def test_re_test_failure_drains_again_regardless_of_the_cap_and_ends_the_reservation() -> None:
    rows = [*FOUR[:2], RESERVED, "n4|gpu*|drained|2|4000|gpu:a100:4|admin: psu"]
    ev = [fail("n3", run="r10", t=1100)]
    d = q.decide(sinfo(*rows), ev, RETEST, {}, now=1200.0, retesting=trial())
    a = by_node(d)["n3"]
    assert a.action == q.DRAIN and a.reason == "mlops_assets: smoke_gpu failed in run r10"
    assert a.commands()[1] == ["scontrol", "delete", "reservationname=mlops_retest_n3"]
    assert d.drained_at == {"n3": 1200.0} and d.retesting == {}


def test_re_test_without_a_result_in_its_window_drains_again() -> None:
    rows = [*FOUR[:2], RESERVED, FOUR[3]]
    waiting = q.decide(sinfo(*rows), [], RETEST, {}, now=1500.0, retesting=trial())
    assert by_node(waiting)["n3"].action == q.HOLD and waiting.retesting
    d = q.decide(sinfo(*rows), [], RETEST, {}, now=3000.0, retesting=trial())
    a = by_node(d)["n3"]
    assert a.action == q.DRAIN and "gave no result" in a.reason and d.retesting == {}


def test_re_test_of_a_check_drain_asks_for_the_check_after_the_smoke_passed() -> None:
    src = "fleet_baseline/fleet_nodes_within_peers"
    rows = [*FOUR[:2], RESERVED, FOUR[3]]
    ev = [ok("n3", source="smoke_gpu", t=1100)]
    d = q.decide(sinfo(*rows), ev, RETEST, {}, now=1200.0, retesting=trial(src))
    assert d.requests == [q.Request("n3", src, "mlops_retest_n3")]
    assert d.retesting["n3"]["checked"] is True and by_node(d)["n3"].action == q.HOLD
    again = q.decide(sinfo(*rows), ev, RETEST, {}, now=1300.0, retesting=d.retesting)
    assert again.requests == []  # asked once
    ev.append(ok("n3", source=src, run="r11", t=1250))
    done = q.decide(sinfo(*rows), ev, RETEST, {}, now=1300.0, retesting=d.retesting)
    assert by_node(done)["n3"].action == q.RESUME and by_node(done)["n3"].run_id == "r11"
    assert (
        "mlops_assets:" in OWN_BY_CHECK
        and q.reason_source(OWN_BY_CHECK.split("|")[-1], PREFIX) == src
    )


def test_apply_stops_at_the_first_refused_command() -> None:
    class Refusing:
        where = "here"

        def __init__(self) -> None:
            self.calls: list[list[str]] = []

        def run(self, argv, *, timeout_s=None, env=None):  # type: ignore[no-untyped-def]
            from mlops_assets.core.transport.hostexec import CommandResult

            self.calls.append(list(argv))
            return CommandResult(tuple(argv), 1, "", "slurm_update error: Invalid user id", 0.0)

        def close(self) -> None:
            return None

    r = Refusing()
    a = q.Action("n3", q.RETEST, "m", dry_run=False, reservation="mlops_retest_n3", user="u")
    (done,) = q.apply([a], r)
    assert len(r.calls) == 1 and not done.executed and "scontrol create reservation" in done.outcome
