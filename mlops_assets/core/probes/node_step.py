"""Probes that must run on a compute node go through here.

One `sinfo` per run (shared by every probe of that run) first says whether any node of the
partition is in service, so a drained partition is answered in seconds with the nodes' states
and reasons instead of an `srun` queueing until its timeout. The step gets a unique job name
and `--immediate`, so SLURM itself gives up on a queue that does not move, and it is cancelled
by name when the probe gives up first. A step that never ran is told apart from a program
that is missing on the node: the first is the partition's fault, the second the node's.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from mlops_assets.core.checks import ProbeFailed
from mlops_assets.core.parse.nodelist import compress_hostlist
from mlops_assets.core.parse.slurm import labelled
from mlops_assets.core.parse.slurm import nodes as slurm_nodes
from mlops_assets.core.transport.hostexec import CommandResult, Runner, must

SINFO_TTL_S = 15.0  # one run's probes share one sinfo; a later run asks again
DEFAULT_WAIT_S = 120  # how long a step may queue for a busy node before SLURM gives up
OUT_OF_SERVICE_HINT = "resume or repair the nodes (`sinfo -R` lists the reasons), then run again"

_cache: weakref.WeakKeyDictionary[Any, tuple[float, list[slurm_nodes.SlurmNode]]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()

# srun's own words when the job never started (SLURM 17.11-25.11 wording)
_NOT_STARTED = re.compile(
    r"srun: error: (Unable to allocate resources|Immediate execution impossible|"
    r"Job allocation \d+ has been revoked|Unable to create step|"
    r".*Invalid (partition|generic resource|node name))"
    r"|srun: Force Terminated|srun: Job has been cancelled|"
    r"Requested node configuration is not available",
    re.IGNORECASE,
)
T = TypeVar("T")
_MISSING_PROGRAM = re.compile(r"execve\(\): (\S+): No such file or directory")


def parsed(what: str, parse: Callable[[str], T], text: str) -> T:
    """A command's answer through its one parser.

    Unreadable output is a failed probe that says so."""
    try:
        return parse(text)
    except ValueError as exc:
        raise ProbeFailed(
            f"unexpected {what} output: {exc}", f"check the SLURM version and `{what}` by hand"
        ) from None


def sinfo_nodes(runner: Runner) -> list[slurm_nodes.SlurmNode]:
    """Every node as sinfo -N shows it, fetched once per runner within SINFO_TTL_S."""
    with _lock:
        hit = _cache.get(runner)
        if hit is not None and time.monotonic() - hit[0] < SINFO_TTL_S:
            return hit[1]
        res = must(
            runner,
            ["sinfo", "-h", "-N", "-o", slurm_nodes.SINFO_NODE_FORMAT],
            "check that slurmctld answers",
        )
        nodes = parsed("sinfo", slurm_nodes.parse_sinfo_nodes, res.stdout)
        _cache[runner] = (time.monotonic(), nodes)
        return nodes


def describe(node: slurm_nodes.SlurmNode) -> str:
    reason = node.reason.text if node.reason else ""
    return f"{node.name}: {node.state}" + (f" ({reason})" if reason else "")


class OutOfService(ProbeFailed):
    """No node of the partition can take the probe's step: nothing was submitted."""


def in_service(
    runner: Runner, partition: str, *, nodes: Sequence[str] = ()
) -> list[slurm_nodes.SlurmNode]:
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


def _srun(
    partition: str,
    where: Sequence[str],
    tasks: Sequence[str],
    gpus: int | None,
    name: str,
    wait_s: int,
    limit_s: int,
) -> list[str]:
    """How every probe step starts, in this order: the partition, which nodes and how many
    tasks, the GPUs, a name to find it by, how long to wait for the nodes and to run."""
    return [
        "srun",
        "-p",
        partition,
        *where,
        *tasks,
        *([f"--gres=gpu:{gpus}"] if gpus else []),
        f"--job-name={name}",
        f"--immediate={wait_s}",
        f"--time={_time_limit(limit_s)}",
    ]


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
    """One task on one node (`node`, else any of the partition's), output as it is."""
    where = ["-w", node] if node else []
    tasks = ["-N", "1", "-n", "1"]
    return [*_srun(partition, where, tasks, gpus, name, wait_s, run_s), "--quiet", *command]


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
    return _judge_step(runner, argv, name, wait_s + run_s + 30)


# ---------------------------------------------------------------------------------------
# Fleet steps: one labelled srun over many nodes, so wall time does not grow with the count

FLEET_BATCH = 128  # nodes per step: keeps a step's output under the runner's 256 KiB cap
FLEET_PARALLEL = 4  # steps in flight at once (the SSH runner's channel limit)
FLEET_WAIT_S = 10  # the nodes were free when read: a step that cannot start at once is a race
BUSY_HINT = "busy nodes are not waited for: the node sensor probes them once they are free"
# Steps that hold every GPU of their nodes (nvidia-smi per node, --nv per node) take turns in
# this process: run side by side they asked SLURM for the same GPUs, so one queued behind the
# other until SLURM's next scheduling pass (2.5-6.5 s on the 4-node sandbox) or, past
# FLEET_WAIT_S, reported nodes held by our own probe as "busy, not probed".
_whole_node_steps = threading.Lock()

