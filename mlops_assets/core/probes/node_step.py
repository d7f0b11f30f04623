"""Probes that must run on a compute node go through here.

One `sinfo` per run (shared by every probe of that run) first says whether any node of the
partition is in service, so a drained partition is answered in seconds with the nodes' states
and reasons instead of an `srun` queueing until its timeout. The step gets a unique job name
and `--immediate`, so SLURM itself gives up on a queue that does not move, and it is cancelled
by name when the probe gives up first. A step that never ran is told apart from a program
that is missing on the node: the first is the partition's fault, the second the node's.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from mlops_assets.core.checks import ProbeFailed
from mlops_assets.core.parse.slurm.nodes import SINFO_NODE_FORMAT, SlurmNode, parse_sinfo_nodes
from mlops_assets.core.transport.hostexec import CommandResult, Runner, must

SINFO_TTL_S = 15.0  # one run's probes share one sinfo; a later run asks again
DEFAULT_WAIT_S = 120  # how long a step may queue for a busy node before SLURM gives up
OUT_OF_SERVICE_HINT = "resume or repair the nodes (`sinfo -R` lists the reasons), then run again"

_cache: weakref.WeakKeyDictionary[Any, tuple[float, list[SlurmNode]]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()

# srun's own words when the job never started (SLURM 17.11-25.11 wording)
_NOT_STARTED = re.compile(
    r"srun: error: (Unable to allocate resources|Immediate execution impossible|"
    r"Job allocation \d+ has been revoked|Unable to create step|.*Invalid (partition|generic resource|node name))"
    r"|srun: Force Terminated|srun: Job has been cancelled|Requested node configuration is not available",
    re.IGNORECASE,
)
T = TypeVar("T")
_MISSING_PROGRAM = re.compile(r"execve\(\): (\S+): No such file or directory")


def parsed(what: str, parse: Callable[[str], T], text: str) -> T:
    """A command's answer through its one parser; unreadable output is a failed probe that says so."""
    try:
        return parse(text)
    except ValueError as exc:
        raise ProbeFailed(
            f"unexpected {what} output: {exc}", f"check the SLURM version and `{what}` by hand"
        ) from None


def sinfo_nodes(runner: Runner) -> list[SlurmNode]:
    """Every node as sinfo -N shows it, fetched once per runner within SINFO_TTL_S."""
    with _lock:
        hit = _cache.get(runner)
        if hit is not None and time.monotonic() - hit[0] < SINFO_TTL_S:
            return hit[1]
        res = must(
            runner, ["sinfo", "-h", "-N", "-o", SINFO_NODE_FORMAT], "check that slurmctld answers"
        )
        nodes = parsed("sinfo", parse_sinfo_nodes, res.stdout)
        _cache[runner] = (time.monotonic(), nodes)
        return nodes


def describe(node: SlurmNode) -> str:
    reason = node.reason.text if node.reason else ""
    return f"{node.name}: {node.state}" + (f" ({reason})" if reason else "")


class OutOfService(ProbeFailed):
    """No node of the partition can take the probe's step: nothing was submitted."""


def in_service(runner: Runner, partition: str, *, nodes: Sequence[str] = ()) -> list[SlurmNode]:
    """The partition's nodes (or the named ones) that can run a step now or after the jobs
    on them; raises OutOfService naming every node, its state and its reason otherwise."""
    mine = [
        n
        for n in sinfo_nodes(runner)
        if partition in n.partitions and (not nodes or n.name in nodes)
    ]
    if not mine:
        what = (
            f"nodes {', '.join(nodes)} in partition {partition}"
            if nodes
            else f"partition {partition}"
        )
        raise OutOfService(f"sinfo shows no {what}", "check hpc.slurm.partitions against `sinfo`")
    usable = [n for n in mine if n.state.healthy]
    if not usable:
        raise OutOfService(
            f"no node of partition {partition} is in service, so the probe was not submitted: "
            + "; ".join(describe(n) for n in mine),
            OUT_OF_SERVICE_HINT,
        )
    return usable


@dataclass(frozen=True)
class Step:
    """One probe step: whether it ran at all, and what it printed."""

    result: CommandResult
    ran: bool
    why_not: str = ""

    @property
    def missing_program(self) -> str | None:
        """The program the node could not exec (slurmstepd's execve error), if that happened."""
        m = _MISSING_PROGRAM.search(self.result.stderr + self.result.stdout)
        return m.group(1) if m else None

    @property
    def text(self) -> str:
        return self.result.stdout + self.result.stderr


def _time_limit(seconds: int) -> str:
    minutes = max(1, -(-seconds // 60))
    return f"00:{minutes:02d}:00" if minutes < 60 else f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def step_argv(
    partition: str,
    command: Sequence[str],
    *,
    name: str,
    node: str | None = None,
    gpus: int | None = None,
    wait_s: int = DEFAULT_WAIT_S,
    run_s: int = 120,
) -> list[str]:
    return [
        "srun",
        "-p",
        partition,
        *(["-w", node] if node else []),
        "-N",
        "1",
        "-n",
        "1",
        *([f"--gres=gpu:{gpus}"] if gpus else []),
        f"--job-name={name}",
        f"--immediate={wait_s}",
        f"--time={_time_limit(run_s)}",
        "--quiet",
        *command,
    ]


def run_step(
    runner: Runner,
    partition: str,
    command: Sequence[str],
    *,
    node: str | None = None,
    gpus: int | None = None,
    wait_s: int = DEFAULT_WAIT_S,
    run_s: int = 120,
) -> Step:
    """Gate on sinfo, then one srun step; a step SLURM never started says why, and a probe
    that gives up first cancels its job by its unique name."""
    in_service(runner, partition, nodes=(node,) if node else ())
    name = f"mlops-probe-{uuid.uuid4().hex[:12]}"
    argv = step_argv(
        partition, command, name=name, node=node, gpus=gpus, wait_s=wait_s, run_s=run_s
    )
    res = runner.run(argv, timeout_s=wait_s + run_s + 30)
    if res.returncode == 124:
        runner.run(["scancel", f"--name={name}"], timeout_s=30)
        return Step(
            res,
            False,
            f"gave up after {wait_s + run_s + 30} s: {res.tail(2) or 'no output'}; job {name} cancelled",
        )
    text = res.stderr + res.stdout
    m = _NOT_STARTED.search(text)
    if m and _MISSING_PROGRAM.search(text) is None:
        line = next((ln.strip() for ln in text.splitlines() if m.group(0) in ln), m.group(0))
        return Step(res, False, line[:300])
    return Step(res, True)
