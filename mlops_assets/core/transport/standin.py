"""SimulatedFleetRunner: a STAND-IN for a SLURM login node of a large cluster, behind the
same Runner interface as LocalRunner/SshRunner. Nothing here talks to SLURM.

It exists to model fleets larger than any machine we can borrow (1,000 nodes): it answers
`sinfo`, `scontrol show node` and the labelled fleet step of `core.probes.node_step` in the
shapes real SLURM prints (task labels right-aligned to the widest id, srun's own
`srun: error: <node>: task N: ...` lines unlabelled, an allocation of a busy node refused
with srun's words), and plays each node's part with a RECORDED output of the probed
command. What is timed against it is the orchestration side only: building steps, parsing
the labelled output, judging every node. ``spent_s`` is the stand-in's own time, to subtract.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from mlops_assets.core.parse.nodelist import expand_hostlist
from mlops_assets.core.parse.slurm import labelled
from mlops_assets.core.transport.hostexec import TimedRunner

#: one node's recorded answer to a command: (exit status, stdout, stderr)
Answer = tuple[int, str, str]


@dataclass
class SimNode:
    name: str
    gpus: int
    state: str = "idle"  # sinfo's spelling: idle, mixed, allocated, drained, down*, idle~
    gpus_used: int = 0


@dataclass(eq=False)  # hashed by identity, as node_step caches sinfo per runner
class SimulatedFleetRunner(TimedRunner):
    """A stand-in runner: ``nodes`` of ``partition``; ``answer(node, command)`` gives a
    node's recorded output; nodes in ``taken`` were free when sinfo read them but are
    allocated by the time a step asks (a race), so a step including them is refused."""

    nodes: list[SimNode]
    answer: Callable[[str, Sequence[str]], Answer]
    partition: str = "gpu"
    taken: set[str] = field(default_factory=set)
    #: the partition's MaxNodes (or a QOS's MaxNodesPerJob): larger steps are refused
    max_nodes: int | None = None
    where: str = "simulated-login (stand-in)"
    spent_s: float = 0.0
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def _execute(
        self, argv: Sequence[str], timeout_s: float | None, env: Mapping[str, str] | None
    ) -> Answer:
        start = time.perf_counter()
        self.calls.append(tuple(argv))
        try:
            return self._answer(list(argv))
        finally:
            self.spent_s += time.perf_counter() - start

    def close(self) -> None:
        pass

    def _answer(self, argv: list[str]) -> Answer:
        if argv[0] == "sinfo":
            return 0, "".join(self._sinfo_row(n) for n in self.nodes), ""
        if argv[:3] == ["scontrol", "show", "node"]:
            return 0, "".join(self._scontrol_block(n) for n in self.nodes), ""
        if argv[0] == "srun":
            return self._srun(argv)
        if argv[0] == "scancel":
            return 0, "", ""
        return 127, "", f"{argv[0]}: not simulated by the stand-in"

    def _sinfo_row(self, n: SimNode) -> str:
        # SINFO_NODE_FORMAT: %N|%P|%T|%c|%m|%G|%E
        return f"{n.name}|{self.partition}|{n.state}|64|512000|gpu:{n.gpus}|none\n"

    def _scontrol_block(self, n: SimNode) -> str:
        state = {
            "idle": "IDLE",
            "mixed": "MIXED",
            "allocated": "ALLOCATED",
            "idle~": "IDLE+POWERED_DOWN",
            "drained": "IDLE+DRAIN",
            "down*": "DOWN+NOT_RESPONDING",
        }.get(n.state, n.state.upper())
        idx = f"IDX:0-{n.gpus_used - 1}" if n.gpus_used else "IDX:N/A"
        return (
            f"NodeName={n.name} Arch=x86_64 CoresPerSocket=32\n"
            f"   Gres=gpu:{n.gpus}\n   GresUsed=gpu:{n.gpus_used}({idx})\n"
            f"   State={state} ThreadsPerCore=1\n   Partitions={self.partition}\n"
            f"   CfgTRES=cpu=64,mem=500G,billing=64,gres/gpu={n.gpus}\n\n"
        )

    def _srun(self, argv: list[str]) -> Answer:
        names = (
            expand_hostlist(argv[argv.index("-w") + 1]) if "-w" in argv else [self.nodes[0].name]
        )
        if self.max_nodes is not None and len(names) > self.max_nodes:
            return (
                1,
                "",
                "srun: error: Unable to allocate resources: Node count specification invalid\n",
            )
        refused = sorted(self.taken & set(names))
        if refused:
            return (
                1,
                "",
                "srun: error: Unable to allocate resources: Requested nodes are busy\n",
            )
        try:
            tail = argv[argv.index("-c") + 1 :]  # FLEET_WRAPPER, "sh", run_s, *command
        except ValueError:
            return 1, "", "srun: error: the stand-in plays labelled fleet steps only\n"
        command = tail[3:]
        order = sorted(names)  # SLURM's node table order, not the -w order
        width = len(str(len(order) - 1))
        out: list[str] = []
        err: list[str] = []
        for task, node in enumerate(order):
            code, stdout, stderr = self.answer(node, command)
            label = f"{task:>{width}}: "
            out.append(f"{label}{labelled.NODE_MARK}{node}\n")
            out += [label + ln + "\n" for ln in stdout.splitlines()]
            err += [label + ln + "\n" for ln in stderr.splitlines()]
            out.append(f"{label}{labelled.EXIT_MARK}{code}\n")
        return 0, "".join(out), "".join(err)


def uniform_fleet(count: int, gpus: int = 8, prefix: str = "gpu") -> list[SimNode]:
    """``count`` idle nodes named like real fleets (``gpu0001``...)."""
    digits = max(4, len(str(count)))
    return [SimNode(f"{prefix}{i:0{digits}d}", gpus) for i in range(1, count + 1)]