# Runs on each node as one task: names the node, says when the program is missing (a node's
# fault, told apart from a step that never started), bounds a hung command (an nvidia-smi on a
# GPU that fell off the bus never returns) and reports its exit status, all as marker lines.
FLEET_WRAPPER = (
    f'printf "{labelled.NODE_MARK}%s\\n" "${{SLURMD_NODENAME:-$(hostname -s)}}"; '
    f'if ! command -v "$2" >/dev/null 2>&1; then printf "{labelled.MISSING_MARK}%s\\n" "$2"; '
    'exit 0; fi; lim=$1; shift; timeout -k 5 "$lim" "$@"; '
    f'printf "{labelled.EXIT_MARK}%s\\n" "$?"'
)


@dataclass(frozen=True)
class NodeRun:
    """One node's part of a fleet step; ``ran`` False when the node was not probed."""

    node: str
    ran: bool
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    why_not: str = ""
    missing_program: str | None = None


@dataclass(frozen=True)
class FleetRun:
    """Every node asked for: probed (``ran``), or not probed and why. ``busy`` lists nodes
    left alone because jobs hold them (not a fault); ``steps`` counts the srun steps used."""

    nodes: dict[str, NodeRun]
    busy: dict[str, str]
    steps: int

    @property
    def probed(self) -> list[NodeRun]:
        return [r for r in self.nodes.values() if r.ran]

    def busy_note(self) -> str:
        return busy_note(self.busy)


def free_now(node: slurm_nodes.SlurmNode, gpus: int) -> str:
    """'' when a step holding ``gpus`` GPUs can start on the node at once, else why not.
    A MIXED node's free GPUs come from GresUsed/AllocTRES (scontrol), which sinfo lacks."""
    st = node.state
    if st.powered_down:
        return f"{st}, powered down by power saving"
    if not st.available:
        return str(st)
    if st.base == "IDLE" and not st.busy:
        return ""
    if gpus and node.gpus - node.gpus_used < gpus:
        return f"{st}, {node.gpus_used} of {node.gpus} GPUs in use"
    return "" if st.base == "MIXED" else str(st)


def fleet_argv(
    partition: str,
    nodes: Sequence[str],
    command: Sequence[str],
    *,
    name: str,
    gpus: int = 0,
    wait_s: int = FLEET_WAIT_S,
    run_s: int = 120,
) -> list[str]:
    """One step, one task per node, every line labelled with its task id."""
    count = str(len(nodes))
    tasks = ["-N", count, "-n", count, "--ntasks-per-node=1"]
    where = ["-w", compress_hostlist(nodes)]
    return [
        *_srun(partition, where, tasks, gpus, name, wait_s, run_s + 30),
        "--kill-on-bad-exit=0",
        "--label",
        "--quiet",
        "sh",
        "-c",
        FLEET_WRAPPER,
        "sh",
        str(run_s),
        *command,
    ]


def _fleet_step(
    runner: Runner,
    partition: str,
    nodes: list[str],
    command: Sequence[str],
    gpus: int,
    run_s: int,
    wait_s: int,
) -> tuple[dict[str, NodeRun], int]:
    """One step over ``nodes``; a step SLURM would not start (a node got busy since it was
    read) is split in halves until the nodes that cannot start stand alone."""
    name = f"mlops-probe-{uuid.uuid4().hex[:12]}"
    argv = fleet_argv(partition, nodes, command, name=name, gpus=gpus, wait_s=wait_s, run_s=run_s)
    step = _judge_step(runner, argv, name, wait_s + run_s + 60)
    if not step.ran and len(nodes) > 1:
        half = len(nodes) // 2
        left, n_left = _fleet_step(runner, partition, nodes[:half], command, gpus, run_s, wait_s)
        right, n_right = _fleet_step(runner, partition, nodes[half:], command, gpus, run_s, wait_s)
        return {**left, **right}, 1 + n_left + n_right
    if not step.ran:
        return {nodes[0]: NodeRun(nodes[0], False, why_not=step.why_not)}, 1
    heard, own = labelled.parse_fleet_output(step.result.stdout, step.result.stderr)
    out: dict[str, NodeRun] = {}
    for node in nodes:
        rec = heard.get(node)
        if rec is None:
            said = labelled.srun_lines_for(node, own) or own[-1:]
            why = "; ".join(said)[:300] or "no output from the node in its step"
            out[node] = NodeRun(node, False, why_not=f"no output: {why}")
            continue
        timed_out = rec.returncode in (124, 137)
        missing = rec.missing_program
        code = 127 if missing else rec.returncode
        out[node] = NodeRun(
            node,
            True,
            code,
            rec.stdout,
            (f"{missing}: command not found on {node}\n" if missing else "")
            + rec.stderr
            + "".join(ln + "\n" for ln in rec.srun_errors),
            why_not=(
                f"timed out after {run_s} s on the node"
                if timed_out
                else "no exit status (task killed or node lost mid-step)"
                if code is None
                else ""
            ),
            missing_program=rec.missing_program,
        )
    return out, 1


