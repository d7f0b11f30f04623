"""Parse df, findmnt and `beegfs-ctl --listtargets --state` for the shared-filesystem checks
of core/probes/hpc.py: one parser per tool output, the one production uses.

A staging or training job fails late and expensively when /beegfs is not mounted (the
path silently falls back to the root disk), is mounted read-only, is full, or has a storage
or metadata target offline or out of sync. The checks run these commands on the HPC side and
hand the text here. Nothing here touches the filesystem; malformed text raises
:class:`ValueError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "DF_OUTPUT_COLUMNS",
    "FINDMNT_COLUMNS",
    "BeegfsTarget",
    "DfEntry",
    "MountInfo",
    "parse_beegfs_targets",
    "parse_df",
    "parse_findmnt",
]

#: ``df -B1 --output=DF_OUTPUT_COLUMNS PATH``: includes the filesystem type, unlike -P.
DF_OUTPUT_COLUMNS = "source,fstype,size,used,avail,pcent,target"
#: ``findmnt -n -o FINDMNT_COLUMNS -T PATH``.
FINDMNT_COLUMNS = "TARGET,FSTYPE,SOURCE,OPTIONS"


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class DfEntry:
    """One filesystem from df, sizes in bytes."""

    filesystem: str
    fstype: str | None
    size_bytes: int
    used_bytes: int
    avail_bytes: int
    use_percent: int | None
    mount_point: str

    @property
    def avail_fraction(self) -> float:
        """Free share as the user sees it (avail / (used + avail), like df's Use%)."""
        denom = self.used_bytes + self.avail_bytes
        return 0.0 if denom == 0 else self.avail_bytes / denom


_BLOCK_HEADER = re.compile(r"^(\d+)([KMGTPE]?)B?-blocks$", re.IGNORECASE)
_UNIT = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5, "E": 1024**6}


def _block_size(header_word: str) -> int:
    m = _BLOCK_HEADER.match(header_word)
    if not m:
        raise ValueError(f"unknown df block-size header {header_word!r}")
    return int(m.group(1)) * _UNIT[m.group(2).upper()]


def _pct(text: str) -> int | None:
    if text == "-":
        return None
    if not re.fullmatch(r"\d+%", text):
        raise ValueError(f"bad percentage {text!r}")
    return int(text[:-1])


def _num(text: str, what: str) -> int:
    if not re.fullmatch(r"\d+", text):
        raise ValueError(f"{what} is not a number: {text!r}")
    return int(text)


