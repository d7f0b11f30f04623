"""The multi-node DDP smoke's pure parts: the verdict on rank 0's report (every cause named),
the rank's place in the job read from SLURM's variables, and how many nodes the job can span
(sinfo as SLURM prints it)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mlops_assets.core import ddp_rules as rules
from mlops_assets.core.slurm_jobs import smoke_payload_config, usable_partition_nodes
from mlops_assets.payloads import mnist_ddp
from mlops_assets.platform import active

GOOD: dict[str, Any] = {
    "nodes": 2,
    "nodes_requested": 2,
    "nodes_available": 2,
    "expected_nodes": ["gpu01", "gpu02"],
    "ranks": [
        {"rank": 0, "node": "gpu01", "hostname": "gpu01"},
        {"rank": 1, "node": "gpu02", "hostname": "gpu02"},
    ],
    "allreduce_exact": True,
    "allreduce_wrong_values": 0,
    "params_identical": True,
    "param_mismatches": 0,
    "param_max_abs_diff": 0.0,
    "accuracy": 0.981,
    "total_seconds": 95.0,
    "speedup": 1.7,
    "comm_warnings": [],
}


def judge(result: dict[str, Any], min_speedup: float | None = 1.0) -> dict[str, Any]:
    return rules.judge_ddp(result, min_accuracy=0.95, max_seconds=600, min_speedup=min_speedup)


def with_(**kw: Any) -> dict[str, Any]:
    out = copy.deepcopy(GOOD)
    out.update(kw)
    return out


def test_a_correct_two_node_run_passes() -> None:
    assert judge(GOOD) == {"verdict": "PASS", "messages": []}


def test_a_rank_that_never_joined_is_named_with_its_node() -> None:
    res = with_(ranks=[], missing_ranks=[{"rank": 1, "node": "gpu02"}])
    judged = judge(res)
    assert judged["verdict"] == "FAIL"
    assert judged["messages"][0].startswith("rank 1 (node gpu02) never joined the rendezvous")
    assert "slurmd" in judged["messages"][0], "the usual fix is named"


def test_a_node_of_the_job_that_took_no_part_is_named() -> None:
    res = with_(ranks=[{"rank": 0, "node": "gpu01", "hostname": "gpu01"}] * 2)
    judged = judge(res)
    assert judged["verdict"] == "FAIL"
    assert "node(s) gpu02 of the job took no part in training" in judged["messages"]
    assert "1 distinct node(s) took part, the job ran on 2" in judged["messages"]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"allreduce_exact": False, "allreduce_wrong_values": 3}, "all-reduce of known values"),
        ({"params_identical": False, "param_mismatches": 12}, "parameters differ across ranks"),
        ({"accuracy": 0.95}, "test accuracy 0.95 not above 0.95"),
        ({"accuracy": None}, "test accuracy None"),
        ({"total_seconds": 600.0}, "Training Complete not reached within 600 s"),
        ({"allreduce_exact": None}, "all-reduce of known values"),  # not measured: never a pass
    ],
)
def test_a_wrong_or_slow_result_fails_with_its_cause(change: dict[str, Any], says: str) -> None:
    judged = judge(with_(**change))
    assert judged["verdict"] == "FAIL"
    assert any(says in m for m in judged["messages"]), judged["messages"]


def test_an_nccl_warn_line_is_quoted_with_its_fix() -> None:
    line = (
        "ps-8:795:822 [0] include/socket.h:409 NCCL WARN Net : Connect to 192.168.1.9<54263> "
        "failed : No route to host"
    )
    judged = judge(with_(comm_warnings=rules.comm_warnings(f"noise\n{line}\n")))
    assert judged["verdict"] == "FAIL"
    (msg,) = judged["messages"]
    assert repr(line) in msg and "NCCL_SOCKET_IFNAME" in msg


@pytest.mark.parametrize(
    ("change", "min_speedup", "says"),
    [
        ({"speedup": 0.8}, 1.0, "speedup 0.80x over one node on 2 nodes, below 1x"),
        ({}, None, "not judged: the catalog sets no smoke.ddp.min_speedup"),
        ({"speedup": None}, 1.0, "speedup over one node not measured"),
        (
            {
                "nodes": 1,
                "nodes_available": 1,
                "expected_nodes": ["gpu01"],
                "ranks": [{"rank": 0, "node": "gpu01", "hostname": "gpu01"}],
                "speedup": None,
            },
            1.0,
            "ran on 1 node(s), 2 asked: the partition has 1 usable node(s)",
        ),
        (
            {"ranks": [{"rank": r, "node": f"gpu0{r + 1}", "hostname": "vm"} for r in (0, 1)]},
            1.0,
            "2 SLURM nodes but 1 distinct hostname(s)",
        ),
        ({"cpu_fallback": True}, 1.0, "fake GPUs (the catalog's hpc.gpus.fake)"),
    ],
)
def test_what_cannot_be_judged_is_a_warning_that_says_so(
    change: dict[str, Any], min_speedup: float | None, says: str
) -> None:
    res = with_(**change)
    if change.get("expected_nodes"):
        res["expected_nodes"] = change["expected_nodes"]
    judged = judge(res, min_speedup)
    assert judged["verdict"] == "WARN", judged["messages"]
    assert any(says in m for m in judged["messages"]), judged["messages"]


def test_one_node_run_says_there_is_no_speedup() -> None:
    res = with_(
        nodes=1,
        nodes_requested=1,
        expected_nodes=["gpu01"],
        ranks=[{"rank": 0, "node": "gpu01", "hostname": "gpu01"}],
        speedup=None,
    )
    judged = judge(res)
    assert judged == {
        "verdict": "WARN",
        "messages": ["1 node: no speedup over one node to measure"],
    }


def test_no_rank_reported_is_a_failure() -> None:
    judged = judge(with_(ranks=None))
    assert judged["verdict"] == "FAIL"
    assert judged["messages"] == ["no rank reported its host: nothing ran across nodes"]


# --------------------------------------------------------------- the rank's place


def test_topology_from_slurm_variables() -> None:
    env = {
        "SLURM_PROCID": "2",
        "SLURM_NTASKS": "4",
        "SLURM_LOCALID": "0",
        "SLURM_JOB_NODELIST": "rack[1-2]-gpu[08-09]",
        "SLURMD_NODENAME": "rack2-gpu08",
        "SLURM_JOB_ID": "123456",
    }
    topo = mnist_ddp.topology(env)
    assert topo["nodes"] == ["rack1-gpu08", "rack1-gpu09", "rack2-gpu08", "rack2-gpu09"]
    assert topo["master"] == "rack1-gpu08", "the first host of the job's nodelist"
    assert topo["port"] == 20000 + 123456 % 20000, "one port per job: jobs sharing a node differ"
    assert (topo["rank"], topo["world"], topo["node"]) == (2, 4, "rack2-gpu08")
    assert topo["expected_node"] == {
        0: "rack1-gpu08",
        1: "rack1-gpu09",
        2: "rack2-gpu08",
        3: "rack2-gpu09",
    }
    forced = mnist_ddp.topology({**env, "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29501"})
    assert (forced["master"], forced["port"]) == ("10.0.0.1", 29501)


def test_master_falls_back_to_the_launch_node_address_where_names_do_not_resolve() -> None:
    """Node names that no resolver knows (SLURM reaches nodes by NodeAddr): the address of
    the node whose batch script ran srun, the allocation's first, where rank 0 runs."""
    env = {
        "SLURM_NTASKS": "2",
        "SLURM_JOB_NODELIST": "n[1-2]",
        "SLURM_LAUNCH_NODE_IPADDR": "10.77.0.11",
    }
    assert mnist_ddp.topology(env, resolvable=lambda _n: False)["master"] == "10.77.0.11"
    assert mnist_ddp.topology(env, resolvable=lambda _n: True)["master"] == "n1"
    no_launch = {k: v for k, v in env.items() if k != "SLURM_LAUNCH_NODE_IPADDR"}
    assert mnist_ddp.topology(no_launch, resolvable=lambda _n: False)["master"] == "n1"
    assert mnist_ddp.resolves("localhost") and not mnist_ddp.resolves("no-such-node.invalid")


