"""The shapes SLURM's client commands print in, read once for every parser of this package:
tables (``|``-separated with or without a header, fixed width under a dashes line,
whitespace-aligned), JSON envelopes whose ``errors`` list is not empty, the words that mean
"no value", and cells cut to their column width. Garbled text raises :class:`ValueError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

_NULLS = frozenset({"", "(null)", "N/A", "n/a", "none", "None", "NONE"})


class SlurmJsonError(ValueError):
    """SLURM answered JSON whose ``errors`` list is not empty (the query itself failed)."""


def _clip(text: str, limit: int = 120) -> str:
    """Shorten text for error messages, so a huge garbage blob does not flood logs."""
    return text if len(text) <= limit else text[:limit] + "..."


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
    is_header = (
        bool(tokens) and tokens[0] in headers and all(t and not t[0].isdigit() for t in tokens)
    )
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
        spans = [
            (s, starts[i + 1] if i + 1 < len(starts) else 1 << 30) for i, s in enumerate(starts)
        ]
        body = body[1:]
    for line in body:
        if spans is not None:
            parts = [line[a:b].strip() for a, b in spans]
        elif piped:
            parts = _split_free(line.split(sep), len(cols), free_at, sep)
            if len(parts) != len(cols):
                raise ValueError(
                    f"{what} line has {len(parts)} fields, want {len(cols)}: {_clip(line)!r}"
                )
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
            f"{what} {value!r} is cut to its column width (the '+' marks "
            "the cut); read the command's parsable output (sacct -P, "
            "sinfo/squeue -o with a separator), which is never cut"
        )


def _opt_int(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    s = value.strip()
    if s in _NULLS:
        return None
    if not re.fullmatch(r"\d+", s):
        raise ValueError(f"{what} is not an integer: {_clip(value)!r}")
    return int(s)


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
    if v is None or isinstance(v, str):
        return v
    raise ValueError(f"JSON field {key!r} is not a string: {_clip(repr(v))}")


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
