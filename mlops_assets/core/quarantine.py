"""The quarantine loop's decisions: which node to drain and which to resume. Pure, apart
from `apply`, which runs the decided scontrol commands through a Runner (argv lists only).

Inputs: the nodes as sinfo shows them; the evidence, i.e. each source's latest result per
node (a per-node smoke asset's latest attempt, an ERROR check that names nodes), passing or
failing, with its run and time; when this loop drained each node (its own memory); the
policy (catalog `fleet.quarantine`).

- A node with a failing result is drained with the reason
  `<prefix> <source> failed in run <run_id>`, unless its name could be read by scontrol as
  more than one node (hostlist brackets, commas, spaces), it is already out of service
  (drained by someone else, down, not responding: left alone, and said), or draining it would
  put more than `max_drained_fraction` of any of its partitions out of service, counting the
  nodes already out and those drained earlier in the same pass.
- Only nodes whose reason starts with the prefix (drained by this loop) are ever resumed,
  and only once the source named in their reason has a passing result newer than the drain
  and no source fails. A drained node takes no new job (SLURM 22.05 measured: not even one
  with `--reservation` of a MAINT reservation), so a smoke re-test needs the node back in
  service under a reservation; until a newer passing result exists the node stays drained.
- Dry-run: the same decisions, nothing executed; each says what it would do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mlops_assets.core.parse.slurm.nodes import SlurmNode
from mlops_assets.core.transport.hostexec import Runner

DRAIN, RESUME, RETEST, HOLD, CAPPED, LEFT = (
    "drain",
    "resume",
    "retest",
    "hold",
    "capped",
    "left_alone",
)
EXECUTED = (DRAIN, RESUME, RETEST)
SMOKE = "smoke"  # a re-test request: the node's per-node smoke jobs, in its reservation
RESERVATION_PREFIX = "mlops_retest_"
#: A node name scontrol reads as exactly one node: no hostlist brackets or commas, no spaces,
#: no `=` (which would start another key), at most 64 characters.
SAFE_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_REASON = 200
PERMISSION_HINT = (
    "draining and resuming a node need SLURM admin rights for the login user:"
    " `sacctmgr modify user <user> set adminlevel=Admin` (SLURM 22.05 measured: Operator may"
    " create reservations but `scontrol update nodename=` answers 'Invalid user id')"
)


@dataclass(frozen=True)
class Policy:
    """The catalog's `fleet.quarantine`, as the decision needs it."""

    dry_run: bool = True
    max_drained_fraction: float = 0.25
    reason_prefix: str = "mlops_assets:"
    #: re-test a node drained this long (0: never; it then stays drained until a newer
    #: passing result arrives some other way)
    retest_after_s: float = 0
    #: how long a re-test may take before the node is drained again
    retest_window_s: float = 1800
    #: the login user, the only user of a re-test reservation
    user: str = ""


@dataclass(frozen=True)
class Evidence:
    """One source's result for one node: `source` is a per-node smoke asset or an
    `asset/check` key; `timestamp` Unix seconds."""

    node: str
    source: str
    passed: bool
    run_id: str
    timestamp: float


@dataclass(frozen=True)
class Action:
    """One decision about one node. `executed`/`outcome` are filled by `apply`."""

    node: str
    action: str
    message: str
    dry_run: bool = True
    reason: str = ""
    source: str = ""
    run_id: str = ""
    partitions: tuple[str, ...] = ()
    #: the re-test reservation this action creates (RETEST) or ends (RESUME, DRAIN after one)
    reservation: str = ""
    #: a re-test reservation's user and minutes (RETEST)
    user: str = ""
    minutes: int = 0
    executed: bool = False
    outcome: str = ""

    @property
    def changes_state(self) -> bool:
        return self.action in EXECUTED

    def commands(self) -> list[list[str]]:
        """The scontrol commands, in order (argv lists: no shell reads the name or the reason).
        A re-test reserves the node for the login user, then lifts the drain so the smoke
        jobs (and only they) can run; its end drains again or just ends the reservation."""
        node = f"nodename={self.node}"
        end = [["scontrol", "delete", f"reservationname={self.reservation}"]]
        if self.action == DRAIN:
            drain = ["scontrol", "update", node, "state=drain", f"reason={self.reason}"]
            return [drain, *(end if self.reservation else [])]
        if self.action == RESUME:
            return end if self.reservation else [["scontrol", "update", node, "state=resume"]]
        if self.action == RETEST:
            return [
                [
                    "scontrol",
                    "create",
                    "reservation",
                    f"reservationname={self.reservation}",
                    f"nodes={self.node}",
                    f"users={self.user}",
                    "starttime=now",
                    f"duration={self.minutes}",
                    "flags=maint,ignore_jobs",
                ],
                ["scontrol", "update", node, "state=resume"],
            ]
        return []


