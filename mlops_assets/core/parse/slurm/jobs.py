"""Jobs as squeue, sacct and sbatch print them: the production formats, every table layout
of each command, and the job ids of arrays, het jobs and steps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlops_assets.core.parse.nodelist import expand_hostlist
from mlops_assets.core.parse.slurm.states import (
    _COMPACT_JOB_STATES,
    TERMINAL_JOB_STATES,
    parse_exit_code,
    parse_job_state,
)
from mlops_assets.core.parse.slurm.text import _NULLS, _clip, _cut, _format_fields, _table
from mlops_assets.core.parse.slurm.units import (
    parse_size_bytes,
    parse_slurm_duration,
    parse_tres,
    tres_gpus,
)

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
_SQUEUE_LETTERS = {
    "i": "job_id",
    "A": "job_id",
    "T": "state",
    "t": "state",
    "r": "reason",
    "N": "nodes",
    "R": "nodes_or_reason",
}


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
