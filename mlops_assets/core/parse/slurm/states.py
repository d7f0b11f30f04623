"""Node and job states as SLURM prints them: base state plus flags (``IDLE+DRAIN``,
``mix-``, ``down*``), drain reasons with their ``[user@time]`` tail, the GRES-mismatch
reasons slurmctld writes, and job states (``CANCELLED by 0``, compact ``PD``/``R``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mlops_assets.core.parse.slurm.text import _NULLS, _clip, _cut

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
# words (compact and long)               | base       | implied flag
_STATE_TABLE = """
IDLE                                   | IDLE
MIX MIXED                              | MIXED
ALLOC ALLOCATED                        | ALLOCATED
DOWN                                   | DOWN
ERROR                                  | ERROR
FUTR FUTURE                            | FUTURE
UNK UNKNOWN                            | UNKNOWN
INVALID                                | INVALID
DRAIN DRAINED                          | IDLE       | DRAIN
DRNG DRAINING                          | ALLOCATED  | DRAIN
COMP COMPLETING                        | IDLE       | COMPLETING
RESV RESERVED                          | IDLE       | RESERVED
PLND PLANNED                           | IDLE       | PLANNED
MAINT MAINTENANCE                      | IDLE       | MAINTENANCE
BOOT REBOOT REBOOT_REQUESTED           | IDLE       | REBOOT_REQUESTED
REBOOT_ISSUED                          | IDLE       | REBOOT_ISSUED
CANC_R CANCEL_REBOOT REBOOT_CANCELED   | IDLE       | REBOOT_CANCELED
FAIL                                   | IDLE       | FAIL
FAILG FAILING                          | ALLOCATED  | FAIL
INVAL INVALID_REG                      | UNKNOWN    | INVALID_REG
NPC PERFCTRS                           | ALLOCATED  | PERFCTRS
POW_DN POWER_DOWN                      | IDLE       | POWER_DOWN
POWERED_DN POWERED_DOWN                | IDLE       | POWERED_DOWN
POWRING_DN POWERING_DOWN               | IDLE       | POWERING_DOWN
POW_UP POWER_UP                        | IDLE       | POWER_UP
POWERING_UP                            | IDLE       | POWERING_UP
CLOUD                                  | UNKNOWN    | CLOUD
BLOCK BLOCKED                          | IDLE       | BLOCKED
RESM RESUME                            | IDLE       | RESUME
UNDRAIN                                | IDLE       | UNDRAIN
"""


def _state_words(table: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Every word of a row maps to the row's base and flags: a table reads as sinfo(1) does."""
    words: dict[str, tuple[str, frozenset[str]]] = {}
    for row in table.strip().splitlines():
        names, base, *flags = (cell.strip() for cell in row.split("|"))
        for name in names.split():
            words[name] = (base, frozenset(flags))
    return words


_STATE_WORDS = _state_words(_STATE_TABLE)

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