def test_topology_with_two_tasks_per_node_maps_ranks_in_blocks() -> None:
    env = {"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_NODELIST": "n[1-2]"}
    assert mnist_ddp.topology(env)["expected_node"] == {0: "n1", 1: "n1", 2: "n2", 3: "n2"}


def test_a_garbled_nodelist_is_an_error_not_a_smaller_job() -> None:
    with pytest.raises(ValueError, match="hostlist"):
        mnist_ddp.topology({"SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "gpu[01-"})


# ------------------------------------------------------------- nodes to span

SINFO = """\
gpu01|gpu*|idle|8|64000|gpu:h200:2|none
gpu02|gpu*|mixed|8|64000|gpu:h200:2|none
gpu03|gpu*|drained|8|64000|gpu:h100:1|bad gpu
gpu04|gpu*|idle|8|64000|gpu:a100:4(S:0)|none
cpu01|mover|idle|4|16000|(null)|none
cpu02|gpu*|idle|4|16000|(null)|none
"""


def test_usable_nodes_are_those_a_job_could_start_on_now() -> None:
    assert usable_partition_nodes(SINFO, "gpu", 1) == ["gpu01", "gpu02", "gpu04"]
    assert usable_partition_nodes(SINFO, "gpu", 0) == ["cpu02", "gpu01", "gpu02", "gpu04"]
    assert usable_partition_nodes(SINFO, "mover", 0) == ["cpu01"]
    assert usable_partition_nodes(SINFO, "gpu", 3) == ["gpu04"]


def test_payload_config_from_the_catalog() -> None:
    cat = active().catalog
    cfg = smoke_payload_config(cat, "ddp")
    assert cfg["nodes_requested"] == cat.smoke.ddp.nodes >= 2
    assert cfg["min_accuracy"] == cat.smoke.ddp.min_accuracy
    assert cfg["max_seconds"] == 600, "the platform's plan: Training Complete within 600 s"
    assert cfg["allow_cpu"] is cat.hpc.gpus.fake and cfg["backend"] == "auto"
    assert cfg["dataset_dir"] == smoke_payload_config(cat, "mnist")["dataset_dir"]


# ------------------------------------------------------- where gloo would bind

A = {"rank": 0, "node": "gpu01", "hostname": "gpu01", "address": "10.0.0.1"}
B = {"rank": 1, "node": "gpu02", "hostname": "gpu02", "address": "127.0.1.1"}


def test_a_hostname_on_loopback_across_machines_is_named_before_gloo_times_out() -> None:
    (msg,) = rules.loopback_binds([A, B], "gloo", None)
    assert msg.startswith("rank 1 on gpu02: hostname gpu02 resolves to 127.0.1.1")
    assert "GLOO_SOCKET_IFNAME" in msg and "/etc/hosts" in msg
    (gone,) = rules.loopback_binds([A, {**B, "address": None}], "gloo", None)
    assert "hostname gpu02 resolves to nothing" in gone


@pytest.mark.parametrize(
    ("joined", "backend", "ifname"),
    [
        ([A, B], "gloo", "eth0"),  # the interface is named: the hostname does not matter
        ([A, B], "nccl", None),  # NCCL picks its interfaces itself
        ([{**A, "address": "127.0.0.1"}, {**B, "hostname": "gpu01"}], "gloo", None),  # 1 host
        ([A, {**B, "address": "10.0.0.2"}], "gloo", None),
    ],
)
def test_loopback_is_fine_where_it_cannot_hurt(
    joined: list[dict[str, Any]], backend: str, ifname: str | None
) -> None:
    assert rules.loopback_binds(joined, backend, ifname) == []


def test_a_node_without_a_cuda_device_is_named_before_nccl_hangs() -> None:
    gpu = {"rank": 0, "node": "gpu01", "cuda_devices": 2, "cuda_error": None}
    broken = {
        "rank": 1,
        "node": "gpu02",
        "cuda_devices": 0,
        "cuda_error": "no CUDA device: cuInit returned CUDA error 999",
    }
    (msg,) = rules.ranks_without_gpu([gpu, broken])
    assert msg.startswith("rank 1 on gpu02: no CUDA device: cuInit returned CUDA error 999")
    assert "drain the node" in msg
    assert rules.ranks_without_gpu([gpu, {**gpu, "rank": 1, "node": "gpu02"}]) == []
    (unknown,) = rules.ranks_without_gpu([{"rank": 3, "node": "gpu04"}])
    assert unknown.startswith("rank 3 on gpu04: no CUDA device"), "unmeasured is not a GPU"


# ------------------------------------------------------------- MLOPS-2.1 (CIFAR-10)

CIFAR_GOOD = with_(
    accuracy=0.71,
    total_seconds=400.0,
    epoch_losses=[1.52, 1.01, 0.83],
    checkpoint="/mnt/beegfs/models/cifar10-resnet18/job-7/model.pt",
)


def judge_cifar(result: dict[str, Any], min_speedup: float | None = 1.0) -> dict[str, Any]:
    return rules.judge_cifar_ddp(result, min_accuracy=0.6, max_seconds=900, min_speedup=min_speedup)


def test_cifar_run_at_the_tasks_thresholds_passes_and_below_them_fails_with_its_figures() -> None:
    assert judge_cifar(CIFAR_GOOD) == {"verdict": "PASS", "messages": []}
    low = judge_cifar({**CIFAR_GOOD, "accuracy": 0.42})
    assert low["verdict"] == "FAIL" and "test accuracy 0.42 not above 0.6" in low["messages"]
    slow = judge_cifar({**CIFAR_GOOD, "total_seconds": 901.5})
    assert "Training Complete not reached within 900 s (took 901.5)" in slow["messages"]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"epoch_losses": [1.5, float("nan")]}, "epoch loss not finite (epochs [2])"),
        ({"epoch_losses": []}, "epoch loss not finite (epochs none recorded)"),
        (
            {"checkpoint": None, "checkpoint_error": "/m/job-7: [Errno 13] Permission denied"},
            "no checkpoint written (/m/job-7: [Errno 13] Permission denied)",
        ),
    ],
)
def test_cifar_run_without_finite_losses_or_a_checkpoint_fails(
    change: dict[str, Any], says: str
) -> None:
    judged = judge_cifar({**CIFAR_GOOD, **change})
    assert judged["verdict"] == "FAIL"
    assert any(m.startswith(says) for m in judged["messages"]), judged["messages"]


