"""Read NVIDIA nccl-tests' ``all_reduce_perf`` output and judge it by the catalog's GPU
profiles with the same rule the NCCL smoke payload uses (``smoke_rules.judge_nccl``), so a
site's existing runs are judged as the platform's own smoke is. Pure, no Dagster.

What the tool prints changed over the years, and all of it is read:

- columns ``size count type redop [root] time algbw busbw [copybw] #wrong`` for the
  out-of-place and the in-place run; ``root`` appeared in 2.13 (2022), ``copybw`` only in
  some 2024-2025 builds; older builds print ``error`` (the largest deviation, ``0e+00``)
  instead of ``#wrong``, and ``N/A`` when validation is off (``-c 0``);
- the header's ``#`` is often lost in pasted output, rows may carry mpirun's
  ``[1,0]<stdout>:`` tag or an indentation;
- ``# Out of bounds values : N OK|FAILED`` and ``# Avg bus bandwidth : X``.

Never a pass: a table with no row or a malformed row, a non-zero ``#wrong``, out-of-bounds
values, too few ranks (an ``mpirun`` of a build without MPI=1 runs N single-rank tests, each
printing rank 0). Unjudged (WARN): values not verified, no size of at least 1 GiB, ranks on
several hosts (a profile's figure is one node's NVLink bandwidth), or no expected figure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlops_assets.core import smoke_rules as rules

__all__ = [
    "AllReducePerf",
    "PerfRank",
    "PerfRow",
    "judge_all_reduce_perf",
    "parse_all_reduce_perf",
    "to_result",
]

_TAG = re.compile(r"^\s*(?:\[\d+,\d+\]<std(?:out|err)>:)?\s*")
_RANK = re.compile(
    r"^#?\s*Rank\s+(\d+)\s+(?:Group\s+\d+\s+)?Pid\s+\d+\s+on\s+(\S+)"
    r"\s+device\s+(\d+)\s+\[[^\]]*\]\s+(.+?)\s*$"
)
_RANK_TAG = re.compile(r"\[\d+\]")
_HEAD = re.compile(r"nThread\s+(\d+)\s+nGpus\s+(\d+)")
_OOB = re.compile(r"^#?\s*Out of bounds values\s*:\s*(\d+)\s*(\w*)")
_AVG = re.compile(r"^#?\s*Avg bus bandwidth\s*:\s*([-+\d.eE]+|nan|inf)", re.I)
_INT = re.compile(r"^\d+$")
_WORD = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # a type or redop name: float, sum, bfloat16
_NUM = re.compile(r"^-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")


@dataclass(frozen=True)
class PerfRow:
    """One size: out-of-place and in-place figures. ``wrong`` is ``None`` when the tool did
    not count wrong values (``N/A``: validation off; an old build's ``error`` column, kept in
    ``max_error``)."""

    bytes: int
    count: int
    type: str
    redop: str
    oop_time_us: float
    oop_algbw: float
    oop_busbw: float
    oop_wrong: int | None
    ip_time_us: float
    ip_algbw: float
    ip_busbw: float
    ip_wrong: int | None
    max_error: float | None = None


@dataclass(frozen=True)
class PerfRank:
    rank: int
    host: str
    device: int
    gpu: str


@dataclass(frozen=True)
class AllReducePerf:
    """What one ``all_reduce_perf`` run printed. ``ranks`` lists every ``Rank`` line as
    printed (several processes may print rank 0); ``problems`` names malformed lines."""

    rows: list[PerfRow]
    ranks: list[PerfRank]
    out_of_bounds: int | None = None
    avg_busbw: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def world_size(self) -> int | None:
        """Distinct ranks; None when no Rank line was printed."""
        return len({r.rank for r in self.ranks}) or None

    @property
    def hosts(self) -> list[str]:
        return sorted({r.host for r in self.ranks})

    @property
    def gpu_names(self) -> list[str]:
        return sorted({r.gpu for r in self.ranks})

    @property
    def duplicated_ranks(self) -> bool:
        """The same rank printed by several processes: separate single-process tests."""
        return len(self.ranks) > len({r.rank for r in self.ranks})


def _wrong(cell: str) -> tuple[int | None, float | None]:
    """(#wrong, max error): ``0`` → (0, None); ``N/A`` → (None, None); ``2e-07`` → (None, 2e-07)."""
    if _INT.match(cell):
        return int(cell), None
    if cell == "N/A":
        return None, None
    if _NUM.match(cell):
        v = float(cell)
        return (int(v), None) if v.is_integer() and "e" not in cell.lower() else (None, v)
    raise ValueError(cell)


def _row(tokens: list[str]) -> PerfRow:
    """``size count type redop [root] (time algbw busbw [copybw] wrong) x 2``."""
    size, count, typ, redop, rest = int(tokens[0]), int(tokens[1]), tokens[2], tokens[3], tokens[4:]
    if len(rest) in (9, 11):  # a root column (-1 for all-reduce)
        rest = rest[1:]
    if len(rest) == 10:  # copybw after busbw on both halves
        rest = rest[:3] + rest[4:8] + rest[9:]
    if len(rest) != 8:
        raise ValueError(f"{len(tokens)} columns")
    ow, oe = _wrong(rest[3])
    iw, ie = _wrong(rest[7])
    errs = [e for e in (oe, ie) if e is not None]
    return PerfRow(
        size,
        count,
        typ,
        redop,
        float(rest[0]),
        float(rest[1]),
        float(rest[2]),
        ow,
        float(rest[4]),
        float(rest[5]),
        float(rest[6]),
        iw,
        max(errs) if errs else None,
    )


def parse_all_reduce_perf(text: str) -> AllReducePerf:
    """Read every data row, Rank line and summary line of ``all_reduce_perf`` output,
    whatever surrounds them (NCCL INFO lines, mpirun tags, markdown indentation). A line
    that starts like a data row but does not parse is kept in ``problems``, never skipped
    silently. Text with no data row at all raises :class:`ValueError`."""
    rows: list[PerfRow] = []
    ranks: list[PerfRank] = []
    problems: list[str] = []
    oob: int | None = None
    avg: float | None = None
    for raw in text.splitlines():
        line = _TAG.sub("", raw.rstrip("\r"), count=1).rstrip()
        line = _RANK_TAG.sub(" ", line)  # "[0]" tags of interleaved mpirun output
        if not line:
            continue
        m = _RANK.match(line)
        if m:
            ranks.append(PerfRank(int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)))
            continue
        m = _OOB.match(line)
        if m:
            oob = (oob or 0) + int(m.group(1))
            continue
        m = _AVG.match(line)
        if m:
            try:
                avg = float(m.group(1))
            except ValueError:
                problems.append(f"unreadable average: {line.strip()[:120]}")
            continue
        tokens = line.split()
        if (
            len(tokens) >= 5
            and _INT.match(tokens[0])
            and _INT.match(tokens[1])
            and _WORD.match(tokens[2])
            and _WORD.match(tokens[3])
        ):
            try:
                rows.append(_row(tokens))
            except ValueError as exc:
                problems.append(f"malformed row ({exc}): {line.strip()[:160]}")
    if not rows:
        head = _HEAD.search(text)
        what = (
            "only malformed rows"
            if problems
            else "a header but no result row"
            if head
            else "no all_reduce_perf table"
        )
        raise ValueError(f"{what} in the output: {' '.join(text.split())[:200]!r}")
    return AllReducePerf(rows, ranks, oob, avg, problems)


