"""Output of one multi-node `srun --label` step, split back into one record per node.

`srun --label` prefixes every line a task prints with its task id, right-aligned to the width
of the largest id (` 0: ...` / `10: ...` for 11+ tasks), on stdout and stderr alike; lines
srun prints itself (`srun: error: n3: task 3: Exited with exit code 127`) carry no label.
Which node ran which task is not in the label (SLURM orders tasks by its node table, not by
the `-w` list), so the per-node wrapper built by `core.probes.node_step` prints the node's
name and the command's exit status as marker lines; this module reads those back. Pure, no
Dagster: the fleet probes and the 1,000-node simulation share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NODE_MARK = "@@mlops-node "
EXIT_MARK = "@@mlops-exit "
MISSING_MARK = "@@mlops-missing "

_LABEL = re.compile(r"^ *(\d+): ?(.*)$")
# srun's own per-task error line (SLURM 17.11-25.11): names node and task
_SRUN_TASK = re.compile(r"^srun: error: (\S+): tasks? ([\d,\-]+): (.*)$")


@dataclass
class NodeOutput:
    """What one node's task printed, with the wrapper's markers lifted out."""

    node: str
    task: int
    stdout: str = ""
    stderr: str = ""
    #: the command's exit status as the wrapper saw it; None when the task never reported one
    #: (killed, node lost mid-step)
    returncode: int | None = None
    #: the program the node does not have (the wrapper checked `command -v` first)
    missing_program: str | None = None
    srun_errors: list[str] = field(default_factory=list)


def split_labelled(text: str) -> tuple[dict[int, list[str]], list[str]]:
    """Lines per task id, in order, and the unlabelled lines (srun's own)."""
    tasks: dict[int, list[str]] = {}
    own: list[str] = []
    for line in text.splitlines():
        m = _LABEL.match(line)
        if m is None:
            if line.strip():
                own.append(line)
            continue
        tasks.setdefault(int(m.group(1)), []).append(m.group(2))
    return tasks, own


def parse_fleet_output(stdout: str, stderr: str) -> tuple[dict[str, NodeOutput], list[str]]:
    """Per-node records (keyed by node name) from a step run through the marker wrapper, and
    srun's own lines that name no node we heard from. A task that never printed its node
    marker cannot be placed and is left out: the caller reports its node as unheard from."""
    out_tasks, out_own = split_labelled(stdout)
    err_tasks, err_own = split_labelled(stderr)
    nodes: dict[str, NodeOutput] = {}
    by_task: dict[int, NodeOutput] = {}
    for task, lines in out_tasks.items():
        name = next((ln[len(NODE_MARK) :].strip() for ln in lines if ln.startswith(NODE_MARK)), "")
        if not name:
            continue
        rec = NodeOutput(name, task)
        body: list[str] = []
        for ln in lines:
            if ln.startswith(NODE_MARK):
                continue
            if EXIT_MARK in ln:  # after output with no final newline it shares that line
                before, _, value = ln.partition(EXIT_MARK)
                if before:
                    body.append(before)
                value = value.strip()
                rec.returncode = int(value) if value.lstrip("-").isdigit() else None
            elif ln.startswith(MISSING_MARK):
                rec.missing_program = ln[len(MISSING_MARK) :].strip()
            else:
                body.append(ln)
        rec.stdout = "".join(ln + "\n" for ln in body)
        nodes[name] = by_task[task] = rec
    for task, lines in err_tasks.items():
        if task in by_task:
            by_task[task].stderr = "".join(ln + "\n" for ln in lines)
    left: list[str] = []
    for line in out_own + err_own:
        m = _SRUN_TASK.match(line)
        if m and m.group(1) in nodes:
            nodes[m.group(1)].srun_errors.append(line)
        else:
            left.append(line)
    return nodes, left


def srun_lines_for(node: str, lines: list[str]) -> list[str]:
    """srun's own lines naming `node` (`srun: error: <node>: task N: ...`)."""
    return [ln for ln in lines if (m := _SRUN_TASK.match(ln)) and m.group(1) == node]
