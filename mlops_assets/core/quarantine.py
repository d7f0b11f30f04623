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

from mlops_assets.core.parse.slurm.nodes import SlurmNode
from mlops_assets.core.transport.hostexec import Runner

DRAIN, RESUME, HOLD, CAPPED, LEFT = "drain", "resume", "hold", "capped", "left_alone"
EXECUTED = (DRAIN, RESUME)
#: A node name scontrol reads as exactly one node: no hostlist brackets or commas, no spaces,
#: no `=` (which would start another key), at most 64 characters.
SAFE_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_REASON = 200
PERMISSION_HINT = (
    "draining and resuming need SLURM operator rights for the login user:"
    " `sacctmgr modify user <user> set adminlevel=Operator` (SLURM answers 'Invalid user id'"
    " or 'Access/permission denied' without them)"
)


@dataclass(frozen=True)
class Policy:
    """The catalog's `fleet.quarantine`, as the decision needs it."""

    dry_run: bool = True
    max_drained_fraction: float = 0.25
    reason_prefix: str = "mlops_assets:"


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
    executed: bool = False
    outcome: str = ""

    @property
    def changes_state(self) -> bool:
        return self.action in EXECUTED

    def argv(self) -> list[str]:
        """The scontrol command (an argv list: no shell reads the name or the reason)."""
        if self.action == DRAIN:
            return [
                "scontrol",
                "update",
                f"nodename={self.node}",
                "state=drain",
                f"reason={self.reason}",
            ]
        if self.action == RESUME:
            return ["scontrol", "update", f"nodename={self.node}", "state=resume"]
        raise ValueError(f"{self.action} runs no command")


@dataclass
class Decision:
    actions: list[Action] = field(default_factory=list)
    #: node -> Unix time this loop drained it (the loop's memory; kept in the sensor cursor)
    drained_at: dict[str, float] = field(default_factory=dict)


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


def decide(
    nodes: Sequence[SlurmNode],
    evidence: Iterable[Evidence],
    policy: Policy,
    drained_at: Mapping[str, float],
    now: float,
) -> Decision:
    """Drain the failing nodes within the partition cap, resume our drained nodes that pass
    again, and say why for every other node concerned."""
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
    memory = {
        k: v for k, v in drained_at.items() if k in by_name and by_name[k].state.drain
    }  # a node resumed by hand is forgotten
    decision = Decision(drained_at=memory)
    acts = decision.actions
    for node in sorted(failing, key=lambda n: (-len(failing[n]), n)):
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
        if drained_by_us(n, policy.reason_prefix):
            if node not in memory:
                memory[node] = now
            acts.append(
                replace(base, action=HOLD, message=f"{node} stays drained: {names} failing")
            )
            continue
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
    for n in sorted(nodes, key=lambda x: x.name):
        if n.name in failing or not drained_by_us(n, policy.reason_prefix):
            continue
        reason = n.reason.text if n.reason else ""
        src = reason_source(reason, policy.reason_prefix)
        base = Action(n.name, HOLD, "", dry, source=src or "", partitions=n.partitions)
        since = memory.get(n.name)
        if since is None:
            memory[n.name] = now
            acts.append(
                replace(
                    base,
                    message=f"{n.name} was drained by this loop ({reason}) at a time it no longer"
                    " knows: it stays drained until a result newer than now passes",
                )
            )
            continue
        passing = sorted(
            (
                e
                for (node, source), e in latest.items()
                if node == n.name and e.passed and e.timestamp > since and src in (None, source)
            ),
            key=lambda e: e.timestamp,
        )
        if not passing:
            acts.append(
                replace(
                    base,
                    message=f"{n.name} stays drained ({reason}): no {src or 'result'} has"
                    " passed since the drain; a drained node takes no job, so re-test it in a"
                    " maintenance reservation",
                )
            )
            continue
        ok = passing[-1]
        acts.append(
            replace(
                base,
                action=RESUME,
                run_id=ok.run_id,
                source=ok.source,
                message=f"{'would resume' if dry else 'resume'} {n.name}: {ok.source} passed in"
                f" run {ok.run_id} after the drain",
            )
        )
        if not dry:
            memory.pop(n.name, None)
    return decision


def apply(actions: Sequence[Action], runner: Runner, *, timeout_s: float = 30) -> list[Action]:
    """Run each drain/resume that is not dry-run; each action comes back with whether it ran
    and SLURM's answer (a refusal names the missing operator right)."""
    done: list[Action] = []
    for a in actions:
        if not a.changes_state or a.dry_run:
            done.append(a)
            continue
        res = runner.run(a.argv(), timeout_s=timeout_s)
        if res.ok:
            done.append(replace(a, executed=True, outcome="ok"))
            continue
        answer = (res.tail(2) or f"exit {res.returncode}").replace("\n", " ")
        denied = re.search(r"Invalid user id|permission denied|Access denied", answer, re.I)
        hint = f" ({PERMISSION_HINT})" if denied else ""
        done.append(replace(a, executed=False, outcome=f"failed: {answer}{hint}"))
    return done
