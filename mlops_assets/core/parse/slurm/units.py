"""SLURM's quantities as the commands print them: sizes (``16G``, ``512M``), durations
(``1-02:03:04``, ``UNLIMITED``), TRES lists (``cpu=8,mem=64G,gres/gpu=4``) and GRES
strings (``gpu:h100:4(S:0-1)``), every shape from 20.11 through 25.x.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mlops_assets.core.parse.nodelist import split_top_level
from mlops_assets.core.parse.slurm.text import _NULLS, _clip

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
    return tuple(
        _parse_gres_item(item.strip(), s)
        for item in split_top_level(s, "(", ")", nested=True, what=repr(_clip(s)))
    )


def gpu_count(gres: str | Iterable[Gres], name: str = "gpu") -> int:
    """Total count of GRES ``name`` (default ``gpu``) over all types."""
    entries = parse_gres(gres) if isinstance(gres, str) else tuple(gres)
    return sum(g.count for g in entries if g.name == name)
