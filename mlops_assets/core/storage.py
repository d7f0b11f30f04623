"""Parse df, findmnt and stat output for shared-filesystem checks (BeeGFS, scratch, home).

A staging or training job fails late and expensively when /beegfs is not mounted (the
path silently falls back to the root disk), is mounted read-only, is full, or has the
wrong owner. Checks run these commands on the HPC side and hand the text here. Nothing
here touches the filesystem; malformed text raises :class:`ValueError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DF_OUTPUT_COLUMNS",
    "FINDMNT_COLUMNS",
    "STAT_FORMAT",
    "DfEntry",
    "DfInodes",
    "MountInfo",
    "StatInfo",
    "parse_df",
    "parse_df_inodes",
    "parse_findmnt",
    "parse_findmnt_json",
    "parse_stat",
]

#: ``df -B1 --output=DF_OUTPUT_COLUMNS PATH``: includes the filesystem type, unlike -P.
DF_OUTPUT_COLUMNS = "source,fstype,size,used,avail,pcent,target"
#: ``findmnt -n -o FINDMNT_COLUMNS -T PATH``.
FINDMNT_COLUMNS = "TARGET,FSTYPE,SOURCE,OPTIONS"
#: ``stat -c STAT_FORMAT PATH``: owner name, group name, octal mode.
STAT_FORMAT = "%U %G %a"


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
class DfInodes:
    """Inode use of one filesystem (``df -P -i``); counts are None where df prints '-'."""

    filesystem: str
    inodes: int | None
    used: int | None
    free: int | None
    use_percent: int | None
    mount_point: str


def parse_df_inodes(text: str) -> list[DfInodes]:
    """Parse ``df -P -i PATH``; some filesystems (btrfs, some network FS) print '-'."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0].split()[:2] != ["Filesystem", "Inodes"]:
        raise ValueError(f"not df -i output: {_clip(text)!r}")

    def opt(v: str, what: str) -> int | None:
        return None if v == "-" else _num(v, what)

    out = []
    for line in lines[1:]:
        parts = line.split(None, 5)
        if len(parts) != 6:
            raise ValueError(f"df -i line needs 6 columns: {_clip(line)!r}")
        fs, inodes, used, free, pct, target = parts
        out.append(
            DfInodes(
                filesystem=fs,
                inodes=opt(inodes, "inodes"),
                used=opt(used, "IUsed"),
                free=opt(free, "IFree"),
                use_percent=_pct(pct),
                mount_point=target.rstrip(),
            )
        )
    if not out:
        raise ValueError("df -i printed a header but no filesystem")
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


def _j_size(obj: Mapping[str, Any], key: str) -> int | None:
    v = obj.get(key)
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError(f"findmnt {key} is not a size: {v!r}")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and re.fullmatch(r"\d+", v):
        return int(v)  # util-linux < 2.37 prints numbers as strings
    raise ValueError(f"findmnt {key} is not a byte count (use -b): {v!r}")


def parse_findmnt_json(text: str) -> MountInfo:
    """Parse ``findmnt -J -T PATH`` (add ``-b -o TARGET,SOURCE,FSTYPE,OPTIONS,SIZE,USED,AVAIL``
    for sizes). The deepest mount in a ``children`` tree is returned.
    """
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"findmnt output is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("filesystems"), list):
        raise ValueError("findmnt JSON has no 'filesystems' list")
    fss = data["filesystems"]
    if not fss:
        raise ValueError("findmnt JSON lists no filesystem")
    # Stacked mounts on one mount point are listed in mount order; the last is visible.
    if len({f.get("target") if isinstance(f, dict) else None for f in fss}) != 1:
        raise ValueError("findmnt JSON lists filesystems with different targets")
    fs = fss[-1]
    while isinstance(fs, dict) and isinstance(fs.get("children"), list) and fs["children"]:
        fs = fs["children"][-1]
    if not isinstance(fs, dict):
        raise ValueError("findmnt filesystem entry is not an object")
    vals: dict[str, str] = {}
    for key in ("target", "fstype", "source"):
        v = fs.get(key)
        if not isinstance(v, str) or not v:
            raise ValueError(f"findmnt JSON lacks {key!r}")
        vals[key] = v
    options = fs.get("options", "")
    if not isinstance(options, str):
        raise ValueError("findmnt options is not a string")
    return MountInfo(
        target=vals["target"],
        fstype=vals["fstype"],
        source=vals["source"],
        options=tuple(o for o in options.split(",") if o),
        size_bytes=_j_size(fs, "size"),
        used_bytes=_j_size(fs, "used"),
        avail_bytes=_j_size(fs, "avail"),
    )


@dataclass(frozen=True)
class StatInfo:
    """Owner, group and permission bits of a path (``stat -c '%U %G %a'``)."""

    owner: str
    group: str
    mode: int

    @property
    def mode_octal(self) -> str:
        """Mode as stat prints it (``755``, ``1777``)."""
        return f"{self.mode:o}"

    @property
    def world_writable(self) -> bool:
        """Anyone may write (o+w)."""
        return bool(self.mode & 0o002)

    @property
    def sticky(self) -> bool:
        """Sticky bit set (shared scratch directories should have it)."""
        return bool(self.mode & 0o1000)


def parse_stat(text: str) -> StatInfo:
    """Parse one line of ``stat -c '%U %G %a' PATH`` (``UNKNOWN`` names are kept)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) != 1:
        raise ValueError(f"stat should print one line, got {len(lines)}: {_clip(text)!r}")
    parts = lines[0].split()
    if len(parts) != 3 or not re.fullmatch(r"[0-7]{1,4}", parts[2]):
        raise ValueError(f"stat line is not '{STAT_FORMAT}': {_clip(lines[0])!r}")
    return StatInfo(owner=parts[0], group=parts[1], mode=int(parts[2], 8))
