"""Nodes, partitions and the configuration as sinfo and scontrol print them.

Checks run sinfo, scontrol, squeue, sacct and sbatch over SSH and read their text. Each
parser here takes that text and returns frozen dataclasses; nothing here runs a command.
Anything that cannot be read raises :class:`ValueError` naming the offending text, so a
garbled or truncated answer fails a check loudly instead of looking like an empty cluster.

Output shapes differ between SLURM releases; what is handled, and where each shape comes
from (the SLURM sources at the release tags), is noted on each parser:

* ``sinfo --json``: 22.05 prints ``{"nodes": [...]}`` (openapi v0.0.38 node dump, ``state``
  a lower-case string plus ``state_flags``); 23.02 and later print ``{"sinfo": [...]}``,
  one entry per sinfo group (data_parser v0.0.39+, ``node.state`` a list such as
  ``["IDLE", "DRAIN"]``). Both are read by :func:`parse_sinfo_nodes`.
* ``scontrol show node --json`` exists from 23.02 (``{"nodes": [...]}``, state as a list);
  :func:`parse_scontrol_nodes` reads it.

One parser per command output (sinfo, scontrol show node/partition/config, squeue, sacct,
sbatch); each reads every layout of its command (the production ``-h -o``/``-P`` formats,
the default tables with headers, and JSON where the command has it), so what other sites
print goes through the same code the checks use. Values cut to a column width (``OUT_OF_ME+``)
raise instead of being read as values.
* ``scontrol show node [-o]``, ``scontrol show partition -o`` and ``scontrol show config``
  have kept their shapes; only keys were added over time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from mlops_assets.core.parse.nodelist import compress_hostlist, expand_hostlist
from mlops_assets.core.parse.slurm.states import (
    DrainReason,
    NodeState,
    parse_drain_reason,
    parse_node_state,
)
from mlops_assets.core.parse.slurm.text import (
    _NULLS,
    _clip,
    _format_fields,
    _j_dict,
    _j_int,
    _j_str,
    _j_strlist,
    _load_json,
    _opt_int,
    _table,
)
from mlops_assets.core.parse.slurm.units import Gres, gpu_count, parse_gres, parse_tres, tres_gpus

#: ``sinfo -h -N -o SINFO_NODE_FORMAT``: one line per (node, partition).
#: Node, partition (``*`` marks the default), long state with flag suffixes, CPUs,
#: RealMemory (MB), configured GRES, reason (``none`` when unset).
SINFO_NODE_FORMAT = "%N|%P|%T|%c|%m|%G|%E"
SINFO_NODE_FIELDS = ("node", "partition", "state", "cpus", "memory_mb", "gres", "reason")

# --------------------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlurmNode:
    """One node as any of sinfo/scontrol (text or JSON) reports it.

    Fields a given source does not print are ``None`` / empty. ``fields`` keeps the raw
    key/value pairs of scontrol text output for anything not lifted into a field.
    """

    name: str
    state: NodeState
    partitions: tuple[str, ...] = ()
    cpus: int | None = None
    cpus_alloc: int | None = None
    real_memory_mb: int | None = None
    alloc_memory_mb: int | None = None
    gres: tuple[Gres, ...] = ()
    gres_used: tuple[Gres, ...] = ()
    reason: DrainReason | None = None
    cfg_tres: Mapping[str, str] = field(default_factory=dict)
    alloc_tres: Mapping[str, str] = field(default_factory=dict)
    version: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def gpus(self) -> int:
        """Configured GPUs (from Gres, else from CfgTRES)."""
        if self.gres:
            return gpu_count(self.gres)
        return tres_gpus(self.cfg_tres) if self.cfg_tres else 0

    @property
    def gpus_used(self) -> int:
        """GPUs in use (from GresUsed, else from AllocTRES)."""
        if self.gres_used:
            return gpu_count(self.gres_used)
        return tres_gpus(self.alloc_tres) if self.alloc_tres else 0


def _merge_node(nodes: dict[str, SlurmNode], node: SlurmNode) -> None:
    """Fold repeated rows of one node (one per partition) into a single record."""
    prev = nodes.get(node.name)
    if prev is None:
        nodes[node.name] = node
        return
    parts = prev.partitions + tuple(p for p in node.partitions if p not in prev.partitions)
    nodes[node.name] = replace(prev, partitions=parts)


#: sinfo header words and ``-o`` letters → column names.
_SINFO_HEADERS = {
    "PARTITION": "partition",
    "AVAIL": "avail",
    "NODES": "count",
    "STATE": "state",
    "NODELIST": "nodes",
    "HOSTNAMES": "nodes",
    "CPUS": "cpus",
    "MEMORY": "memory",
    "GRES": "gres",
    "REASON": "reason",
    "TIMELIMIT": "timelimit",
}
_SINFO_LETTERS = {
    "P": "partition",
    "R": "partition",
    "a": "avail",
    "D": "count",
    "T": "state",
    "t": "state",
    "N": "nodes",
    "n": "nodes",
    "c": "cpus",
    "m": "memory",
    "G": "gres",
    "E": "reason",
    "l": "timelimit",
}


def _sinfo_int(value: str | None, what: str) -> int | None:
    """CPUs/memory of a sinfo row; ``32+`` (a group whose nodes differ) is no per-node figure."""
    if value is None or value.endswith("+"):
        return None
    return _opt_int(value, what)


def parse_sinfo_nodes(text: str, fmt: str = SINFO_NODE_FORMAT) -> list[SlurmNode]:
    """Every node sinfo shows, once, with its partitions in order: the one sinfo parser.

    Reads ``sinfo -h -N -o fmt`` (production: :data:`SINFO_NODE_FORMAT`), any sinfo table
    with its header (default partition summary, ``-N``, ``-l``, ``-o`` formats), and
    ``sinfo --json`` (22.05 ``nodes`` shape, 23.02+ ``sinfo`` groups). A row naming several
    nodes (``adev[1-2]``) gives each of them the row's state; its node count must match the
    list, so a node list cut to the column width raises instead of shrinking the cluster. A
    ``*`` after the partition (the default partition) is dropped.
    """
    if text.lstrip().startswith("{"):
        return _parse_nodes_json(text)
    cols, sep = _format_fields(fmt, _SINFO_LETTERS, "sinfo")
    rows = _table(text, what="sinfo", headers=_SINFO_HEADERS, fields=cols, free="reason", sep=sep)
    nodes: dict[str, SlurmNode] = {}
    for row in rows:
        line = "|".join(row.values())
        if "state" not in row or "nodes" not in row:
            raise ValueError(f"sinfo output needs STATE and NODELIST columns: {_clip(line)!r}")
        names_text, count = row["nodes"], row.get("count")
        if names_text in _NULLS and count == "0":
            continue  # a partition without nodes (default summary layout)
        if not re.fullmatch(r"[^\s|]+", names_text):
            raise ValueError(f"bad node list {names_text!r} in sinfo line {_clip(line)!r}")
        try:
            names = expand_hostlist(names_text)
        except ValueError as exc:
            raise ValueError(
                f"sinfo node list unreadable (cut to the column width?): {exc}"
            ) from None
        if count is not None and _opt_int(count, "node count") != len(names):
            raise ValueError(
                f"sinfo says {count} nodes but lists {len(names)} (node list cut?): {_clip(line)!r}"
            )
        part = row.get("partition", "").rstrip("*")
        state = parse_node_state(row["state"])
        for name in names:
            _merge_node(
                nodes,
                SlurmNode(
                    name=name,
                    state=state,
                    partitions=(part,) if part and part not in _NULLS else (),
                    cpus=_sinfo_int(row.get("cpus"), "CPUs"),
                    real_memory_mb=_sinfo_int(row.get("memory"), "memory"),
                    gres=parse_gres(row.get("gres", "")),
                    reason=parse_drain_reason(row.get("reason")),
                ),
            )
    return list(nodes.values())


# --- scontrol text -----------------------------------------------------------------------

# Keys whose values may contain spaces. Their value runs to the end of the line (multi-
# line output) or to the next key from _KNOWN_KEYS (one-liner output).
_FREE_TEXT_KEYS = frozenset({"OS", "Reason", "Comment", "Extra"})
# Every key scontrol prints for nodes and partitions, 20.11 through 24.11 (node_info.c,
# partition_info.c). Only used to end free-text values in one-liner output.
_KNOWN_KEYS = frozenset(
    """
    NodeName Arch CpuBind CoresPerSocket CPUAlloc CPUEfctv CPUTot CPULoad
    AvailableFeatures ActiveFeatures Gres GresDrain GresUsed NodeAddr NodeHostName
    BcastAddr Port Version OS RealMemory AllocMem FreeMem Sockets Boards CoreSpecCount
    CPUSpecList MemSpecLimit RestrictedCoresPerGPU State ThreadsPerCore TmpDisk Weight
    Owner MCS_label NextState Partitions BootTime SlurmdStartTime LastBusyTime
    ResumeAfterTime CfgTRES AllocTRES CapWatts CurrentWatts AveWatts ExtSensorsJoules
    ExtSensorsWatts ExtSensorsTemp Reason Comment Extra InstanceId InstanceType
    ReservationName LowestJoules ConsumedJoules PartitionName AllowGroups AllowAccounts
    DenyAccounts AllowQos DenyQos AllocNodes Alternate Default QoS DefaultTime
    DisableRootJobs ExclusiveUser ExclusiveTopo GraceTime Hidden MaxNodes MaxTime
    MinNodes LLN MaxCPUsPerNode MaxCPUsPerSocket NodeSets Nodes PriorityJobFactor
    PriorityTier RootOnly ReqResv OverSubscribe OverTimeLimit PreemptMode TotalCPUs
    TotalNodes SelectTypeParameters JobDefaults DefMemPerCPU DefMemPerNode MaxMemPerCPU
    MaxMemPerNode TRES TRESBillingWeights ResumeTimeout SuspendTimeout SuspendTime
    PowerDownOnIdle
    """.split()  # noqa: SIM905 - a word list reads better than 100 quoted keys
)
_KEY_AT = re.compile(r"(?:^|(?<=\s))([A-Za-z][A-Za-z0-9_]*)=")


def _parse_kv_record(record: str) -> dict[str, str]:
    """Split one scontrol record into key/value pairs, respecting free-text values."""
    out: dict[str, str] = {}
    pos = 0
    n = len(record)
    last_key: str | None = None
    while pos < n:
        while pos < n and record[pos].isspace():
            pos += 1
        if pos >= n:
            break
        m = _KEY_AT.match(record, pos)
        if not m:
            # A continuation line (multi-line Reason) or stray text: belongs to the
            # previous free-text value; anything else is malformed.
            end = record.find("\n", pos)
            end = n if end < 0 else end
            chunk = record[pos:end].strip()
            if last_key in _FREE_TEXT_KEYS:
                out[last_key] = f"{out[last_key]}\n{chunk}"
                pos = end
                continue
            raise ValueError(f"expected Key=value at {_clip(record[pos:end])!r}")
        key = m.group(1)
        start = m.end()
        if key in _FREE_TEXT_KEYS:
            end = record.find("\n", start)
            end = n if end < 0 else end
            for km in _KEY_AT.finditer(record, start, end):
                if km.group(1) in _KNOWN_KEYS and km.start() > start:
                    end = km.start()
                    break
            value = record[start:end].strip()
        else:
            end = start
            while end < n and not record[end].isspace():
                end += 1
            value = record[start:end]
        out[key] = value
        last_key = key
        pos = end
    return out


def parse_scontrol_records(text: str, first_key: str) -> list[dict[str, str]]:
    """Split ``scontrol show <entity> [-o]`` output into one dict per entity.

    A record starts at a line beginning with ``<first_key>=`` (``NodeName``,
    ``PartitionName``); the one-liner, the indented multi-line layout and blocks pasted
    without their indentation (as documentation and forum posts show them) are accepted: a
    following line belongs to the record when it is indented or starts with ``Key=``.
    """
    records: list[str] = []
    prefix = f"{first_key}="
    for line in text.splitlines():
        if not line.strip():
            continue
        flush = line.lstrip()
        if flush.startswith(prefix):
            records.append(flush)
        elif records and (line[:1].isspace() or _KEY_AT.match(flush)):
            records[-1] += "\n   " + flush
        else:
            raise ValueError(f"unexpected line in scontrol output: {_clip(line)!r}")
    return [_parse_kv_record(r) for r in records]


def _node_from_kv(kv: dict[str, str]) -> SlurmNode:
    name = kv.get("NodeName", "")
    if not name or name in _NULLS:
        raise ValueError(f"scontrol node record without NodeName: {_clip(repr(kv))}")
    if "State" not in kv:
        raise ValueError(f"scontrol node {name!r} has no State")
    parts = kv.get("Partitions", "")
    return SlurmNode(
        name=name,
        state=parse_node_state(kv["State"]),
        partitions=tuple(p for p in parts.split(",") if p) if parts not in _NULLS else (),
        cpus=_opt_int(kv.get("CPUTot"), "CPUTot"),
        cpus_alloc=_opt_int(kv.get("CPUAlloc"), "CPUAlloc"),
        real_memory_mb=_opt_int(kv.get("RealMemory"), "RealMemory"),
        alloc_memory_mb=_opt_int(kv.get("AllocMem"), "AllocMem"),
        gres=parse_gres(kv.get("Gres", "")),
        gres_used=parse_gres(kv.get("GresUsed", "")),
        reason=parse_drain_reason(kv.get("Reason")),
        cfg_tres=parse_tres(kv.get("CfgTRES", "")),
        alloc_tres=parse_tres(kv.get("AllocTRES", "")),
        version=kv.get("Version") or None,
        fields=kv,
    )


def parse_scontrol_nodes(text: str) -> list[SlurmNode]:
    """The one ``scontrol show node`` parser: multi-line, ``-o`` one-liner, blocks pasted
    without their indentation, and ``--json`` (23.02+; also slurmrestd's node answer)."""
    if text.lstrip().startswith("{"):
        return _parse_nodes_json(text)
    return [_node_from_kv(kv) for kv in parse_scontrol_records(text, "NodeName")]


@dataclass(frozen=True)
class SlurmPartition:
    """A partition from ``scontrol show partition`` (text or JSON)."""

    name: str
    state: str
    default: bool | None
    nodes: tuple[str, ...]
    total_cpus: int | None = None
    total_nodes: int | None = None
    max_time: str | None = None
    tres: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def gpus(self) -> int:
        """GPUs the partition's TRES line configures."""
        return tres_gpus(self.tres) if self.tres else 0

    @property
    def up(self) -> bool:
        """Partition accepts and schedules jobs."""
        return self.state == "UP"


def parse_scontrol_partitions(text: str) -> list[SlurmPartition]:
    """The one ``scontrol show partition`` parser: text (``-o`` or multi-line, indented or
    pasted flush left) and ``--json`` (23.02+)."""
    if text.lstrip().startswith("{"):
        return _parse_partitions_json(text)
    out: list[SlurmPartition] = []
    for kv in parse_scontrol_records(text, "PartitionName"):
        name = kv.get("PartitionName", "")
        if not name:
            raise ValueError("scontrol partition record without PartitionName")
        nodes = kv.get("Nodes", "")
        default = kv.get("Default")
        out.append(
            SlurmPartition(
                name=name,
                state=kv.get("State", "UNKNOWN").upper(),
                default=None if default is None else default.upper() == "YES",
                nodes=tuple(expand_hostlist(nodes)) if nodes not in _NULLS else (),
                total_cpus=_opt_int(kv.get("TotalCPUs"), "TotalCPUs"),
                total_nodes=_opt_int(kv.get("TotalNodes"), "TotalNodes"),
                max_time=kv.get("MaxTime"),
                tres=parse_tres(kv.get("TRES", "")),
                fields=kv,
            )
        )
    return out


_CONFIG_LINE = re.compile(r"^\s*([A-Za-z_][\w.()/\[\]-]*)\s*=\s?(.*?)\s*$")


def parse_scontrol_config(text: str) -> dict[str, str]:
    """``scontrol show config`` ``Key = value`` lines → dict (first occurrence wins).

    Section headers (``Cgroup Support Configuration:``), the ``Configuration data as of``
    banner and the trailing ``Slurmctld(primary) at ... is UP`` line are skipped. Raises
    if no setting is found at all, since that means the command did not really answer.
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _CONFIG_LINE.match(line)
        if m and " " not in m.group(1):
            out.setdefault(m.group(1), m.group(2))
    if not out:
        raise ValueError(f"no 'Key = value' lines in scontrol show config output: {_clip(text)!r}")
    return out


def _json_state(obj: Mapping[str, Any]) -> NodeState:
    state = obj.get("state")
    if isinstance(state, str):  # 22.05: "idle" + "state_flags": ["DRAIN"]
        return parse_node_state([state], _j_strlist(obj, "state_flags"))
    if isinstance(state, list):  # 23.02+: ["IDLE", "DRAIN"]
        return parse_node_state(state)
    raise ValueError(f"JSON node state missing or malformed: {_clip(repr(state))}")


def _json_gres(obj: Mapping[str, Any], key: str) -> tuple[Gres, ...]:
    """A GRES string field of a JSON node entry; absent or null means none."""
    return parse_gres(_j_str(obj, key) or "")


def _json_reason(
    obj: Mapping[str, Any], text_key: str, user_key: str, when_key: str
) -> DrainReason | None:
    """A node's drain reason, with who set it and when, read from the keys of its JSON shape:
    scontrol's node entry and sinfo's group name them differently. The JSON's user and time,
    where set, win over the reason text's ``[user@time]`` tail."""
    text, user, when = _j_str(obj, text_key), _j_str(obj, user_key), _j_int(obj, when_key)
    reason = parse_drain_reason(text)
    if reason is None:
        return None
    return DrainReason(
        text=reason.text,
        user=user or reason.user,
        timestamp=str(when) if when else reason.timestamp,
    )


def _node_from_json(obj: Any) -> SlurmNode:
    if not isinstance(obj, dict):
        raise ValueError("JSON node entry is not an object")
    name = _j_str(obj, "name") or _j_str(obj, "hostname")
    if not name:
        raise ValueError("JSON node entry has no name")
    tres = _j_str(obj, "tres") or ""
    tres_used = _j_str(obj, "tres_used") or ""
    return SlurmNode(
        name=name,
        state=_json_state(obj),
        partitions=tuple(_j_strlist(obj, "partitions")),
        cpus=_j_int(obj, "cpus"),
        cpus_alloc=_j_int(obj, "alloc_cpus"),
        real_memory_mb=_j_int(obj, "real_memory"),
        alloc_memory_mb=_j_int(obj, "alloc_memory"),
        gres=_json_gres(obj, "gres"),
        gres_used=_json_gres(obj, "gres_used"),
        reason=_json_reason(obj, "reason", "reason_set_by_user", "reason_changed_at"),
        cfg_tres=parse_tres(tres),
        alloc_tres=parse_tres(tres_used),
        version=_j_str(obj, "version") or _j_str(obj, "slurmd_version"),
    )


def _nodes_from_sinfo_group(obj: Any) -> list[SlurmNode]:
    """One 23.02+ ``sinfo`` group → a node record per name in ``nodes.nodes``."""
    if not isinstance(obj, dict):
        raise ValueError("JSON sinfo entry is not an object")
    node = _j_dict(obj, "node")
    state_list = node.get("state")
    if not isinstance(state_list, list):
        raise ValueError("JSON sinfo entry has no node.state list")
    state = parse_node_state(state_list)
    nodes = _j_dict(obj, "nodes")
    names = _j_strlist(nodes, "nodes")
    cpus = _j_dict(obj, "cpus")
    memory = _j_dict(obj, "memory")
    gres = _j_dict(obj, "gres")
    reason = _j_dict(obj, "reason")
    partition = _j_dict(obj, "partition")
    pname = _j_str(partition, "name")
    cpu_max, cpu_min = _j_int(cpus, "maximum"), _j_int(cpus, "minimum")
    mem_max, mem_min = _j_int(memory, "maximum"), _j_int(memory, "minimum")
    out = []
    for name in names:
        out.append(
            SlurmNode(
                name=name,
                state=state,
                partitions=(pname,) if pname else (),
                # Groups may mix nodes; a per-node figure is only exact when min == max.
                cpus=cpu_max if cpu_max == cpu_min else None,
                real_memory_mb=mem_max if mem_max == mem_min else None,
                gres=_json_gres(gres, "total"),
                gres_used=_json_gres(gres, "used"),
                reason=_json_reason(reason, "description", "user", "time"),
            )
        )
    return out


def _parse_nodes_json(text: str) -> list[SlurmNode]:
    """Parse node JSON from sinfo or scontrol, any shape documented in the module doc.

    Raises :class:`SlurmJsonError` (a ValueError) when SLURM's ``errors`` list is set.
    For 23.02+ ``sinfo --json`` the entries are sinfo's groups, which can merge nodes of
    one partition and state; GRES is then the group's. Prefer ``scontrol show node
    --json`` (or ``sinfo -N --json``) when per-node GRES matters.
    """
    data = _load_json(text, "SLURM node")
    merged: dict[str, SlurmNode] = {}
    if "sinfo" in data:
        groups = data["sinfo"]
        if not isinstance(groups, list):
            raise ValueError("JSON 'sinfo' is not a list")
        for g in groups:
            for n in _nodes_from_sinfo_group(g):
                _merge_node(merged, n)
        return list(merged.values())
    if "nodes" in data:
        nodes = data["nodes"]
        if not isinstance(nodes, list):
            raise ValueError("JSON 'nodes' is not a list")
        for n in nodes:
            _merge_node(merged, _node_from_json(n))
        return list(merged.values())
    raise ValueError("JSON has neither 'sinfo' nor 'nodes'")


def _parse_partitions_json(text: str) -> list[SlurmPartition]:
    """``scontrol show partition --json`` (23.02+) → partitions.

    ``partition.state`` exists from 24.05 (23.x leave it out: state is then UNKNOWN);
    the default flag is not dumped at all, so ``default`` is ``None``.
    """
    data = _load_json(text, "SLURM partition")
    parts = data.get("partitions")
    if not isinstance(parts, list):
        raise ValueError("JSON has no 'partitions' list")
    out = []
    for p in parts:
        if not isinstance(p, dict):
            raise ValueError("JSON partition entry is not an object")
        name = _j_str(p, "name")
        if not name:
            raise ValueError("JSON partition entry has no name")
        nodes = _j_dict(p, "nodes")
        states = _j_strlist(_j_dict(p, "partition"), "state")
        configured = _j_str(nodes, "configured") or ""
        out.append(
            SlurmPartition(
                name=name,
                state=states[0].upper() if states else "UNKNOWN",
                default=None,
                nodes=tuple(expand_hostlist(configured)) if configured not in _NULLS else (),
                total_cpus=_j_int(_j_dict(p, "cpus"), "total"),
                total_nodes=_j_int(nodes, "total"),
                tres=parse_tres(_j_str(_j_dict(p, "tres"), "configured") or ""),
            )
        )
    return out


def nodes_hostlist(nodes: Iterable[SlurmNode]) -> str:
    """Compressed hostlist of node records, for messages such as ``gpu[01-03] drained``."""
    return compress_hostlist(n.name for n in nodes)
