"""Which GPU nodes need a fresh smoke run: the node sensor's pure part.

One ``sinfo -h -N -o SINFO_NODE_FORMAT`` per tick becomes a snapshot ``{node: "STATE|gres"}``
of the GPU nodes of the smoke partition; comparing it with the previous tick's snapshot (the
sensor's cursor) names each node that

- appeared (a new node that is usable),
- returned to service (was drained/down/not responding, is usable now),
- changed its GRES (e.g. gpu:2 → gpu:4) and is usable,
- was left out of the last per-node GPU probe because jobs held it (``waiting``: the check's
  ``not_probed_busy``) and has just come free (busy → not busy),

so the sensor asks for the smoke jobs on exactly those nodes. The first tick records a
baseline and asks for nothing (the nightly full validation covers existing nodes). A node
that is busy (allocated, mixed) is usable: its smoke job queues behind the running work.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from mlops_assets.core.parse.slurm.nodes import SlurmNode, parse_sinfo_nodes
from mlops_assets.core.parse.slurm.states import parse_node_state

NEW, RESUMED, GRES_CHANGED, FREED = "new", "resumed", "gres_changed", "freed"


@dataclass(frozen=True)
class NodeChange:
    node: str
    reason: str
    before: str | None
    after: str


_NOT_FOR_SMOKE = frozenset({"POWERED_DOWN", "POWERING_DOWN", "MAINTENANCE", "REBOOT_REQUESTED"})


def usable(state: str) -> bool:
    """Schedulable for a smoke job: in service (busy is fine: the job queues), not drained or
    draining, down, failing, not responding, powered down or waiting for maintenance/reboot.
    ``state`` is a snapshot's state (``str(NodeState)``), read by the one node-state parser;
    an unreadable one (an old cursor) is not usable."""
    try:
        st = parse_node_state(state)
    except ValueError:
        return False
    return st.healthy and not st.flags & _NOT_FOR_SMOKE


def snapshot(nodes: Iterable[SlurmNode], partition: str | None = None) -> dict[str, str]:
    """GPU nodes (GRES gpu > 0), optionally of one partition → ``{name: "STATE|gres"}``."""
    out: dict[str, str] = {}
    for n in nodes:
        if n.gpus <= 0 or (partition is not None and partition not in n.partitions):
            continue
        gres = ",".join(
            sorted(f"{g.name}:{g.type + ':' if g.type else ''}{g.count}" for g in n.gres)
        )
        out[n.name] = f"{n.state}|{gres}"
    return out


def snapshot_from_sinfo(text: str, partition: str | None = None) -> dict[str, str]:
    return snapshot(parse_sinfo_nodes(text), partition)


def _busy(state: str) -> bool:
    try:
        return parse_node_state(state).busy
    except ValueError:
        return False


def changes(
    previous: Mapping[str, str] | None,
    current: Mapping[str, str],
    waiting: Collection[str] = (),
) -> list[NodeChange]:
    """Nodes to smoke now, sorted by name. ``previous`` None = first tick (baseline).
    ``waiting``: nodes the last per-node GPU probe skipped as busy; each is asked for once,
    on the tick it comes free, so a busy node is probed later without blocking a run."""
    if previous is None:
        return []
    out: list[NodeChange] = []
    for name in sorted(current):
        after = current[name]
        state, _, gres = after.partition("|")
        if not usable(state):
            continue
        before = previous.get(name)
        if before is None:
            out.append(NodeChange(name, NEW, None, after))
            continue
        b_state, _, b_gres = before.partition("|")
        if not usable(b_state):
            out.append(NodeChange(name, RESUMED, before, after))
        elif b_gres != gres:
            out.append(NodeChange(name, GRES_CHANGED, before, after))
        elif name in waiting and _busy(b_state) and not _busy(state):
            out.append(NodeChange(name, FREED, before, after))
    return out


def encode_cursor(snap: Mapping[str, str]) -> str:
    return json.dumps(snap, sort_keys=True, separators=(",", ":"))


def decode_cursor(cursor: str | None) -> dict[str, str] | None:
    """The previous snapshot; None for no cursor or an unreadable one (then: a new baseline)."""
    if not cursor:
        return None
    try:
        data = json.loads(cursor)
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        return None
    return data