def parse_df(text: str) -> list[DfEntry]:
    """Parse ``df -P -B1 PATH`` (or plain ``-P``) or ``df -B1 --output=DF_OUTPUT_COLUMNS``.

    The header decides the layout and the block size (``1-blocks``, ``1024-blocks``,
    ``1B-blocks``). Mount points may contain spaces; they are the last column.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError("empty df output")
    header = lines[0].split()
    if not header or header[0] != "Filesystem":
        raise ValueError(f"df output without its header: {_clip(lines[0])!r}")
    with_type = len(header) > 1 and header[1] == "Type"
    size_col = 2 if with_type else 1
    if len(header) <= size_col:
        raise ValueError(f"df header too short: {_clip(lines[0])!r}")
    block = _block_size(header[size_col])
    ncols = 6 + (1 if with_type else 0)  # last column (mount point) may hold spaces
    out: list[DfEntry] = []
    for line in lines[1:]:
        parts = line.split(None, ncols - 1)
        if len(parts) != ncols:
            raise ValueError(f"df line has {len(parts)} columns, want {ncols}: {_clip(line)!r}")
        fs = parts[0]
        fstype = parts[1] if with_type else None
        size, used, avail, pct, target = parts[size_col:]
        out.append(
            DfEntry(
                filesystem=fs,
                fstype=fstype,
                size_bytes=_num(size, "df size") * block,
                used_bytes=_num(used, "df used") * block,
                avail_bytes=_num(avail, "df avail") * block,
                use_percent=_pct(pct),
                mount_point=target.rstrip(),
            )
        )
    if not out:
        raise ValueError("df printed a header but no filesystem")
    return out


@dataclass(frozen=True)
class MountInfo:
    """Where a path is mounted, from findmnt. Sizes only when findmnt was asked for them."""

    target: str
    fstype: str
    source: str
    options: tuple[str, ...]
    size_bytes: int | None = None
    used_bytes: int | None = None
    avail_bytes: int | None = None

    @property
    def read_only(self) -> bool:
        """Mounted ``ro``."""
        return "ro" in self.options

    def option(self, name: str) -> str | None:
        """Value of ``name=value`` option, ``""`` for a bare flag, None if absent."""
        for opt in self.options:
            key, sep, value = opt.partition("=")
            if key == name:
                return value if sep else ""
        return None


_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def _unescape(text: str) -> str:
    """findmnt writes unsafe characters (space, tab) as ``\\x20``."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def parse_findmnt(text: str) -> MountInfo:
    """Parse ``findmnt -n -o TARGET,FSTYPE,SOURCE,OPTIONS -T PATH``.

    ``-T`` prints one line per mount stacked on the mount point holding PATH (a tmpfs
    mounted twice on /dev/shm gives two lines); the last one is the visible mount.
    Lines for different targets mean the output was not from ``-T``: an error.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError("empty findmnt output (path not found?)")
    mounts: list[MountInfo] = []
    for line in lines:
        parts = line.split()
        if len(parts) != 4:
            raise ValueError(f"findmnt line needs {FINDMNT_COLUMNS} (4 columns): {_clip(line)!r}")
        target, fstype, source, options = (_unescape(p) for p in parts)
        if not target.startswith("/"):
            raise ValueError(f"findmnt target is not a path: {target!r}")
        mounts.append(
            MountInfo(
                target=target,
                fstype=fstype,
                source=source,
                options=tuple(o for o in options.split(",") if o),
            )
        )
    if len({m.target for m in mounts}) != 1:
        raise ValueError(f"findmnt lines name different targets: {_clip(text)!r}")
    return mounts[-1]


@dataclass(frozen=True)
class BeegfsTarget:
    """One row of ``beegfs-ctl --listtargets --state``: a storage target or metadata node."""

    target_id: str
    reachability: str
    consistency: str
    node: str

    @property
    def good(self) -> bool:
        return (self.reachability, self.consistency) == ("Online", "Good")

    @property
    def trouble(self) -> str:
        """What is wrong with it, in BeeGFS's words and with the usual next step."""
        if self.reachability != "Online":
            return (
                f"{self.reachability}: the management service cannot reach it; "
                f"check the beegfs-storage/beegfs-meta service on node {self.node}"
            )
        if self.consistency == "Needs-resync":
            return (
                "Needs-resync: its mirror copy is stale; beegfs-ctl "
                "--resyncstats, --startresync if none runs"
            )
        if self.consistency != "Good":
            return (
                f"{self.consistency}: its data is not trusted; see "
                f"the storage/meta log on node {self.node}"
            )
        return ""


_LISTTARGETS_COLUMNS = ("TargetID", "Reachability", "Consistency")


def parse_beegfs_targets(text: str) -> list[BeegfsTarget]:
    """Parse ``beegfs-ctl --listtargets --nodetype=storage|meta --state``, also with
    ``--longnodes``, ``--spaceinfo`` or ``--mirrorgroups`` (the header names the columns; NodeID
    is the rest of the line). Output without the state columns (no ``--state``) or without a
    header at all (an error message) raises ValueError: no row means no judgement."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    head = next(
        (i for i, ln in enumerate(lines) if ln.split()[:1] and "TargetID" in ln.split()), None
    )
    if head is None:
        raise ValueError(f"not beegfs-ctl --listtargets output: {_clip(text.strip())!r}")
    names = lines[head].split()
    if not all(c in names for c in _LISTTARGETS_COLUMNS):
        raise ValueError(f"beegfs-ctl --listtargets without --state: columns {names}")
    idx = [names.index(c) for c in _LISTTARGETS_COLUMNS]
    node_at = names.index("NodeID") if "NodeID" in names else None
    out: list[BeegfsTarget] = []
    for line in lines[head + 1 :]:
        parts = line.split()
        if set(line.strip()) <= {"=", " "}:
            continue
        if len(parts) < len(names) or not parts[idx[0]].isdigit():
            raise ValueError(f"unexpected beegfs-ctl --listtargets line: {_clip(line)!r}")
        node = " ".join(parts[node_at:]) if node_at is not None else ""
        out.append(BeegfsTarget(parts[idx[0]], parts[idx[1]], parts[idx[2]], node))
    return out
