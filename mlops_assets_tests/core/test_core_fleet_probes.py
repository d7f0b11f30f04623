"""Fleet probes: one labelled srun step over many nodes (core.probes.node_step.run_on_nodes),
its output parser (core.parse.slurm.labelled) on real `srun --label` shapes, and the GPU
rules judged over a simulated fleet whose nodes answer with recorded outputs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mlops_assets.catalog.loader import load_catalog
from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.checks import Severity
from mlops_assets.core.parse.slurm import labelled
from mlops_assets.core.probes import containers, hpc, node_step
from mlops_assets.core.transport.hostexec import CommandResult
from mlops_assets.core.transport.standin import (
    Answer,
    SimNode,
    SimulatedFleetRunner,
    uniform_fleet,
)

FIX = Path(__file__).parent / "fixtures"


def recorded(name: str) -> str:
    lines = (FIX / name).read_text().splitlines(keepends=True)
    return "".join(ln for ln in lines if not ln.startswith("#@"))


def streams(name: str) -> tuple[str, str]:
    """(stdout, stderr) of a `#@ stdout:` / `#@ stderr:` recording."""
    text = (FIX / name).read_text()
    out = text.split("#@ stdout:\n", 1)[1]
    out, _, err = out.partition("#@ stderr:\n")
    return out, err


SMI_OK = recorded("nvidia_smi_query_h200x2_580.159.04.txt")
SMI_NO_DEVICES = recorded("nvidia_smi_error_no_devices_h200x2_580.159.04.txt")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(profile="sandbox").catalog


# ------------------------------------------------------------------ the parser


def test_labels_padded_to_the_widest_task_id_and_srun_own_lines_apart() -> None:
    out, err = streams("srun_label_12tasks_sandbox_22.05.txt")
    tasks, own = labelled.split_labelled(out)
    assert sorted(tasks) == list(range(12))
    assert all(lines == ["hello localhost"] for lines in tasks.values())
    err_tasks, err_own = labelled.split_labelled(err)
    assert err_tasks[3] == ["err", "/usr/bin/sh: 1: exec: nonexistent-prog: not found"]
    assert err_own == ["srun: error: localhost: task 3: Exited with exit code 127"] and not own


def test_multi_node_labels_from_public_docs() -> None:
    tasks, _ = labelled.split_labelled(streams("srun_label_multiprog_llnl_docs.txt")[0])
    assert tasks[4] == ["alc20.llnl.gov"] and tasks[6] == ["alc22.llnl.gov"] and len(tasks) == 7


def test_fleet_wrapper_output_on_real_slurm() -> None:
    nodes, own = labelled.parse_fleet_output(*streams("srun_label_fleet_ok_sandbox_22.05.txt"))
    rec = nodes["localhost"]
    # the last line had no newline: the exit marker shared it, and is lifted off
    assert (rec.stdout, rec.stderr, rec.returncode) == ("line one\nno newline\n", "to stderr\n", 3)
    missing, _ = labelled.parse_fleet_output(*streams("srun_label_fleet_missing_sandbox_22.05.txt"))
    assert missing["localhost"].missing_program == "nvidia-smi"
    assert missing["localhost"].returncode is None
    hung, _ = labelled.parse_fleet_output(*streams("srun_label_fleet_hung_sandbox_22.05.txt"))
    assert hung["localhost"].returncode == 124 and not own


def test_tasks_are_placed_by_their_marker_not_by_label_order() -> None:
    out = " 0: @@mlops-node n10\n 0: a\n 1: @@mlops-node n2\n 1: b\n 0: @@mlops-exit 0\n"
    err = "srun: error: n2: task 1: Exited with exit code 1\nsrun: error: n99: task 7: Killed\n"
    nodes, own = labelled.parse_fleet_output(out, err)
    assert nodes["n10"].stdout == "a\n" and nodes["n2"].stdout == "b\n"
    assert nodes["n2"].returncode is None and nodes["n2"].srun_errors == [err.splitlines()[0]]
    assert own == ["srun: error: n99: task 7: Killed"]
    assert labelled.srun_lines_for("n99", own) == own


# ------------------------------------------------------------------ the orchestration


def answers(per_node: dict[str, Answer], default: Answer) -> Callable[[str, Sequence[str]], Answer]:
    def answer(node: str, command: Sequence[str]) -> Answer:
        return per_node.get(node, default)

    return answer


def fleet(
    nodes: list[SimNode],
    per_node: dict[str, Answer] | None = None,
    taken: frozenset[str] = frozenset(),
) -> SimulatedFleetRunner:
    return SimulatedFleetRunner(nodes, answers(per_node or {}, (0, SMI_OK, "")), taken=set(taken))


def test_one_step_per_batch_and_busy_nodes_left_alone() -> None:
    nodes = uniform_fleet(300, gpus=2)
    nodes[0].state, nodes[0].gpus_used = "mixed", 2  # every GPU held by a job
    nodes[1].state, nodes[1].gpus_used = "mixed", 1  # one free, but the probe wants both
    nodes[2].state = "allocated"
    nodes[3].state = "idle~"
    nodes[4].state = "drained"
    runner = fleet(nodes)
    run = node_step.run_on_nodes(runner, "gpu", ["nvidia-smi"], all_gpus=True)
    srun = [c for c in runner.calls if c[0] == "srun"]
    assert run.steps == len(srun) == 3  # 295 free nodes in batches of 128
    assert all("--label" in c and "--gres=gpu:2" in c for c in srun)
    assert set(run.busy) == {"gpu0001", "gpu0002", "gpu0003", "gpu0004"}
    assert run.busy["gpu0001"] == "MIXED, 2 of 2 GPUs in use"
    assert "powered down" in run.busy["gpu0004"] and "gpu0005" not in run.nodes
    assert len(run.probed) == 295 and run.nodes["gpu0300"].stdout == SMI_OK
    assert "busy, not probed: gpu0001 (MIXED, 2 of 2 GPUs in use)" in run.busy_note()


class _InFlight(SimulatedFleetRunner):
    """The stand-in fleet, counting srun steps in flight at once (each takes a moment)."""

    in_flight: int = 0
    most: int = 0

    def run(self, argv: Sequence[str], **kw: Any) -> CommandResult:
        if argv[0] != "srun":
            return super().run(argv, **kw)
        with _count_lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            time.sleep(0.05)
            return super().run(argv, **kw)
        finally:
            with _count_lock:
                self.in_flight -= 1


_count_lock = threading.Lock()


def test_whole_node_steps_of_one_process_take_turns() -> None:
    """nvidia-smi and --nv per node both hold every GPU of the same nodes: run side by side
    they would queue behind each other in SLURM (or past the wait, call our own probe a busy
    node), so this process runs them one after the other; one-GPU steps are not held back."""
    runner = _InFlight(uniform_fleet(4, gpus=2), answers({}, (0, SMI_OK, "")))
    with ThreadPoolExecutor(4) as pool:
        runs = list(
            pool.map(
                lambda _: node_step.run_on_nodes(runner, "gpu", ["nvidia-smi"], all_gpus=True),
                range(4),
            )
        )
    assert runner.most == 1 and all(len(r.probed) == 4 and not r.busy for r in runs)
    runner.most = 0
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: node_step.run_on_nodes(runner, "gpu", ["true"], gpus=1), range(4)))
    assert runner.most > 1


def test_a_mixed_node_with_free_gpus_takes_a_one_gpu_step() -> None:
    nodes = uniform_fleet(2, gpus=2)
    nodes[0].state, nodes[0].gpus_used = "mixed", 1
    run = node_step.run_on_nodes(fleet(nodes), "gpu", ["true"], gpus=1)
    assert not run.busy and len(run.probed) == 2


def test_a_node_taken_since_sinfo_is_isolated_not_the_whole_step() -> None:
    nodes = uniform_fleet(64, gpus=2)
    runner = fleet(nodes, taken=frozenset({"gpu0040"}))
    run = node_step.run_on_nodes(runner, "gpu", ["nvidia-smi"], all_gpus=True)
    assert list(run.busy) == ["gpu0040"] and "Requested nodes are busy" in run.busy["gpu0040"]
    assert len(run.probed) == 63
    assert run.steps <= 1 + 2 * 6  # halving: at most two steps per level of 64 → 1


def test_a_partition_node_limit_below_the_batch_splits_steps_and_loses_no_node() -> None:
    """MaxNodes on the partition (or a QOS's MaxNodesPerJob) refuses a 128-node step with
    srun's `Node count specification invalid`: halving reaches an allowed size."""
    runner = fleet(uniform_fleet(128, gpus=2))
    runner.max_nodes = 32
    run = node_step.run_on_nodes(runner, "gpu", ["nvidia-smi"], all_gpus=True)
    assert not run.busy and len(run.probed) == 128
    assert run.steps == 1 + 2 + 4  # 128 refused, 2x64 refused, 4x32 run


def test_nodes_differing_in_gpu_count_get_one_step_per_count() -> None:
    nodes = [*uniform_fleet(3, gpus=8), SimNode("big0001", 4)]
    runner = fleet(nodes)
    run = node_step.run_on_nodes(runner, "gpu", ["nvidia-smi"], all_gpus=True)
    gres = sorted(a for c in runner.calls if c[0] == "srun" for a in c if a.startswith("--gres"))
    assert gres == ["--gres=gpu:4", "--gres=gpu:8"] and len(run.probed) == 4


# ------------------------------------------------------------------ the GPU rules


def test_nvidia_smi_names_the_bad_node_among_healthy_ones(catalog: Catalog) -> None:
    nodes = uniform_fleet(200, gpus=2)
    nodes[9].state = "allocated"
    runner = fleet(nodes, {"gpu0100": (6, SMI_NO_DEVICES, ""), "gpu0150": (124, "", "")})
    out = hpc.nvidia_smi_per_node(runner, catalog)
    assert not out.passed and out.severity is None
    assert out.nodes == ("gpu0100", "gpu0150")
    assert "gpu0100: " in out.detail and "Xid" in out.detail
    assert "busy, not probed: gpu0010 (ALLOCATED)" in out.detail
    assert out.extra["nodes_probed"] == 199 and out.extra["not_probed_busy"] == "gpu0010"


def test_nvidia_smi_all_healthy_passes_and_busy_nodes_are_only_named(catalog: Catalog) -> None:
    nodes = uniform_fleet(20, gpus=2)
    nodes[3].state = "allocated"
    out = hpc.nvidia_smi_per_node(fleet(nodes), catalog)
    assert out.passed and out.measured == "2x NVIDIA H200 driver 580.159.04" and not out.nodes
    assert out.extra["not_probed_busy"] == "gpu0004"


def test_nvidia_smi_on_a_fully_busy_fleet_is_a_warn_judging_nothing(catalog: Catalog) -> None:
    nodes = uniform_fleet(3, gpus=2)
    for n in nodes:
        n.state = "allocated"
    out = hpc.nvidia_smi_per_node(fleet(nodes), catalog)
    assert not out.passed and out.severity is Severity.WARN and out.measured == "not probed"
    assert "gpu0001 (ALLOCATED)" in out.detail


def test_nv_per_node_names_the_node_whose_container_sees_no_gpu() -> None:
    bound = recorded("apptainer/nv_probe_h200_bound.txt")
    unbound = recorded("apptainer/nv_probe_h200_wrapper_not_bound.txt")
    runner = fleet(uniform_fleet(50, gpus=1))
    runner.answer = answers({"gpu0007": (0, unbound, "")}, (0, bound, ""))
    out = containers.nv_exposes_gpus_per_node(runner, "/c/x.sif", "gpu")
    assert not out.passed and out.nodes == ("gpu0007",) and out.measured == 0
    assert out.threshold == 1 and "no GPU inside the container" in out.hint
    assert out.extra["nodes_probed"] == 50
    runner.answer = answers({}, (0, bound, ""))
    assert containers.nv_exposes_gpus_per_node(runner, "/c/x.sif", "gpu").passed


def test_one_gpu_nv_goes_to_a_node_with_a_free_gpu_and_never_queues() -> None:
    bound = recorded("apptainer/nv_probe_h200_bound.txt")
    nodes = uniform_fleet(3, gpus=2)
    nodes[0].state, nodes[0].gpus_used = "mixed", 2
    nodes[1].state, nodes[1].gpus_used = "mixed", 1
    nodes[2].state = "allocated"

    class OneNode(SimulatedFleetRunner):  # the plain one-node step of nv_exposes_gpus
        def _srun(self, argv: list[str]) -> Answer:
            return (0, bound, "")

    runner = OneNode(nodes, answers({}, (0, bound, "")))
    out = containers.nv_exposes_gpus(runner, "/c/x.sif", "gpu", 1)
    srun = [c for c in runner.calls if c[0] == "srun"]
    assert out.passed and len(srun) == 1
    assert srun[0][srun[0].index("-w") + 1] == "gpu0002" and "--immediate=10" in srun[0]
    nodes[1].gpus_used = 2
    runner.calls.clear()
    out = containers.nv_exposes_gpus(runner, "/c/x.sif", "gpu", 1)
    assert not out.passed and out.severity is Severity.WARN and out.measured == "not probed"
    assert (
        "gpu0001 (MIXED, 2 of 2 GPUs in use)" in out.detail and "gpu0003 (ALLOCATED)" in out.detail
    )
    assert not [c for c in runner.calls if c[0] == "srun"]


def test_apptainer_on_compute_never_queues_behind_jobs(catalog: Catalog) -> None:
    nodes = uniform_fleet(2, gpus=2)
    nodes[0].state = nodes[1].state = "allocated"
    runner = fleet(nodes)
    out = hpc.apptainer_on_compute(runner, catalog)
    assert not out.passed and out.severity is Severity.WARN and out.measured == "not probed"
    assert "gpu0001 (ALLOCATED)" in out.detail
    assert not [c for c in runner.calls if c[0] == "srun"]