def _judge_step(runner: Runner, argv: list[str], name: str, limit_s: int) -> Step:
    """Run a step; a step SLURM never started says why, and one that outlives ``limit_s``
    is cancelled by its unique name."""
    res = runner.run(argv, timeout_s=limit_s)
    if res.returncode == 124:
        runner.run(["scancel", f"--name={name}"], timeout_s=30)
        return Step(
            res,
            False,
            f"gave up after {limit_s} s: {res.tail(2) or 'no output'}; job {name} cancelled",
        )
    text = res.stderr + res.stdout
    m = _NOT_STARTED.search(text)
    if m and _MISSING_PROGRAM.search(text) is None:
        line = next((ln.strip() for ln in text.splitlines() if m.group(0) in ln), m.group(0))
        return Step(res, False, line[:300])
    return Step(res, True)


def split_free(
    runner: Runner,
    partition: str,
    *,
    all_gpus: bool = False,
    gpus: int = 0,
    gpu_nodes: bool = False,
) -> tuple[list[slurm_nodes.SlurmNode], dict[str, str]]:
    """The partition's in-service nodes that can start a step now (holding ``gpus`` GPUs, or
    all of a node's), and why each other one cannot. Raises OutOfService as run_step does."""
    usable = [n for n in in_service(runner, partition) if n.gpus > 0 or not gpu_nodes]
    if any(n.state.base == "MIXED" for n in usable) and (all_gpus or gpus):
        exact = {n.name: n for n in scontrol_nodes(runner)}  # sinfo has no GresUsed
        usable = [exact.get(n.name, n) for n in usable]
    free: list[slurm_nodes.SlurmNode] = []
    busy: dict[str, str] = {}
    for node in usable:
        why = free_now(node, node.gpus if all_gpus else gpus)
        if why:
            busy[node.name] = why
        else:
            free.append(node)
    return free, busy


def busy_note(busy: dict[str, str]) -> str:
    """``busy, not probed: n3 (MIXED, 8 of 8 GPUs in use), ...`` or ''."""
    if not busy:
        return ""
    return "busy, not probed: " + ", ".join(f"{n} ({w})" for n, w in sorted(busy.items()))


def run_on_nodes(
    runner: Runner,
    partition: str,
    command: Sequence[str],
    *,
    all_gpus: bool = False,
    gpus: int = 0,
    run_s: int = 120,
    wait_s: int = FLEET_WAIT_S,
    batch: int = FLEET_BATCH,
    with_gpus_only: bool = False,
) -> FleetRun:
    """``command`` on every node of the partition in service that can take it now, in as few
    labelled steps as the batch size allows, run side by side. ``all_gpus`` holds each node's
    every GPU (steps group nodes by GPU count, as ``--gres`` is per node). Busy and powered-down
    nodes are not waited for: they come back in ``busy``. Raises OutOfService as run_step does."""
    with _whole_node_steps if all_gpus else contextlib.nullcontext():
        return _run_on_nodes(
            runner, partition, command, all_gpus, gpus, run_s, wait_s, batch, with_gpus_only
        )


def _run_on_nodes(
    runner: Runner,
    partition: str,
    command: Sequence[str],
    all_gpus: bool,
    gpus: int,
    run_s: int,
    wait_s: int,
    batch: int,
    with_gpus_only: bool,
) -> FleetRun:
    free, busy = split_free(
        runner, partition, all_gpus=all_gpus, gpus=gpus, gpu_nodes=with_gpus_only
    )
    groups: dict[int, list[str]] = {}
    for node in free:
        groups.setdefault(node.gpus if all_gpus else gpus, []).append(node.name)
    jobs = [
        (g, names[i : i + batch])
        for g, names in groups.items()
        for i in range(0, len(names), batch)
    ]
    results: dict[str, NodeRun] = {}
    steps = 0
    with ThreadPoolExecutor(max_workers=FLEET_PARALLEL) as pool:
        futures = [
            pool.submit(_fleet_step, runner, partition, names, command, g, run_s, wait_s)
            for g, names in jobs
        ]
        for fut in futures:
            got, n = fut.result()
            results.update(got)
            steps += n
    for name, run in list(results.items()):  # lost a race for the node: busy, not a fault
        if not run.ran and not run.why_not.startswith("no output"):
            busy[name] = run.why_not
            del results[name]
    return FleetRun(results, busy, steps)


def scontrol_nodes(runner: Runner) -> list[slurm_nodes.SlurmNode]:
    """Nodes with exact Gres/GresUsed and the Reason with its author and time (`[slurm@...]`).
    The multi-line layout keeps each free-text value (Reason, Comment) on its own line."""
    res = must(runner, ["scontrol", "show", "node"], "check that slurmctld answers")
    return parsed("scontrol show node", slurm_nodes.parse_scontrol_nodes, res.stdout)