def to_result(perf: AllReducePerf) -> dict[str, Any]:
    """The smoke payload's result shape ``{world_size, gpu_name, sizes: [...]}``: per size the
    lower of the out-of-place and in-place bus bandwidths (a slow path is slow), #wrong of both,
    and ``checked: None`` where the tool did not verify."""
    sizes: list[dict[str, Any]] = []
    n = perf.world_size or 0
    for r in perf.rows:
        counted = r.oop_wrong is not None and r.ip_wrong is not None
        old_verified = r.max_error is not None and perf.out_of_bounds == 0
        rec: dict[str, Any] = {
            "bytes": r.bytes,
            "busbw_gbps": min(r.oop_busbw, r.ip_busbw),
            "algbw_gbps": min(r.oop_algbw, r.ip_algbw),
        }
        if counted:
            rec.update(
                wrong=int(r.oop_wrong or 0) + int(r.ip_wrong or 0), checked=2 * r.count * max(n, 1)
            )
        elif old_verified:
            rec.update(wrong=0, checked=2 * r.count * max(n, 1))
        else:
            rec.update(wrong=None, checked=None)
        sizes.append(rec)
    names = perf.gpu_names
    return {
        "world_size": perf.world_size,
        "gpu_name": names[0] if len(names) == 1 else " / ".join(names),
        "hosts": perf.hosts,
        "sizes": sizes,
    }