def test_cifar_stand_in_data_and_an_unjudged_speedup_are_said_with_the_cifar_key() -> None:
    judged = judge_cifar({**CIFAR_GOOD, "data_stand_in": True, "accuracy": 0.79}, None)
    assert judged["verdict"] == "WARN"
    assert any(
        "GENERATED CIFAR-10 stand-in" in m and "stand-in bar 0.6" in m for m in judged["messages"]
    ), judged["messages"]
    assert any("no smoke.cifar_ddp.min_speedup" in m for m in judged["messages"])


def test_cifar_rank_that_never_joined_is_judged_as_the_ddp_smoke_judges_it() -> None:
    res = with_(ranks=[], missing_ranks=[{"rank": 1, "node": "gpu02"}])
    assert judge_cifar(res) == judge(res)


def test_cifar_payload_config_per_profile() -> None:
    """Production sends MLOPS-2.1's settings and pass; the sandbox its measured stand-in
    sizes, the CIFAR-10 staged where dataset_cifar10 put it."""
    from mlops_assets.catalog.loader import load_catalog

    prod = smoke_payload_config(load_catalog(profile="production").catalog, "cifar_ddp")
    assert {k: prod[k] for k in ("epochs", "batch_size", "lr", "momentum", "stem")} == {
        "epochs": 3,
        "batch_size": 128,
        "lr": 0.01,
        "momentum": 0.9,
        "stem": "cifar",
    }
    assert (prod["min_accuracy"], prod["max_seconds"], prod["train_samples"]) == (0.6, 900, 0)
    assert prod["allow_cpu"] is False and prod["nodes_requested"] == 2
    cat = active().catalog
    box = smoke_payload_config(cat, "cifar_ddp")
    assert box["dataset_dir"] == cat.dataset_path("cifar10") and box["allow_cpu"] is True
    assert box["output_name"] == "cifar10-resnet18"
    assert box["min_speedup"] is None and box["max_seconds"] <= 90
    assert box["min_accuracy"] == cat.smoke.cifar_ddp.min_accuracy


def test_a_cifar_dataset_that_is_not_cifar10_is_refused() -> None:
    from mlops_assets.catalog.schema import Catalog

    cat = active().catalog
    data = cat.model_dump()
    data["smoke"]["cifar_ddp"]["dataset"] = "mnist"
    with pytest.raises(ValueError, match=r"smoke\.cifar_ddp\.dataset 'mnist' is not one of"):
        Catalog.model_validate(data)