@dataclass(frozen=True)
class Request:
    """A run the loop asks for: `kind` SMOKE (the node's smoke jobs in `reservation`) or an
    `asset/check` source to judge the node again after its smoke passed."""

    node: str
    kind: str
    reservation: str = ""


@dataclass
class Decision:
    actions: list[Action] = field(default_factory=list)
    #: node -> Unix time this loop drained it (the loop's memory; kept in the sensor cursor)
    drained_at: dict[str, float] = field(default_factory=dict)
    #: node -> {since, source, reservation, checked}: nodes out on a re-test
    retesting: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)


def drain_reason(prefix: str, source: str, run_id: str) -> str:
    """`mlops_assets: smoke_gpu failed in run <id>`: one line, bounded, recognisable."""
    text = f"{prefix} {source} failed in run {run_id}"
    return " ".join(text.split())[:MAX_REASON]


def drained_by_us(node: SlurmNode, prefix: str) -> bool:
    """Drain flag set and the reason carries our prefix."""
    return bool(node.state.drain and node.reason and node.reason.text.startswith(prefix))


def reason_source(reason: str, prefix: str) -> str | None:
    """The source our reason names (`<prefix> <source> failed in run ...`), else None."""
    m = re.match(re.escape(prefix) + r"\s*(\S+) failed in run ", reason)
    return m.group(1) if m else None


def latest_evidence(evidence: Iterable[Evidence]) -> dict[tuple[str, str], Evidence]:
    """The newest result per (node, source)."""
    out: dict[tuple[str, str], Evidence] = {}
    for e in evidence:
        key = (e.node, e.source)
        if key not in out or e.timestamp >= out[key].timestamp:
            out[key] = e
    return out


def _share(n: int, total: int) -> str:
    return f"{n} of {total} ({n / total:.0%})"


def reservation_name(node: str) -> str:
    return f"{RESERVATION_PREFIX}{node}"


