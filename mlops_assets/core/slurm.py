"""Parse what SLURM's client commands print, into typed records for asset checks.

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

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mlops_assets.core.nodelist import compress_hostlist, expand_hostlist

__all__ = [
    "BASE_STATES",
    "NOT_AVAILABLE_FLAGS",
    "SACCT_FIELDS",
    "SACCT_FORMAT",
    "SINFO_NODE_FIELDS",
    "SINFO_NODE_FORMAT",
    "SQUEUE_FORMAT",
    "TERMINAL_JOB_STATES",
    "DrainReason",
    "Gres",
    "GresMismatch",
    "NodeState",
    "SacctRecord",
    "SbatchSubmission",
    "SlurmJsonError",
    "SlurmNode",
    "SlurmPartition",
    "SqueueRecord",
    "gpu_count",
    "is_gres_mismatch",
    "nodes_hostlist",
    "parse_drain_reason",
    "parse_exit_code",
    "parse_gres",
    "parse_gres_mismatch",
    "parse_job_state",
    "parse_node_state",
    "parse_sacct",
    "parse_sbatch",
    "parse_scontrol_config",
    "parse_scontrol_nodes",
    "parse_scontrol_partitions",
    "parse_scontrol_records",
    "parse_sinfo_nodes",
    "parse_size_bytes",
    "parse_slurm_duration",
    "parse_squeue",
    "parse_tres",
    "tres_gpus",
    "tres_memory_bytes",
]

# --------------------------------------------------------------------------------------
# Command formats. Free-text columns go last so a '|' typed into a reason cannot shift
# the columns before it.
# --------------------------------------------------------------------------------------

#: ``sinfo -h -N -o SINFO_NODE_FORMAT``: one line per (node, partition).
#: Node, partition (``*`` marks the default), long state with flag suffixes, CPUs,
#: RealMemory (MB), configured GRES, reason (``none`` when unset).
SINFO_NODE_FORMAT = "%N|%P|%T|%c|%m|%G|%E"
SINFO_NODE_FIELDS = ("node", "partition", "state", "cpus", "memory_mb", "gres", "reason")

#: ``squeue -h -o SQUEUE_FORMAT``: job id, long state, reason, node list.
SQUEUE_FORMAT = "%i|%T|%r|%N"

#: ``sacct -P -n --format=SACCT_FORMAT``.
SACCT_FIELDS = (
    "JobID",
    "JobName",
    "State",
    "ExitCode",
    "Elapsed",
    "AllocTRES",
    "MaxRSS",
    "NodeList",
)
SACCT_FORMAT = ",".join(SACCT_FIELDS)

_NULLS = frozenset({"", "(null)", "N/A", "n/a", "none", "None", "NONE"})


class SlurmJsonError(ValueError):
    """SLURM answered JSON whose ``errors`` list is not empty (the query itself failed)."""


def _clip(text: str, limit: int = 120) -> str:
    """Shorten text for error messages, so a huge garbage blob does not flood logs."""
    return text if len(text) <= limit else text[:limit] + "..."


# --------------------------------------------------------------------------------------
# Sizes, durations, TRES
# --------------------------------------------------------------------------------------

_UNIT_POWERS = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4, "P": 5, "E": 6}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTPE]?)(?:i?B)?$", re.IGNORECASE)


def parse_size_bytes(text: str, default_unit: str = "") -> int:
    """``1234K`` / ``12.50M`` / ``100`` → bytes, with SLURM's 1024-based units.

    ``default_unit`` applies when no suffix is given (``M`` for TRES ``mem=``).
    """
    m = _SIZE.match(text.strip())
    if not m:
        raise ValueError(f"not a SLURM size: {_clip(text)!r}")
    unit = (m.group(2) or default_unit).upper()
    if unit not in _UNIT_POWERS:
        raise ValueError(f"unknown size unit {unit!r} in {_clip(text)!r}")
    # Exact integer arithmetic (round half up): floats overflow on absurd inputs and lose
    # precision on large ones.
    whole, _, frac = m.group(1).partition(".")
    scale = 10 ** len(frac)
    return (int(whole + frac) * 1024 ** _UNIT_POWERS[unit] * 2 + scale) // (2 * scale)


_DURATION = re.compile(
    r"^(?:(?P<days>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?(?:\.(?P<frac>\d+))?$"
)
_UNLIMITED = frozenset({"UNLIMITED", "INFINITE", "Partition_Limit", "NONE"})


def parse_slurm_duration(text: str) -> int | None:
    """SLURM time string → whole seconds; ``None`` for UNLIMITED-like values.

    Accepts ``D-HH:MM:SS``, ``D-HH:MM``, ``D-HH``, ``HH:MM:SS``, ``MM:SS``, ``MM`` and a
    fractional-second tail (``00:01.234`` from TotalCPU), as SLURM's own parser does.
    """
    s = text.strip()
    if s in _UNLIMITED:
        return None
    m = _DURATION.match(s)
    if not m:
        raise ValueError(f"not a SLURM duration: {_clip(text)!r}")
    days = int(m.group("days") or 0)
    a, b, c = m.group("a"), m.group("b"), m.group("c")
    if m.group("days") is not None:
        # D-HH, D-HH:MM, D-HH:MM:SS
        hours, minutes, seconds = int(a), int(b or 0), int(c or 0)
    elif c is not None:
        hours, minutes, seconds = int(a), int(b or 0), int(c)
    elif b is not None:
        hours, minutes, seconds = 0, int(a), int(b)
    else:
        hours, minutes, seconds = 0, int(a), 0
    if minutes >= 60 or seconds >= 60:
        raise ValueError(f"minutes/seconds out of range in duration {_clip(text)!r}")
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def parse_tres(text: str) -> dict[str, str]:
    """``billing=1,cpu=1,gres/gpu=1,mem=100M,node=1`` → dict of strings (empty → ``{}``)."""
    s = text.strip()
    if s in _NULLS:
        return {}
    out: dict[str, str] = {}
    for item in s.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"bad TRES item {item!r} in {_clip(text)!r}")
        out[key.strip()] = value.strip()
    return out


def tres_gpus(tres: Mapping[str, str]) -> int:
    """GPUs in a TRES dict: ``gres/gpu`` (typed entries like ``gres/gpu:a100`` are subsets)."""
    value = tres.get("gres/gpu")
    if value is not None:
        return parse_size_bytes(value)
    return sum(parse_size_bytes(v) for k, v in tres.items() if k.startswith("gres/gpu:"))


def tres_memory_bytes(tres: Mapping[str, str]) -> int | None:
    """``mem=`` of a TRES dict in bytes (SLURM's default unit there is MB)."""
    value = tres.get("mem")
    return None if value is None else parse_size_bytes(value, default_unit="M")


# --------------------------------------------------------------------------------------
# GRES
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Gres:
    """One generic resource entry such as ``gpu:a100:4(S:0-1)``.

    ``sockets`` is the ``S:`` affinity spec and ``indexes`` the ``IDX:`` spec that
    GresUsed carries (``N/A`` when none is in use), both as SLURM wrote them.
    """

    name: str
    type: str | None
    count: int
    sockets: str | None = None
    indexes: str | None = None


def _split_outside_parens(text: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ')' in {_clip(text)!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"unbalanced '(' in {_clip(text)!r}")
    parts.append(text[start:])
    return parts


_GRES_NAME = re.compile(r"^[A-Za-z][\w.-]*$")
_GRES_COUNT = re.compile(r"^\d+[KMGTP]?$")
_GRES_TYPE = re.compile(r"^[^\s:(),]+$")


def _parse_gres_item(item: str, whole: str) -> Gres:
    # GresUsed prints an unset type as "(null)" (gpu:(null):4(IDX:0-3)); drop it before
    # looking for the "(S:...)" / "(IDX:...)" detail.
    item = item.replace(":(null)", ":")
    main, paren, rest = item.partition("(")
    sockets = indexes = None
    if paren:
        if not rest.endswith(")"):
            raise ValueError(f"bad GRES item {item!r} in {_clip(whole)!r}")
        for spec in rest[:-1].split(")("):
            key, sep, value = spec.partition(":")
            if not sep:
                raise ValueError(f"bad GRES detail {spec!r} in {_clip(whole)!r}")
            if key == "S":
                sockets = value
            elif key == "IDX":
                indexes = value
            # Other details (none known today) are ignored, not fatal.
    parts = main.split(":")
    name = parts[0]
    if not _GRES_NAME.match(name):
        raise ValueError(f"bad GRES name {name!r} in {_clip(whole)!r}")
    gtype: str | None = None
    if len(parts) == 1:
        count = 1
    elif len(parts) == 2:
        if _GRES_COUNT.match(parts[1]):
            count = parse_size_bytes(parts[1])
        else:
            gtype, count = parts[1], 1
    elif len(parts) == 3:
        gtype = parts[1]
        if not _GRES_COUNT.match(parts[2]):
            raise ValueError(f"bad GRES count {parts[2]!r} in {_clip(whole)!r}")
        count = parse_size_bytes(parts[2])
    else:
        raise ValueError(f"too many ':' in GRES item {item!r} of {_clip(whole)!r}")
    if gtype is not None:
        if gtype == "(null)" or gtype == "":
            gtype = None
        elif not _GRES_TYPE.match(gtype):
            raise ValueError(f"bad GRES type {gtype!r} in {_clip(whole)!r}")
    return Gres(name=name, type=gtype, count=count, sockets=sockets, indexes=indexes)


def parse_gres(text: str) -> tuple[Gres, ...]:
    """Parse a Gres / GresUsed string; ``(null)``, ``N/A`` and empty give ``()``.

    Handles ``gpu:2``, ``gpu:a100:4(S:0-1)``, ``gpu:h200:8(S:0-1),gpu:l40s:2``,
    ``gpu:tesla:2(IDX:0-1)``, ``gpu:(null):4(IDX:0-3)`` and ``gpu:titanx:0(IDX:N/A)``.
    """
    s = text.strip()
    if s in _NULLS:
        return ()
    return tuple(_parse_gres_item(item.strip(), s) for item in _split_outside_parens(s))


def gpu_count(gres: str | Iterable[Gres], name: str = "gpu") -> int:
    """Total count of GRES ``name`` (default ``gpu``) over all types."""
    entries = parse_gres(gres) if isinstance(gres, str) else tuple(gres)
    return sum(g.count for g in entries if g.name == name)


# --------------------------------------------------------------------------------------
# Node state
# --------------------------------------------------------------------------------------

#: Base states (node_states[] in slurm_protocol_defs.c), plus INVALID (the JSON dumpers'
#: name for NO_VAL).
BASE_STATES = frozenset(
    {"DOWN", "IDLE", "ALLOCATED", "ERROR", "MIXED", "FUTURE", "UNKNOWN", "INVALID"}
)

#: Flags that keep a node from taking new work, whatever its base state.
NOT_AVAILABLE_FLAGS = frozenset(
    {
        "DRAIN",
        "FAIL",
        "NOT_RESPONDING",
        "INVALID_REG",
        "MAINTENANCE",
        "RESERVED",
        "POWER_DOWN",
        "POWERING_DOWN",
        "POWER_DRAIN",
        "REBOOT_REQUESTED",
        "REBOOT_ISSUED",
        "BLOCKED",
    }
)

# Flag suffix characters (sinfo(1) "NODE STATE CODES"; '+' is ALLOCATED+ = completing).
_SUFFIX_FLAGS = {
    "*": "NOT_RESPONDING",
    "~": "POWERED_DOWN",
    "#": "POWERING_UP",
    "!": "POWER_DOWN",
    "%": "POWERING_DOWN",
    "$": "MAINTENANCE",
    "@": "REBOOT_REQUESTED",
    "^": "REBOOT_ISSUED",
    "-": "PLANNED",
}

# Words sinfo/scontrol print (long %T, compact %t, scontrol complete strings) → base and
# implied flags. Compact strings lose the base under DRAIN/FAIL: "drained" may have been
# IDLE or DOWN underneath. IDLE is assumed for idle-like words and ALLOCATED for busy-like
# ones; the flags, which decide availability, are exact.
_STATE_WORDS: dict[str, tuple[str, frozenset[str]]] = {}


def _word(names: Iterable[str], base: str, *flags: str) -> None:
    for n in names:
        _STATE_WORDS[n] = (base, frozenset(flags))


_word(["IDLE"], "IDLE")
_word(["MIX", "MIXED"], "MIXED")
_word(["ALLOC", "ALLOCATED"], "ALLOCATED")
_word(["DOWN"], "DOWN")
_word(["ERROR"], "ERROR")
_word(["FUTR", "FUTURE"], "FUTURE")
_word(["UNK", "UNKNOWN"], "UNKNOWN")
_word(["INVALID"], "INVALID")
_word(["DRAIN", "DRAINED"], "IDLE", "DRAIN")
_word(["DRNG", "DRAINING"], "ALLOCATED", "DRAIN")
_word(["COMP", "COMPLETING"], "IDLE", "COMPLETING")
_word(["RESV", "RESERVED"], "IDLE", "RESERVED")
_word(["PLND", "PLANNED"], "IDLE", "PLANNED")
_word(["MAINT", "MAINTENANCE"], "IDLE", "MAINTENANCE")
_word(["BOOT", "REBOOT", "REBOOT_REQUESTED"], "IDLE", "REBOOT_REQUESTED")
_word(["REBOOT_ISSUED"], "IDLE", "REBOOT_ISSUED")
_word(["CANC_R", "CANCEL_REBOOT", "REBOOT_CANCELED"], "IDLE", "REBOOT_CANCELED")
_word(["FAIL"], "IDLE", "FAIL")
_word(["FAILG", "FAILING"], "ALLOCATED", "FAIL")
_word(["INVAL", "INVALID_REG"], "UNKNOWN", "INVALID_REG")
_word(["NPC", "PERFCTRS"], "ALLOCATED", "PERFCTRS")
_word(["POW_DN", "POWER_DOWN"], "IDLE", "POWER_DOWN")
_word(["POWERED_DN", "POWERED_DOWN"], "IDLE", "POWERED_DOWN")
_word(["POWRING_DN", "POWERING_DOWN"], "IDLE", "POWERING_DOWN")
_word(["POW_UP", "POWER_UP"], "IDLE", "POWER_UP")
_word(["POWERING_UP"], "IDLE", "POWERING_UP")
_word(["CLOUD"], "UNKNOWN", "CLOUD")
_word(["BLOCK", "BLOCKED"], "IDLE", "BLOCKED")
_word(["RESM", "RESUME"], "IDLE", "RESUME")
_word(["UNDRAIN"], "IDLE", "UNDRAIN")

_FLAG_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_BUSY_BASES = frozenset({"ALLOCATED", "MIXED"})
_OUT_OF_SERVICE_BASES = frozenset({"DOWN", "ERROR", "FUTURE", "UNKNOWN", "INVALID"})


@dataclass(frozen=True)
class NodeState:
    """A node's base state plus flag set, normalized from any SLURM spelling.

    ``str()`` gives scontrol's form (``IDLE+DRAIN``); flags are upper-case names as in
    SLURM's JSON (``DRAIN``, ``NOT_RESPONDING``, ``POWERED_DOWN``...).
    """

    base: str
    flags: frozenset[str] = frozenset()

    def __str__(self) -> str:
        return "+".join([self.base, *sorted(self.flags)])

    @property
    def responding(self) -> bool:
        """slurmctld hears from slurmd (no ``*`` / NOT_RESPONDING)."""
        return "NOT_RESPONDING" not in self.flags

    @property
    def drain(self) -> bool:
        """Drain requested, whether jobs are still finishing (draining) or not (drained)."""
        return "DRAIN" in self.flags

    @property
    def busy(self) -> bool:
        """Jobs are running or completing on the node."""
        return self.base in _BUSY_BASES or "COMPLETING" in self.flags

    @property
    def drained(self) -> bool:
        """Drain requested and no job left: the node is out of service."""
        return self.drain and not self.busy

    @property
    def draining(self) -> bool:
        """Drain requested while jobs are still running."""
        return self.drain and self.busy

    @property
    def down(self) -> bool:
        """Base state DOWN."""
        return self.base == "DOWN"

    @property
    def powered_down(self) -> bool:
        """Powered off by power saving (``~``); such a node still counts as available."""
        return "POWERED_DOWN" in self.flags

    @property
    def healthy(self) -> bool:
        """In service: not down/unknown, not drained/failing, responding (busy is fine)."""
        return self.base not in _OUT_OF_SERVICE_BASES and not (
            self.flags & {"DRAIN", "FAIL", "NOT_RESPONDING", "INVALID_REG"}
        )

    @property
    def available(self) -> bool:
        """Schedulable for new work now: IDLE or MIXED and no blocking flag.

        Power-saved nodes (``idle~``) count as available: SLURM powers them up for jobs.
        """
        return self.base in {"IDLE", "MIXED"} and not (self.flags & NOT_AVAILABLE_FLAGS)


def _state_word(token: str, whole: str) -> tuple[str, set[str]]:
    """One '+'-separated part: a state word with optional suffix characters."""
    flags: set[str] = set()
    word = token
    while word and word[-1] in _SUFFIX_FLAGS:
        flags.add(_SUFFIX_FLAGS[word[-1]])
        word = word[:-1]
    key = word.upper()
    if key in _STATE_WORDS:
        base, implied = _STATE_WORDS[key]
        return base, flags | set(implied)
    raise ValueError(f"unknown node state {token!r} in {_clip(whole)!r}")


def parse_node_state(state: str | Sequence[str], flags: Sequence[str] = ()) -> NodeState:
    """Normalize any SLURM node state spelling into a :class:`NodeState`.

    Accepts sinfo ``%T``/``%t`` words with suffixes (``mix*``, ``idle~``, ``alloc+``,
    ``drained``, ``inval``), scontrol's ``IDLE+DRAIN`` / ``DOWN+NOT_RESPONDING``, the 23.02+
    JSON list (``["IDLE", "DRAIN"]``) and the 22.05 JSON pair (``"idle"`` plus
    ``state_flags``, passed as ``flags``).
    """
    if isinstance(state, str):
        text = state.strip()
        if not text:
            raise ValueError("empty node state")
        parts = text.split("+")
        extra: set[str] = set()
        if parts[-1] == "":
            # ALLOCATED+ / alloc+: trailing '+' means completing jobs.
            parts = parts[:-1]
            extra.add("COMPLETING")
        if not parts or any(p == "" for p in parts):
            raise ValueError(f"bad node state {text!r}")
        base, fset = _state_word(parts[0], text)
        fset |= extra
        for p in parts[1:]:
            if _FLAG_NAME.match(p) and p not in BASE_STATES:
                fset.add(p)  # scontrol flag name, possibly one newer than this table
            else:
                fset |= _state_word(p, text)[1]
        for f in flags:
            if not isinstance(f, str) or not _FLAG_NAME.match(f.upper()):
                raise ValueError(f"bad node state flag {f!r}")
            fset.add(f.upper())
        return NodeState(base=base, flags=frozenset(fset))

    items = list(state)
    if not all(isinstance(s, str) for s in items) or not all(isinstance(f, str) for f in flags):
        raise ValueError(f"node state list must hold strings: {_clip(repr(items))}")
    names = [s.upper() for s in [*items, *flags]]
    for n in names:
        if not _FLAG_NAME.match(n):
            raise ValueError(f"bad node state name {n!r}")
    bases = [n for n in names if n in BASE_STATES]
    if len(bases) > 1:
        raise ValueError(f"several base states in {items!r}")
    base = bases[0] if bases else "UNKNOWN"
    return NodeState(base=base, flags=frozenset(n for n in names if n not in BASE_STATES))


# --------------------------------------------------------------------------------------
# Drain reasons
# --------------------------------------------------------------------------------------

_REASON_TAIL = re.compile(r"^(?P<text>.*?)\s*\[(?P<user>[^\]@\s]+)@(?P<when>[^\]\s]+)\]\s*$", re.S)


@dataclass(frozen=True)
class DrainReason:
    """A node's Reason: free text, and who set it when.

    ``timestamp`` is as SLURM gave it: local ISO time from scontrol's ``[user@time]``
    tail, Unix seconds (as a string) from JSON; sinfo ``%E`` carries neither.
    """

    text: str
    user: str | None = None
    timestamp: str | None = None

    @property
    def gres_mismatch(self) -> GresMismatch | None:
        """The GRES count mismatch SLURM reports in this reason, if any."""
        return parse_gres_mismatch(self.text)


def parse_drain_reason(text: str | None) -> DrainReason | None:
    """``Reason=... [slurm@2024-12-19T11:03:34]`` (or sinfo's ``%E``) → DrainReason.

    ``None``, empty and sinfo's ``none`` mean no reason.
    """
    if text is None:
        return None
    s = text.strip()
    if s in _NULLS:
        return None
    first, nl, rest = s.partition("\n")
    m = _REASON_TAIL.match(first)
    if m:
        body = m.group("text") + (nl + rest if nl else "")
        return DrainReason(text=body, user=m.group("user"), timestamp=m.group("when"))
    return DrainReason(text=s)


@dataclass(frozen=True)
class GresMismatch:
    """slurmd found fewer (or different) GRES than slurm.conf configures for the node."""

    name: str
    type: str | None
    found: int
    configured: int


# Texts from gres.c (node_config_validate / _valid_gres_type), 20.11 through 25.x:
#   "gres/gpu count reported lower than configured (0 < 2)"
#   "gres/gpu count too low (0 < 2)"
#   "gpu:a100 count too low (1 < 2)"
#   "gres/gpu count changed and jobs are using them (2 != 1)"
_GRES_MISMATCH = re.compile(
    r"(?:gres/)?(?P<name>[A-Za-z][\w.-]*)(?::(?P<type>[^\s:()]+))?\s+count\s+"
    r"(?:reported lower than configured|too low|changed and jobs are using them)\s*"
    r"\((?P<a>\d+)\s*(?:<|!=)\s*(?P<b>\d+)\)"
)


def parse_gres_mismatch(reason: str | DrainReason | None) -> GresMismatch | None:
    """Extract the GRES mismatch from a drain reason, or ``None`` if it is another reason."""
    if reason is None:
        return None
    text = reason.text if isinstance(reason, DrainReason) else reason
    m = _GRES_MISMATCH.search(text)
    if not m:
        return None
    # For "changed and jobs are using them" the order is (old != new); either way the
    # first number is what the node had and the second what is now expected.
    return GresMismatch(
        name=m.group("name"),
        type=m.group("type"),
        found=int(m.group("a")),
        configured=int(m.group("b")),
    )


def is_gres_mismatch(reason: str | DrainReason | None) -> bool:
    """True when SLURM drained the node because its GRES did not match the config."""
    return parse_gres_mismatch(reason) is not None


# --------------------------------------------------------------------------------------
# Tables: the one reader behind sinfo, squeue and sacct text
# --------------------------------------------------------------------------------------

# sinfo -l, squeue -l and sacct never print a date banner, but sinfo -l / squeue -l do:
# "Thu Oct 10 10:00:00 2024" above the header.
_BANNER = re.compile(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d \d{4}\s*$")
_DASHES = re.compile(r"^[\s-]*-[\s-]*$")


def _split_free(parts: list[str], ncols: int, free: int, sep: str) -> list[str]:
    """Too many pieces: the free-text column ``free`` absorbs the extra separators."""
    if len(parts) <= ncols:
        return parts
    extra = len(parts) - ncols
    return [*parts[:free], sep.join(parts[free : free + extra + 1]), *parts[free + extra + 1 :]]


def _table(
    text: str,
    *,
    what: str,
    headers: Mapping[str, str],
    fields: Sequence[str] | None,
    free: str,
    sep: str = "|",
) -> list[dict[str, str]]:
    """Rows of one command's table as ``{column: value}`` with canonical column names.

    Reads every layout SLURM's table commands print: ``sep``-separated without a header
    (production: ``-h``/``-n`` with a known ``fields`` order), ``sep``-separated with a
    header (``-P`` / ``-o '%N|%T'`` without ``-h``), fixed width with a dashes line (sacct's
    default, where cells may be empty), and whitespace-aligned with a header (sinfo and
    squeue defaults). ``headers`` maps upper-case header words to column names; a header
    word not in it keeps its upper-case name. The ``free`` column may hold the separator
    (job names, reasons); in whitespace tables it must be the last column.
    """
    lines = [ln for ln in text.splitlines() if ln.strip() and not _BANNER.match(ln)]
    if not lines:
        return []
    first = lines[0]
    piped = sep in first
    tokens = [t.strip().upper() for t in (first.split(sep) if piped else first.split())]
    is_header = bool(tokens) and tokens[0] in headers and all(t and not t[0].isdigit() for t in tokens)
    if is_header:
        cols = [headers.get(t, t) for t in tokens]
        body = lines[1:]
    elif fields is not None:
        cols, body = list(fields), lines
        piped = True
    else:
        raise ValueError(f"{what} output has no header line and no known format: {_clip(first)!r}")
    free_at = cols.index(free) if free in cols else len(cols) - 1
    rows: list[dict[str, str]] = []
    spans: list[tuple[int, int]] | None = None
    if not piped and body and _DASHES.match(body[0]):
        starts = [m.start() for m in re.finditer(r"-+", body[0])]
        if len(starts) != len(cols):
            raise ValueError(f"{what} dashes line has {len(starts)} columns, header {len(cols)}")
        spans = [(s, starts[i + 1] if i + 1 < len(starts) else 1 << 30) for i, s in enumerate(starts)]
        body = body[1:]
    for line in body:
        if spans is not None:
            parts = [line[a:b].strip() for a, b in spans]
        elif piped:
            parts = _split_free(line.split(sep), len(cols), free_at, sep)
            if len(parts) != len(cols):
                raise ValueError(f"{what} line has {len(parts)} fields, want {len(cols)}: {_clip(line)!r}")
        else:
            # Whitespace: only the last column may hold spaces (best effort where the free
            # column is not last, as in some ``-o`` layouts).
            parts = line.split(None, len(cols) - 1)
            parts += [""] * (len(cols) - len(parts))
        rows.append({c: p.strip() for c, p in zip(cols, parts, strict=True)})
    return rows


def _format_fields(fmt: str, letters: Mapping[str, str], what: str) -> tuple[list[str], str]:
    """``'%N|%P|%T'`` → (column names, separator): the columns a ``-h -o`` answer holds."""
    specs = re.findall(r"%[-.\d]*([A-Za-z])", fmt)
    seps = set(re.split(r"%[-.\d]*[A-Za-z]", fmt)[1:-1])
    if len(seps) != 1 or not specs:
        raise ValueError(f"{what} format {fmt!r} needs one separator between fields")
    cols = []
    for s in specs:
        if s not in letters:
            raise ValueError(f"{what} format field %{s} is not read here")
        cols.append(letters[s])
    return cols, seps.pop()


def _cut(value: str, what: str) -> None:
    """A cell that ends in '+' was cut to its column width: never read it as a value."""
    if value.endswith("+"):
        raise ValueError(
            f"{what} {value!r} is cut to its column width (the '+' marks the cut); read the "
            "command's parsable output (sacct -P, sinfo/squeue -o with a separator), which is never cut"
        )


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


def _opt_int(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    s = value.strip()
    if s in _NULLS:
        return None
    if not re.fullmatch(r"\d+", s):
        raise ValueError(f"{what} is not an integer: {_clip(value)!r}")
    return int(s)


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
            raise ValueError(f"sinfo node list unreadable (cut to the column width?): {exc}") from None
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


# --- JSON (sinfo --json, scontrol show node --json) --------------------------------------


def _load_json(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} JSON is not an object")
    errors = data.get("errors") or []
    if errors:
        if not isinstance(errors, list):
            raise ValueError(f"{what} JSON has a malformed 'errors' entry")
        msgs = []
        for e in errors:
            if isinstance(e, dict):
                msgs.append(str(e.get("description") or e.get("error") or e))
            else:
                msgs.append(str(e))
        raise SlurmJsonError(f"{what} reported errors: {'; '.join(msgs)}")
    return data


def _j_str(obj: Mapping[str, Any], key: str) -> str | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise ValueError(f"JSON field {key!r} is not a string: {_clip(repr(v))}")
    return v


def _j_int(obj: Mapping[str, Any], key: str) -> int | None:
    """Integers, or the 23.02+ ``{"set": ..., "infinite": ..., "number": N}`` wrapper."""
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, dict):
        if not v.get("set", True) or v.get("infinite", False):
            return None
        v = v.get("number")
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"JSON field {key!r} is not an integer: {_clip(repr(v))}")
    return v


def _j_dict(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    v = obj.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ValueError(f"JSON field {key!r} is not an object")
    return v


def _j_strlist(obj: Mapping[str, Any], key: str) -> list[str]:
    v = obj.get(key)
    if v is None:
        return []
    if isinstance(v, str):
        return [p for p in v.split(",") if p]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError(f"JSON field {key!r} is not a list of strings")
    return list(v)


def _json_state(obj: Mapping[str, Any]) -> NodeState:
    state = obj.get("state")
    if isinstance(state, str):  # 22.05: "idle" + "state_flags": ["DRAIN"]
        return parse_node_state([state], _j_strlist(obj, "state_flags"))
    if isinstance(state, list):  # 23.02+: ["IDLE", "DRAIN"]
        return parse_node_state(state)
    raise ValueError(f"JSON node state missing or malformed: {_clip(repr(state))}")


def _json_reason(text: str | None, user: str | None, when: int | None) -> DrainReason | None:
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
        gres=parse_gres(_j_str(obj, "gres") or ""),
        gres_used=parse_gres(_j_str(obj, "gres_used") or ""),
        reason=_json_reason(
            _j_str(obj, "reason"),
            _j_str(obj, "reason_set_by_user"),
            _j_int(obj, "reason_changed_at"),
        ),
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
                gres=parse_gres(_j_str(gres, "total") or ""),
                gres_used=parse_gres(_j_str(gres, "used") or ""),
                reason=_json_reason(
                    _j_str(reason, "description"),
                    _j_str(reason, "user"),
                    _j_int(reason, "time"),
                ),
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


# --------------------------------------------------------------------------------------
# Jobs: squeue, sacct, sbatch
# --------------------------------------------------------------------------------------

#: Job states after which a job never runs again (job_state_string in slurm_protocol_defs).
TERMINAL_JOB_STATES = frozenset(
    {
        "COMPLETED",
        "CANCELLED",
        "FAILED",
        "TIMEOUT",
        "NODE_FAIL",
        "PREEMPTED",
        "BOOT_FAIL",
        "DEADLINE",
        "OUT_OF_MEMORY",
        "REVOKED",
    }
)
#: squeue's compact ``%t`` / ``ST`` codes (job_state_string_compact) → long names.
_COMPACT_JOB_STATES = {
    "PD": "PENDING",
    "R": "RUNNING",
    "S": "SUSPENDED",
    "CG": "COMPLETING",
    "CD": "COMPLETED",
    "CF": "CONFIGURING",
    "CA": "CANCELLED",
    "F": "FAILED",
    "TO": "TIMEOUT",
    "PR": "PREEMPTED",
    "BF": "BOOT_FAIL",
    "DL": "DEADLINE",
    "NF": "NODE_FAIL",
    "OOM": "OUT_OF_MEMORY",
    "RV": "REVOKED",
    "RD": "RESV_DEL_HOLD",
    "RF": "REQUEUE_FED",
    "RH": "REQUEUE_HOLD",
    "RQ": "REQUEUED",
    "RS": "RESIZING",
    "SE": "SPECIAL_EXIT",
    "SI": "SIGNALING",
    "SO": "STAGE_OUT",
    "ST": "STOPPED",
}
_JOB_STATE = re.compile(r"^(?P<state>[A-Z][A-Z_]*)(?:\s+by\s+(?P<by>\S+))?$")


def parse_job_state(text: str) -> tuple[str, str | None]:
    """``CANCELLED by 0`` → ``("CANCELLED", "0")``; ``COMPLETED`` → ``("COMPLETED", None)``.

    A state cut to its column width (``OUT_OF_ME+``, ``CANCELLED+``) raises: the cut hides
    which state it was (or who cancelled), so it is never taken as a state.
    """
    s = text.strip()
    _cut(s, "job state")
    m = _JOB_STATE.match(s)
    if not m:
        raise ValueError(f"bad job state {_clip(text)!r}")
    return m.group("state"), m.group("by")


def parse_exit_code(text: str) -> tuple[int, int]:
    """sacct ``ExitCode`` ``3:0`` → (exit status, signal)."""
    m = re.fullmatch(r"\s*(\d+):(\d+)\s*", text)
    if not m:
        raise ValueError(f"bad ExitCode {_clip(text)!r}")
    return int(m.group(1)), int(m.group(2))


def _nodes_field(text: str) -> tuple[str, ...]:
    s = text.strip()
    if s in _NULLS or s == "None assigned":
        return ()
    return tuple(expand_hostlist(s))


_JOB_ID = re.compile(r"^\d+(?:_(?:\d+|\[[\d,\-%]+\]))?(?:\+\d+)?(?:\.[\w-]+)?$")


def _job_id(text: str, what: str, line: str) -> str:
    job_id = text.strip()
    _cut(job_id, f"{what} JobID")
    if not _JOB_ID.match(job_id):
        raise ValueError(f"bad job id {job_id!r} in {what} line {_clip(line)!r}")
    return job_id


@dataclass(frozen=True)
class SqueueRecord:
    """One job line of squeue."""

    job_id: str
    state: str
    reason: str | None
    nodes: tuple[str, ...]


_SQUEUE_HEADERS = {
    "JOBID": "job_id",
    "ST": "state",
    "STATE": "state",
    "REASON": "reason",
    "NODELIST": "nodes",
    "NODELIST(REASON)": "nodes_or_reason",
}
_SQUEUE_LETTERS = {"i": "job_id", "A": "job_id", "T": "state", "t": "state", "r": "reason", "N": "nodes", "R": "nodes_or_reason"}


def parse_squeue(text: str, fmt: str = SQUEUE_FORMAT) -> list[SqueueRecord]:
    """The one squeue parser: ``squeue -h -o fmt`` (production: :data:`SQUEUE_FORMAT`, whose
    reason may itself contain '|') and any squeue table with its header (default, ``-l``,
    ``-r``, ``-o`` formats); compact states (``PD``, ``R``, ``CG``) become long names and a
    ``NODELIST(REASON)`` cell in parentheses is the reason."""
    cols, sep = _format_fields(fmt, _SQUEUE_LETTERS, "squeue")
    rows = _table(text, what="squeue", headers=_SQUEUE_HEADERS, fields=cols, free="reason", sep=sep)
    out: list[SqueueRecord] = []
    for row in rows:
        line = "|".join(row.values())
        if "job_id" not in row or "state" not in row:
            raise ValueError(f"squeue output needs JOBID and state columns: {_clip(line)!r}")
        job_id = _job_id(row["job_id"], "squeue", line)
        raw = row["state"]
        state, _ = parse_job_state(_COMPACT_JOB_STATES.get(raw, raw))
        reason = row.get("reason", "")
        nodes = row.get("nodes", "")
        both = row.get("nodes_or_reason", "")
        if both.startswith("(") and both.endswith(")"):
            reason = both[1:-1]
        elif both:
            nodes = both
        out.append(
            SqueueRecord(
                job_id=job_id,
                state=state,
                reason=None if reason.strip() in _NULLS else reason.strip(),
                nodes=_nodes_field(nodes),
            )
        )
    return out


@dataclass(frozen=True)
class SacctRecord:
    """One line of sacct (a job or one of its steps). Columns the output lacks are
    ``None`` / empty; production asks for :data:`SACCT_FIELDS`, which has them all."""

    job_id: str
    job_name: str
    state: str
    cancelled_by: str | None
    exit_code: int | None
    exit_signal: int | None
    elapsed_s: int | None
    alloc_tres: Mapping[str, str]
    max_rss_bytes: int | None
    nodes: tuple[str, ...]

    @property
    def job(self) -> str:
        """The job part of the id: ``123`` for ``123.batch``, ``123_4`` for ``123_4.0``."""
        return self.job_id.split(".", 1)[0]

    @property
    def step(self) -> str | None:
        """Step name: ``batch``, ``extern``, ``0``... or None for the job line itself."""
        _, dot, step = self.job_id.partition(".")
        return step if dot else None

    @property
    def is_step(self) -> bool:
        """True for step lines (``123.batch``, ``123.0``)."""
        return self.step is not None

    @property
    def gpus(self) -> int:
        """GPUs allocated (``gres/gpu`` in AllocTRES)."""
        return tres_gpus(self.alloc_tres)

    @property
    def terminal(self) -> bool:
        """The job/step has finished, one way or another."""
        return self.state in TERMINAL_JOB_STATES

    @property
    def succeeded(self) -> bool:
        """COMPLETED with exit status 0 and no signal (COMPLETED itself means exit 0 where
        the output has no ExitCode column)."""
        return self.state == "COMPLETED" and not self.exit_code and not self.exit_signal


_SACCT_HEADERS = {f.upper(): f for f in ("JobID", "JobIDRaw", *SACCT_FIELDS)}


def parse_sacct(text: str, fields: Sequence[str] = SACCT_FIELDS) -> list[SacctRecord]:
    """The one sacct parser: ``sacct -P -n --format=fields`` (production: :data:`SACCT_FIELDS`;
    a job name containing '|' is reassembled), ``-P`` with its header, and the default
    fixed-width table (its dashes line gives the columns, so empty cells such as a step's
    Partition stay empty). A JobID or State cut to the column width (``3764934.bat+``,
    ``OUT_OF_ME+``) raises: read sacct with ``-P``. MaxRSS is empty on job lines (only steps
    measure it) and becomes ``None``.
    """
    rows = _table(text, what="sacct", headers=_SACCT_HEADERS, fields=fields, free="JobName")
    out: list[SacctRecord] = []
    for row in rows:
        line = "|".join(row.values())
        raw_id = row.get("JobID") or row.get("JobIDRaw")
        if raw_id is None or "State" not in row:
            raise ValueError(f"sacct output needs JobID and State columns: {_clip(line)!r}")
        job_id = _job_id(raw_id, "sacct", line)
        base_state, by = parse_job_state(row["State"])
        code: int | None = None
        sig: int | None = None
        if row.get("ExitCode"):
            code, sig = parse_exit_code(row["ExitCode"])
        elapsed = row.get("Elapsed", "")
        rss = row.get("MaxRSS", "")
        out.append(
            SacctRecord(
                job_id=job_id,
                job_name=row.get("JobName", ""),
                state=base_state,
                cancelled_by=by,
                exit_code=code,
                exit_signal=sig,
                elapsed_s=parse_slurm_duration(elapsed) if elapsed else None,
                alloc_tres=parse_tres(row.get("AllocTRES", "")),
                max_rss_bytes=parse_size_bytes(rss) if rss else None,
                nodes=_nodes_field(row.get("NodeList", "")),
            )
        )
    return out


@dataclass(frozen=True)
class SbatchSubmission:
    """What sbatch printed on success: the job id, and the cluster with ``-M``."""

    job_id: int
    cluster: str | None = None


_SBATCH_PLAIN = re.compile(r"^Submitted batch job (\d+)(?: on cluster (\S+))?\s*$")
_SBATCH_PARSABLE = re.compile(r"^(\d+)(?:;(\S+))?\s*$")


def parse_sbatch(text: str) -> SbatchSubmission:
    """Read ``Submitted batch job 123`` or ``--parsable`` ``123`` / ``123;cluster``.

    The last matching line wins (sbatch may print warnings first). No match raises.
    """
    for line in reversed(text.strip().splitlines()):
        s = line.strip()
        m = _SBATCH_PLAIN.match(s) or _SBATCH_PARSABLE.match(s)
        if m:
            return SbatchSubmission(job_id=int(m.group(1)), cluster=m.group(2))
    raise ValueError(f"no job id in sbatch output: {_clip(text)!r}")


def nodes_hostlist(nodes: Iterable[SlurmNode]) -> str:
    """Compressed hostlist of node records, for messages such as ``gpu[01-03] drained``."""
    return compress_hostlist(n.name for n in nodes)