def judge_all_reduce_perf(
    perf: AllReducePerf, profiles: Mapping[str, Mapping[str, Any]], *, min_world_size: int = 2
) -> dict[str, Any]:
    """Judge a parsed run against the catalog's ``smoke.gpu_profiles`` (as plain mappings:
    ``{k: p.model_dump() for k, p in catalog.smoke.gpu_profiles.items()}``) with
    ``smoke_rules.judge_nccl``, plus what only nccl-tests prints: its out-of-bounds count,
    malformed rows, duplicated ranks and ranks on several hosts."""
    result = to_result(perf)
    key, expect = rules.nccl_expectation(result["gpu_name"], profiles)
    result["profile"] = key
    largest = max(r.bytes for r in perf.rows)
    verdicts: list[str] = []
    messages: list[str] = []
    if perf.world_size is None:  # no Rank line: a trimmed paste, or output of a wrapper
        verdicts.append(rules.WARN)
        messages.append("unjudged: no Rank line, so the number of ranks is unknown")
        result["world_size"], min_world_size = 0, 0
    if largest >= rules.GIB and len(perf.hosts) <= 1:
        judged = rules.judge_nccl(result, min_world_size=min_world_size, **expect)
    else:
        judged = rules.judge_nccl(
            result, min_world_size=min_world_size, min_size_bytes=0, judge_bandwidth=False
        )
        verdicts.append(rules.WARN)
        if len(perf.hosts) > 1:
            messages.append(
                f"unjudged: {perf.world_size} ranks on {len(perf.hosts)} hosts; the profile's "
                "bus bandwidth is one node's"
            )
        else:
            messages.append(
                f"unjudged: largest size {largest} B is below "
                "1 GiB, where bus bandwidth is compared"
            )
    verdicts.append(judged["verdict"])
    messages += judged["messages"]
    if perf.duplicated_ranks:
        verdicts.append(rules.FAIL)
        messages.append(
            f"{len(perf.ranks)} processes each printed rank 0..{(perf.world_size or 1) - 1}: "
            "separate single-process tests (nccl-tests built without MPI=1 under mpirun), no "
            "collective across them"
        )
    if perf.out_of_bounds:
        verdicts.append(rules.FAIL)
        messages.append(
            f"Out of bounds values: {perf.out_of_bounds} (nccl-tests' own check FAILED)"
        )
    if perf.problems:
        verdicts.append(rules.FAIL)
        messages += perf.problems[:3]
    return {
        "verdict": rules.worst(verdicts),
        "messages": messages,
        "profile": key,
        "busbw_gbps": judged["busbw_gbps"],
        "size_bytes": judged["size_bytes"],
        "world_size": perf.world_size,
        "avg_busbw_gbps": perf.avg_busbw,
    }