def decide(
    nodes: Sequence[SlurmNode],
    evidence: Iterable[Evidence],
    policy: Policy,
    drained_at: Mapping[str, float],
    now: float,
    retesting: Mapping[str, Mapping[str, Any]] | None = None,
) -> Decision:
    """Drain the failing nodes within the partition cap, re-test and resume our drained
    nodes, and say why for every other node concerned."""
    dry = policy.dry_run
    latest = latest_evidence(evidence)
    by_name = {n.name: n for n in nodes}
    total: dict[str, int] = {}
    out: dict[str, int] = {}
    for n in nodes:
        for p in n.partitions:
            total[p] = total.get(p, 0) + 1
            out[p] = out.get(p, 0) + (0 if n.state.healthy else 1)
    failing: dict[str, list[Evidence]] = {}
    for (node, _), e in sorted(latest.items()):
        if not e.passed:
            failing.setdefault(node, []).append(e)
    trials = {k: dict(v) for k, v in (retesting or {}).items() if k in by_name}
    memory = {  # a node resumed by hand is forgotten
        k: v for k, v in drained_at.items() if k in by_name and by_name[k].state.drain
    }
    decision = Decision(drained_at=memory, retesting=trials)
    acts = decision.actions
    on_trial = set(trials)
    for node in sorted(on_trial):
        _retest_result(decision, by_name[node], latest, policy, now)
    own = [n for n in nodes if drained_by_us(n, policy.reason_prefix) and n.name not in trials]
    for n in sorted(own, key=lambda x: x.name):
        _own_drained(decision, n, latest, failing.get(n.name, []), policy, now)
    handled = on_trial | {n.name for n in own}
    for node in sorted(failing, key=lambda n: (-len(failing[n]), n)):
        if node in handled:
            continue
        ev = failing[node]
        first = ev[0]
        names = ", ".join(f"{e.source} (run {e.run_id})" for e in ev)
        found = by_name.get(node)
        base = Action(node, LEFT, "", dry, source=first.source, run_id=first.run_id)
        if not SAFE_NODE.match(node):
            acts.append(
                replace(
                    base,
                    message=f"{node!r} failed {names} but is not a plain node name (scontrol"
                    " would read brackets, commas or spaces as several nodes): left alone",
                )
            )
            continue
        if found is None:
            acts.append(replace(base, message=f"{node} failed {names} but sinfo does not show it"))
            continue
        n = found
        base = replace(base, partitions=n.partitions)
        reason = n.reason.text if n.reason else ""
        if n.state.drain:
            acts.append(
                replace(
                    base,
                    message=f"{node} failed {names}; already drained by someone else"
                    f" ({reason or 'no reason'}): left alone",
                )
            )
            continue
        if not n.state.healthy:
            acts.append(
                replace(
                    base,
                    message=f"{node} failed {names}; already out of service"
                    f" ({n.state}): left alone",
                )
            )
            continue
        over = [
            p for p in n.partitions if (out[p] + 1) / total[p] > policy.max_drained_fraction + 1e-9
        ]
        if over:
            shares = "; ".join(
                f"partition {p}: {_share(out[p] + 1, total[p])} would be out of service"
                for p in over
            )
            acts.append(
                replace(
                    base,
                    action=CAPPED,
                    message=f"{node} failed {names} but is not drained: {shares}, above"
                    f" fleet.quarantine.max_drained_fraction {policy.max_drained_fraction:.0%}",
                )
            )
            continue
        for p in n.partitions:
            out[p] += 1
        why = drain_reason(policy.reason_prefix, first.source, first.run_id)
        acts.append(
            replace(
                base,
                action=DRAIN,
                reason=why,
                message=f"{'would drain' if dry else 'drain'} {node}: {names} failed",
            )
        )
        if not dry:
            memory[node] = now
    return decision


def _because(base: Action, action: str, e: Evidence, message: str, **more: Any) -> Action:
    """`base` turned into `action` on the strength of one result: its source and run go
    with the action, so the observation names what decided it."""
    return replace(base, action=action, source=e.source, run_id=e.run_id, message=message, **more)


def _own_drained(
    decision: Decision,
    n: SlurmNode,
    latest: Mapping[tuple[str, str], Evidence],
    failing: Sequence[Evidence],
    policy: Policy,
    now: float,
) -> None:
    """A node this loop drained: resume it on a passing result newer than the drain, re-test
    it once it has been out `retest_after_s`, else hold it, saying why."""
    dry = policy.dry_run
    reason = n.reason.text if n.reason else ""
    src = reason_source(reason, policy.reason_prefix)
    base = Action(n.name, HOLD, "", dry, source=src or "", partitions=n.partitions)
    memory = decision.drained_at
    since = memory.get(n.name)
    if since is None:
        memory[n.name] = now
        decision.actions.append(
            replace(
                base,
                message=f"{n.name} was drained by this loop ({reason}) at a time it no longer"
                " knows: it stays drained until a result newer than now passes",
            )
        )
        return
    passing = sorted(
        (
            e
            for (node, source), e in latest.items()
            if node == n.name and e.passed and e.timestamp > since and src in (None, source)
        ),
        key=lambda e: e.timestamp,
    )
    if passing and not any(e.timestamp > since for e in failing):
        ok = passing[-1]
        decision.actions.append(
            _because(
                base,
                RESUME,
                ok,
                f"{'would resume' if dry else 'resume'} {n.name}: {ok.source} passed in"
                f" run {ok.run_id} after the drain",
            )
        )
        if not dry:
            memory.pop(n.name, None)
        return
    due = policy.retest_after_s > 0 and now - since >= policy.retest_after_s and policy.user
    if not due:
        wait = (
            f"re-test due in {max(policy.retest_after_s - (now - since), 0) / 60:.0f} min"
            if policy.retest_after_s > 0 and policy.user
            else "re-tests are off (fleet.quarantine.retest_after_minutes: 0)"
        )
        decision.actions.append(
            replace(
                base,
                message=f"{n.name} stays drained ({reason}): no {src or 'result'} has passed"
                f" since the drain, and a drained node takes no job; {wait}",
            )
        )
        return
    name = reservation_name(n.name)
    minutes = max(1, int(policy.retest_window_s // 60))
    decision.actions.append(
        replace(
            base,
            action=RETEST,
            reservation=name,
            user=policy.user,
            minutes=minutes,
            message=f"{'would re-test' if dry else 're-test'} {n.name}: reservation {name} for"
            f" {policy.user} ({minutes} min), drain lifted, its smoke jobs run there",
        )
    )
    if not dry:
        memory.pop(n.name, None)
        decision.retesting[n.name] = {
            "since": now,
            "source": src or "",
            "reservation": name,
            "checked": False,
        }
        decision.requests.append(Request(n.name, SMOKE, name))


def _retest_result(
    decision: Decision,
    n: SlurmNode,
    latest: Mapping[tuple[str, str], Evidence],
    policy: Policy,
    now: float,
) -> None:
    """A node out on a re-test: a failure newer than its start drains it again (it was out
    before, so the partition cap does not hold it back); the drain's source passing ends the
    reservation (resumed); a check source is asked for once the smoke passed; no answer
    within the window drains it again."""
    trial = decision.retesting[n.name]
    since, src, name = float(trial["since"]), str(trial.get("source") or ""), trial["reservation"]
    base = Action(
        n.name, HOLD, "", policy.dry_run, source=src, partitions=n.partitions, reservation=name
    )
    newer = [e for (node, _), e in latest.items() if node == n.name and e.timestamp > since]
    failed = sorted((e for e in newer if not e.passed), key=lambda e: e.timestamp)
    passed = [e for e in newer if e.passed and (not src or e.source == src)]
    smoke_passed = [e for e in newer if e.passed and "/" not in e.source]
    done = False
    if failed:
        e = failed[0]
        why = drain_reason(policy.reason_prefix, e.source, e.run_id)
        decision.actions.append(
            _because(
                base,
                DRAIN,
                e,
                f"re-test of {n.name} failed: {e.source} in run {e.run_id}; drain"
                f" it again and end {name}",
                reason=why,
            )
        )
        decision.drained_at[n.name] = now
        done = True
    elif passed:
        e = passed[-1]
        decision.actions.append(
            _because(
                base,
                RESUME,
                e,
                f"re-test of {n.name} passed: {e.source} in run {e.run_id}; end"
                f" {name}, the node stays in service",
            )
        )
        done = True
    elif now - since > policy.retest_window_s:
        why = " ".join(f"{policy.reason_prefix} re-test of {src or 'smoke'} gave no result".split())
        decision.actions.append(
            replace(
                base,
                action=DRAIN,
                reason=why[:MAX_REASON],
                message=f"re-test of {n.name} gave no result in"
                f" {policy.retest_window_s / 60:.0f} min: drain it again and end {name}",
            )
        )
        decision.drained_at[n.name] = now
        done = True
    elif "/" in src and smoke_passed and not trial.get("checked"):
        trial["checked"] = True
        decision.requests.append(Request(n.name, src, name))
        decision.actions.append(
            replace(base, message=f"re-test of {n.name}: its smoke passed, judging {src} again")
        )
    else:
        decision.actions.append(
            replace(base, message=f"re-test of {n.name} under way in {name} since {since:.0f}")
        )
    if done:
        decision.retesting.pop(n.name, None)


def apply(actions: Sequence[Action], runner: Runner, *, timeout_s: float = 30) -> list[Action]:
    """Run each action's commands unless dry-run, stopping at the first refusal; each action
    comes back with whether it ran and SLURM's answer (a refusal names the missing right)."""
    done: list[Action] = []
    for a in actions:
        if not a.changes_state or a.dry_run:
            done.append(a)
            continue
        failure = ""
        for argv in a.commands():
            res = runner.run(argv, timeout_s=timeout_s)
            if not res.ok:
                answer = (res.tail(2) or f"exit {res.returncode}").replace("\n", " ")
                denied = re.search(r"Invalid user id|permission denied|Access denied", answer, re.I)
                hint = f" ({PERMISSION_HINT})" if denied else ""
                failure = f"failed: `{' '.join(argv[:3])}`: {answer}{hint}"
                break
        done.append(replace(a, executed=not failure, outcome=failure or "ok"))
    return done
