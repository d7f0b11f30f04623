"""SLURM parsers against recorded outputs (sandbox 22.05, SchedMD docs, public issues)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_assets.core.parse.slurm import jobs as sl_jobs
from mlops_assets.core.parse.slurm import nodes as sl_nodes
from mlops_assets.core.parse.slurm import states as sl_states
from mlops_assets.core.parse.slurm import text as sl_text
from mlops_assets.core.parse.slurm import units as sl_units

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    """Fixture text without its ``#@`` provenance header."""
    lines = (FIXTURES / name).read_text().splitlines(keepends=True)
    return "".join(ln for ln in lines if not ln.startswith("#@"))


def fixture_table(name: str) -> list[list[str]]:
    return [ln.split("\t") for ln in fixture(name).splitlines() if ln.strip()]


def sandbox(pattern: str) -> list[str]:
    return sorted(p.name for p in FIXTURES.glob(pattern))


# --- GRES --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpu:2", [("gpu", None, 2, None, None)]),
        ("gpu:a100:4(S:0-1)", [("gpu", "a100", 4, "0-1", None)]),
        (
            "gpu:h200:8(S:0-1),gpu:l40s:2",
            [("gpu", "h200", 8, "0-1", None), ("gpu", "l40s", 2, None, None)],
        ),
        ("gpu:tesla:2(IDX:0-1)", [("gpu", "tesla", 2, None, "0-1")]),
        ("gpu:(null):4(IDX:0-3)", [("gpu", None, 4, None, "0-3")]),
        ("gpu:titanx:0(IDX:N/A)", [("gpu", "titanx", 0, None, "N/A")]),
        ("gpu:tesla:7(IDX:0-4,8,11)", [("gpu", "tesla", 7, None, "0-4,8,11")]),
        ("gpu:a100:2(S:0,2)", [("gpu", "a100", 2, "0,2", None)]),
        ("gpu", [("gpu", None, 1, None, None)]),
        ("gpu:a100", [("gpu", "a100", 1, None, None)]),
        ("gpu:3090:3", [("gpu", "3090", 3, None, None)]),
        ("shard:8,mps:100", [("shard", None, 8, None, None), ("mps", None, 100, None, None)]),
        ("bandwidth:lustre:4G", [("bandwidth", "lustre", 4 * 1024**3, None, None)]),
        ("gpu:a100_3g.20gb:2", [("gpu", "a100_3g.20gb", 2, None, None)]),
        ("(null)", []),
        ("", []),
        ("N/A", []),
    ],
)
def test_parse_gres(text: str, expected: list[tuple[Any, ...]]) -> None:
    got = [(g.name, g.type, g.count, g.sockets, g.indexes) for g in sl_units.parse_gres(text)]
    assert got == expected


def test_gres_strings_from_public_sources() -> None:
    rows = fixture_table("gres_strings_public.txt")
    assert len(rows) >= 15
    for expected, text in rows:
        assert sl_units.gpu_count(text) == int(expected), text
        assert sl_units.gpu_count(sl_units.parse_gres(text)) == int(expected)


@pytest.mark.parametrize(
    "bad", ["gpu:a:b:c", "gpu:x:y", "gpu(S:0", "gpu)", ":2", "gpu:2(S0)", "9gpu:1", "gpu:a b:1"]
)
def test_parse_gres_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        sl_units.parse_gres(bad)


# --- node state ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "base", "flags", "available", "healthy", "drained", "responding"),
    [
        ("idle", "IDLE", set(), True, True, False, True),
        ("mix*", "MIXED", {"NOT_RESPONDING"}, False, False, False, False),
        ("idle~", "IDLE", {"POWERED_DOWN"}, True, True, False, True),
        ("drain", "IDLE", {"DRAIN"}, False, False, True, True),
        ("drained", "IDLE", {"DRAIN"}, False, False, True, True),
        ("draining", "ALLOCATED", {"DRAIN"}, False, False, False, True),
        ("drng", "ALLOCATED", {"DRAIN"}, False, False, False, True),
        ("down*", "DOWN", {"NOT_RESPONDING"}, False, False, False, False),
        ("inval", "UNKNOWN", {"INVALID_REG"}, False, False, False, True),
        ("alloc+", "ALLOCATED", {"COMPLETING"}, False, True, False, True),
        ("allocated", "ALLOCATED", set(), False, True, False, True),
        ("mixed", "MIXED", set(), True, True, False, True),
        ("IDLE+DRAIN", "IDLE", {"DRAIN"}, False, False, True, True),
        ("MIXED+DRAIN", "MIXED", {"DRAIN"}, False, False, False, True),
        ("DOWN+NOT_RESPONDING", "DOWN", {"NOT_RESPONDING"}, False, False, False, False),
        ("IDLE+CLOUD+POWERED_DOWN", "IDLE", {"CLOUD", "POWERED_DOWN"}, True, True, False, True),
        ("DOWN*+DRAIN", "DOWN", {"NOT_RESPONDING", "DRAIN"}, False, False, True, False),
        ("UNKNOWN", "UNKNOWN", set(), False, False, False, True),
        ("resv", "IDLE", {"RESERVED"}, False, True, False, True),
        ("maint", "IDLE", {"MAINTENANCE"}, False, True, False, True),
        ("idle$", "IDLE", {"MAINTENANCE"}, False, True, False, True),
        ("drained@", "IDLE", {"DRAIN", "REBOOT_REQUESTED"}, False, False, True, True),
        ("reboot^", "IDLE", {"REBOOT_REQUESTED", "REBOOT_ISSUED"}, False, True, False, True),
        ("mixed-", "MIXED", {"PLANNED"}, True, True, False, True),
        ("fail", "IDLE", {"FAIL"}, False, False, False, True),
        ("failing", "ALLOCATED", {"FAIL"}, False, False, False, True),
        ("completing", "IDLE", {"COMPLETING"}, True, True, False, True),
        ("future", "FUTURE", set(), False, False, False, True),
        ("IDLE+SOME_NEW_FLAG", "IDLE", {"SOME_NEW_FLAG"}, True, True, False, True),
    ],
)
def test_parse_node_state_text(
    text: str,
    base: str,
    flags: set[str],
    available: bool,
    healthy: bool,
    drained: bool,
    responding: bool,
) -> None:
    st_ = sl_states.parse_node_state(text)
    assert st_.base == base
    assert st_.flags == frozenset(flags)
    assert st_.available is available
    assert st_.healthy is healthy
    assert st_.drained is drained
    assert st_.responding is responding


def test_parse_node_state_json_forms() -> None:
    # 23.02+: a list; 22.05: a string plus state_flags.
    assert sl_states.parse_node_state(["IDLE", "DRAIN"]) == sl_states.parse_node_state("IDLE+DRAIN")
    assert sl_states.parse_node_state(["idle"], ["DRAIN"]) == sl_states.parse_node_state("drained")
    assert sl_states.parse_node_state(["MIXED", "DRAIN"]).draining
    assert sl_states.parse_node_state(["INVALID"]).base == "INVALID"
    assert sl_states.parse_node_state([]).base == "UNKNOWN"
    assert str(sl_states.parse_node_state(["DOWN", "NOT_RESPONDING", "DRAIN"])) == (
        "DOWN+DRAIN+NOT_RESPONDING"
    )


@pytest.mark.parametrize("bad", ["", "+", "idle++drain", "sleepy", "idle+", "idle+drowsy", "+idle"])
def test_parse_node_state_rejects_unknown(bad: str) -> None:
    if bad == "idle+":  # trailing '+' is SLURM's completing marker, not an error
        assert "COMPLETING" in sl_states.parse_node_state(bad).flags
        return
    with pytest.raises(ValueError):
        sl_states.parse_node_state(bad)


def test_parse_node_state_rejects_two_bases_and_non_strings() -> None:
    with pytest.raises(ValueError):
        sl_states.parse_node_state(["IDLE", "DOWN"])
    with pytest.raises(ValueError):
        sl_states.parse_node_state([1, 2])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        sl_states.parse_node_state(["IDLE"], ["bad flag"])


# --- reasons --------------------------------------------------------------------------------


def test_drain_reasons_from_public_sources() -> None:
    rows = fixture_table("drain_reasons_public.txt")
    assert len(rows) >= 10
    for expected, text in rows:
        assert sl_states.is_gres_mismatch(text) is (expected == "yes"), text
        reason = sl_states.parse_drain_reason(text)
        assert reason is not None
        assert sl_states.is_gres_mismatch(reason) is (expected == "yes")
        assert "[" not in reason.text or reason.user is None


def test_gres_mismatch_details() -> None:
    m = sl_states.parse_gres_mismatch("gres/gpu count reported lower than configured (0 < 2)")
    assert m == sl_states.GresMismatch(name="gpu", type=None, found=0, configured=2)
    m = sl_states.parse_gres_mismatch("gpu:a100 count too low (3 < 4)")
    assert m == sl_states.GresMismatch(name="gpu", type="a100", found=3, configured=4)
    assert sl_states.parse_gres_mismatch(None) is None
    assert not sl_states.is_gres_mismatch("Kill task failed")


def test_parse_drain_reason_tail() -> None:
    r = sl_states.parse_drain_reason("Kill task failed [root@2024-05-01T10:00:00]")
    assert r == sl_states.DrainReason("Kill task failed", "root", "2024-05-01T10:00:00")
    assert sl_states.parse_drain_reason("none") is None
    assert sl_states.parse_drain_reason("") is None
    assert sl_states.parse_drain_reason(None) is None
    multi = sl_states.parse_drain_reason("first line [slurm@2024-01-01T00:00:00]\nsecond line")
    assert multi is not None
    assert multi.text == "first line\nsecond line"
    assert multi.user == "slurm"


# --- sinfo ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sandbox("sinfo_N_*_sandbox_22.05.txt"))
def test_sinfo_nodes_sandbox(name: str) -> None:
    nodes = sl_nodes.parse_sinfo_nodes(fixture(name))
    assert [n.name for n in nodes] == ["localhost"]
    node = nodes[0]
    assert node.partitions == ("gpu",)
    assert node.gpus == 2
    assert node.cpus == 2
    assert node.real_memory_mb == 4000


def test_sinfo_nodes_idle_sandbox_exact() -> None:
    node = sl_nodes.parse_sinfo_nodes(fixture("sinfo_N_idle_sandbox_22.05.txt"))[0]
    assert node.state == sl_states.NodeState("IDLE")
    assert node.state.available
    assert node.reason is None


def test_sinfo_nodes_merges_partitions_and_reads_reasons() -> None:
    text = (
        "gpu01|gpu*|drained|64|512000|gpu:h200:8(S:0-1)|gres/gpu count reported lower than "
        "configured (7 < 8)\n"
        "gpu01|debug|drained|64|512000|gpu:h200:8(S:0-1)|gres/gpu count reported lower than "
        "configured (7 < 8)\n"
        "gpu02|gpu*|mixed|64|512000|gpu:h200:8(S:0-1)|none\n"
        "gpu03|gpu*|down*|64|512000|gpu:h200:8(S:0-1)|Not responding|with a pipe\n"
    )
    nodes = {n.name: n for n in sl_nodes.parse_sinfo_nodes(text)}
    assert nodes["gpu01"].partitions == ("gpu", "debug")
    assert nodes["gpu01"].state.drained
    assert sl_states.is_gres_mismatch(nodes["gpu01"].reason)
    assert nodes["gpu02"].reason is None
    assert nodes["gpu03"].reason == sl_states.DrainReason("Not responding|with a pipe")
    assert sl_nodes.nodes_hostlist(nodes.values()) == "gpu[01-03]"


@pytest.mark.parametrize(
    "bad",
    [
        "localhost|gpu|idle|2|4000",
        "localhost|gpu|sleepy|2|4000|gpu:2|none",
        "|gpu|idle|2|4000|gpu:2|none",
        "localhost|gpu|idle|two|4000|gpu:2|none",
    ],
)
def test_sinfo_nodes_rejects_bad_lines(bad: str) -> None:
    with pytest.raises(ValueError):
        sl_nodes.parse_sinfo_nodes(bad)


def test_sinfo_error_text_is_not_a_node_list() -> None:
    with pytest.raises(ValueError, match="fields"):
        sl_nodes.parse_sinfo_nodes(fixture("sinfo_error_no_controller_sandbox_22.05.txt"))


PARTITION_FORMAT = "%P|%a|%D|%T|%N"


@pytest.mark.parametrize("name", sandbox("sinfo_partitions_*_sandbox_22.05.txt"))
def test_sinfo_partitions_sandbox(name: str) -> None:
    (node,) = sl_nodes.parse_sinfo_nodes(fixture(name), PARTITION_FORMAT)
    assert node.name == "localhost" and node.partitions == ("gpu",)


def test_sinfo_partition_rows_give_every_node_its_state() -> None:
    text = (
        "gpu*|up|6|mixed|gpu[01-06]\n"
        "gpu*|up|2|drained|gpu[07-08]\n"
        "gpu*|up|1|down*|gpu09\n"
        "gpu*|up|1|allocated|gpu10\n"
        "cpu|up|0|n/a|\n"
    )
    nodes = sl_nodes.parse_sinfo_nodes(text, PARTITION_FORMAT)
    assert len(nodes) == 10
    assert sum(n.state.available for n in nodes) == 6
    assert [n.name for n in nodes if not n.state.healthy] == ["gpu07", "gpu08", "gpu09"]


def test_sinfo_count_must_match_nodes() -> None:
    with pytest.raises(ValueError, match="nodes"):
        sl_nodes.parse_sinfo_nodes("gpu*|up|3|idle|gpu[01-02]", PARTITION_FORMAT)


def test_sinfo_default_table_and_cut_node_list() -> None:
    text = (
        "PARTITION AVAIL  TIMELIMIT NODES  STATE NODELIST\n"
        "debug*       up      30:00     2  down* adev[1-2]\n"
        "batch        up      30:00     3  alloc adev[7-8,14]\n"
    )
    nodes = {n.name: n for n in sl_nodes.parse_sinfo_nodes(text)}
    assert sorted(nodes) == ["adev1", "adev14", "adev2", "adev7", "adev8"]
    assert not nodes["adev1"].state.responding and nodes["adev7"].state.busy
    with pytest.raises(ValueError, match="cut"):
        sl_nodes.parse_sinfo_nodes(text.replace("adev[7-8,14]", "adev[7-8,1..."))


def test_sinfo_json_22_05_sandbox() -> None:
    nodes = sl_nodes.parse_sinfo_nodes(fixture("sinfo_json_idle_sandbox_22.05.json"))
    assert len(nodes) == 1
    node = nodes[0]
    assert node.name == "localhost"
    assert node.state == sl_states.NodeState("IDLE")
    assert node.gpus == 2
    assert node.gpus_used == 0
    assert node.version == "22.05.8"
    assert node.cfg_tres["gres/gpu"] == "2"
    assert node.alloc_tres == {}  # "tres_used": null


@pytest.mark.parametrize("name", sandbox("sinfo_json_*_sandbox_22.05.json"))
def test_sinfo_json_sandbox_all_states(name: str) -> None:
    nodes = sl_nodes.parse_sinfo_nodes(fixture(name))
    assert [n.name for n in nodes] == ["localhost"]
    text_name = name.replace("sinfo_json_", "sinfo_N_").replace(".json", ".txt")
    if (FIXTURES / text_name).exists():
        # The text and JSON recordings of one moment agree on drain/availability.
        text_node = sl_nodes.parse_sinfo_nodes(fixture(text_name))[0]
        assert text_node.state.drain == nodes[0].state.drain
        assert text_node.state.available == nodes[0].state.available


def test_sinfo_json_23_02_shape() -> None:
    # Shape of 23.02+ `sinfo --json` (data_parser v0.0.39 SINFO_DATA; v0.0.42 adds
    # resource_spec): one entry per sinfo group.
    group: dict[str, Any] = {
        "port": 6818,
        "node": {"state": ["IDLE", "DRAIN"]},
        "nodes": {
            "allocated": 0,
            "idle": 2,
            "other": 0,
            "total": 2,
            "hostnames": [],
            "addresses": [],
            "nodes": ["gpu01", "gpu02"],
        },
        "cpus": {
            "allocated": 0,
            "idle": 128,
            "other": 0,
            "total": 128,
            "minimum": 64,
            "maximum": 64,
            "load": {"minimum": 1, "maximum": 3},
            "per_node": {"max": {"set": False, "infinite": True, "number": 0}},
        },
        "memory": {
            "minimum": 512000,
            "maximum": 512000,
            "free": {
                "minimum": {"set": True, "infinite": False, "number": 500000},
                "maximum": {"set": True, "infinite": False, "number": 501000},
            },
            "allocated": 0,
        },
        "gres": {"total": "gpu:h200:8(S:0-1)", "used": "gpu:h200:0(IDX:N/A)"},
        "reason": {
            "description": "gres/gpu count reported lower than configured (7 < 8)",
            "time": 1732800000,
            "user": "slurm",
        },
        "partition": {"name": "gpu", "nodes": {"configured": "gpu[01-02]", "total": 2}},
    }
    other = {
        **group,
        "node": {"state": ["MIXED"]},
        "nodes": {**group["nodes"], "nodes": ["gpu03"]},
        "reason": {"description": "", "time": 0, "user": ""},
        "gres": {"total": "gpu:h200:8(S:0-1)", "used": "gpu:h200:3(IDX:0-2)"},
    }
    doc = {"sinfo": [group, other], "meta": {}, "errors": [], "warnings": []}
    nodes = {n.name: n for n in sl_nodes.parse_sinfo_nodes(json.dumps(doc))}
    assert set(nodes) == {"gpu01", "gpu02", "gpu03"}
    assert nodes["gpu01"].state.drained
    assert nodes["gpu01"].reason is not None
    assert nodes["gpu01"].reason.user == "slurm"
    assert nodes["gpu01"].reason.gres_mismatch == sl_states.GresMismatch("gpu", None, 7, 8)
    assert nodes["gpu01"].cpus == 64
    assert nodes["gpu03"].gpus_used == 3
    assert nodes["gpu03"].reason is None


@pytest.mark.parametrize(
    ("name", "version", "gpus"),
    [
        ("scontrol_show_node_json_23.02_slurmrestd_man.json", "23.02.3", 4),
        ("scontrol_show_node_json_24.11_slurmrestd_man.json", "24.11.0-0rc1", 2),
    ],
)
def test_scontrol_node_json_docs(name: str, version: str, gpus: int) -> None:
    (node,) = sl_nodes.parse_scontrol_nodes(fixture(name))
    assert node.version == version
    assert node.gpus == gpus
    assert node.gpus_used == 0
    assert node.state == sl_states.NodeState("IDLE")
    assert node.partitions == ("debug",)
    assert node.reason is None


def test_nodes_json_errors_raise() -> None:
    doc = {"errors": [{"error": "Unable to query nodes", "error_number": 1}], "nodes": []}
    with pytest.raises(sl_text.SlurmJsonError, match="Unable to query"):
        sl_nodes.parse_scontrol_nodes(json.dumps(doc))
    with pytest.raises(ValueError, match="not JSON"):
        sl_nodes.parse_scontrol_nodes('{"nodes": [truncated')
    with pytest.raises(ValueError, match="unexpected line"):
        sl_nodes.parse_scontrol_nodes("sinfo: error: plugin not found")
    with pytest.raises(ValueError):
        sl_nodes.parse_scontrol_nodes('{"meta": {}}')


def test_partitions_json() -> None:
    doc = {
        "partitions": [
            {
                "name": "gpu",
                "nodes": {"configured": "gpu[01-04]", "total": 4},
                "cpus": {"total": 256},
                "partition": {"state": ["UP"]},
                "tres": {"configured": "cpu=256,mem=2000G,node=4,billing=256,gres/gpu=32"},
            },
            {"name": "old", "nodes": {"configured": "", "total": 0}},
        ],
        "errors": [],
    }
    gpu, old = sl_nodes.parse_scontrol_partitions(json.dumps(doc))
    assert gpu.nodes == ("gpu01", "gpu02", "gpu03", "gpu04")
    assert gpu.up
    assert gpu.gpus == 32
    assert old.state == "UNKNOWN"
    assert old.nodes == ()


# --- scontrol text --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "scontrol_show_node_idle_sandbox_22.05.txt",
        "scontrol_show_node_o_idle_sandbox_22.05.txt",
    ],
)
def test_scontrol_show_node_sandbox(name: str) -> None:
    (node,) = sl_nodes.parse_scontrol_nodes(fixture(name))
    assert node.name == "localhost"
    assert node.state == sl_states.NodeState("IDLE")
    assert node.gpus == 2
    assert node.gpus_used == 0
    assert node.cpus == 2
    assert node.cpus_alloc == 0
    assert node.real_memory_mb == 4000
    assert node.partitions == ("gpu",)
    assert node.version == "22.05.8"
    assert node.fields["OS"] == "Linux 6.18.44-fc-v657 #1 SMP PREEMPT_DYNAMIC @0"
    assert node.fields["AllocTRES"] == ""
    assert node.cfg_tres == {"cpu": "2", "mem": "4000M", "billing": "2", "gres/gpu": "2"}


def test_scontrol_one_liner_equals_multiline() -> None:
    multi = sl_nodes.parse_scontrol_nodes(fixture("scontrol_show_node_idle_sandbox_22.05.txt"))
    one = sl_nodes.parse_scontrol_nodes(fixture("scontrol_show_node_o_idle_sandbox_22.05.txt"))
    assert multi == one


@pytest.mark.parametrize("name", sandbox("scontrol_show_node_*_sandbox_22.05.txt"))
def test_scontrol_show_node_sandbox_all_states(name: str) -> None:
    nodes = sl_nodes.parse_scontrol_nodes(fixture(name))
    assert [n.name for n in nodes] == ["localhost"]
    assert nodes[0].gpus == 2


def test_scontrol_show_node_unknown_sandbox() -> None:
    (node,) = sl_nodes.parse_scontrol_nodes(fixture("scontrol_show_node_unknown_sandbox_22.05.txt"))
    assert node.state.base == "UNKNOWN"
    assert not node.state.healthy
    assert node.fields["CPULoad"] == "N/A"
    assert node.fields["BootTime"] == "None"


def test_scontrol_show_node_gres_mismatch_public_issue() -> None:
    (node,) = sl_nodes.parse_scontrol_nodes(
        fixture("scontrol_show_node_gres_mismatch_24.05_awslabs_issue195.txt")
    )
    assert node.name == "yigou-dev-102-68"
    assert node.state.drained
    assert node.gpus == 1
    assert node.reason == sl_states.DrainReason(
        "gres/gpu count reported lower than configured (0 < 1)", "slurm", "2024-12-19T11:03:34"
    )
    assert node.reason.gres_mismatch == sl_states.GresMismatch("gpu", None, 0, 1)
    assert node.fields["OS"].startswith("Linux 5.10.0-153") and node.fields["OS"].endswith("2023")
    assert node.fields["ResumeAfterTime"] == "None"
    # The same record as a one-liner (scontrol -o) parses identically.
    one = " ".join(
        ln.strip()
        for ln in fixture(
            "scontrol_show_node_gres_mismatch_24.05_awslabs_issue195.txt"
        ).splitlines()
        if ln.strip()
    )
    assert sl_nodes.parse_scontrol_nodes(one) == [node]


def test_scontrol_one_liner_free_text_stops_at_next_key() -> None:
    text = (
        "NodeName=gpu01 State=IDLE+DRAIN Gres=gpu:h200:8(S:0-1) OS=Linux 6.8 #1 SMP x=y "
        "RealMemory=10 Reason=NHC: check_fs_mount: /beegfs not mounted [root@2024-05-01T10:00:00] "
        "Comment=rack 4 Extra=a b\n"
        "NodeName=gpu02 State=MIXED Gres=gpu:h200:8(S:0-1) GresUsed=gpu:h200:3(IDX:0-2)\n"
    )
    a, b = sl_nodes.parse_scontrol_nodes(text)
    assert a.fields["OS"] == "Linux 6.8 #1 SMP x=y"
    assert a.real_memory_mb == 10
    assert a.reason == sl_states.DrainReason(
        "NHC: check_fs_mount: /beegfs not mounted", "root", "2024-05-01T10:00:00"
    )
    assert a.fields["Comment"] == "rack 4"
    assert a.fields["Extra"] == "a b"
    assert b.gpus_used == 3


@pytest.mark.parametrize(
    "bad",
    [
        "Node foo not found",
        "NodeName=x Arch=x86_64",  # no State
        "   CPUAlloc=0",  # continuation without a record
        "NodeName=x State=IDLE CPUTot=lots",
        "NodeName=x State=IDLE\nstray line",
    ],
)
def test_scontrol_nodes_reject_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        sl_nodes.parse_scontrol_nodes(bad)


def test_scontrol_nodes_empty() -> None:
    assert sl_nodes.parse_scontrol_nodes("") == []


@pytest.mark.parametrize(
    "name",
    [
        "scontrol_show_partition_idle_sandbox_22.05.txt",
        "scontrol_show_partition_o_idle_sandbox_22.05.txt",
    ],
)
def test_scontrol_show_partition_sandbox(name: str) -> None:
    (part,) = sl_nodes.parse_scontrol_partitions(fixture(name))
    assert part.name == "gpu"
    assert part.up
    assert part.default is True
    assert part.nodes == ("localhost",)
    assert part.total_cpus == 2
    assert part.total_nodes == 1
    assert part.max_time == "UNLIMITED"
    assert part.gpus == 2


def test_scontrol_show_config_sandbox() -> None:
    cfg = sl_nodes.parse_scontrol_config(fixture("scontrol_show_config_idle_sandbox_22.05.txt"))
    assert cfg["SLURM_VERSION"] == "22.05.8"
    assert cfg["ClusterName"] == "sandbox"
    assert cfg["GresTypes"] == "gpu"
    assert cfg["SelectType"] == "select/cons_tres"
    assert cfg["ProctrackType"] == "proctrack/linuxproc"
    assert cfg["TaskPlugin"] == "task/none"
    assert cfg["AccountingStorageType"] == "accounting_storage/slurmdbd"
    assert "gres/gpu" in cfg["AccountingStorageTRES"].split(",")
    assert cfg["SlurmctldHost[0]"] == "vm(127.0.0.1)"
    assert cfg["SuspendTime"] == "INFINITE"
    assert "Configuration" not in cfg
    assert len(cfg) > 150


def test_scontrol_config_needs_settings() -> None:
    with pytest.raises(ValueError):
        sl_nodes.parse_scontrol_config(
            "slurm_load_ctl_conf error: Unable to contact slurm controller"
        )


# --- squeue / sacct / sbatch -------------------------------------------------------------


def test_squeue_composed() -> None:
    recs = {r.job_id: r for r in sl_jobs.parse_squeue(fixture("squeue_composed_22.05.txt"))}
    assert recs["101"] == sl_jobs.SqueueRecord("101", "RUNNING", None, ("localhost",))
    assert recs["108_3"].nodes == ("gpu01", "gpu02")
    assert recs["109_[1-4]"].state == "PENDING"
    assert recs["109_[1-4]"].reason == "Priority"
    assert recs["111"].reason == "ReqNodeNotAvail, UnavailableNodes:gpu[03-04]"
    assert recs["111"].nodes == ()
    assert recs["112"].state == "COMPLETING"


@pytest.mark.parametrize("name", sandbox("squeue_*_sandbox_22.05.txt"))
def test_squeue_sandbox(name: str) -> None:
    for rec in sl_jobs.parse_squeue(fixture(name)):
        assert rec.job_id


@pytest.mark.parametrize("bad", ["101|RUNNING", "abc|RUNNING|None|x", "101|running|None|x"])
def test_squeue_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        sl_jobs.parse_squeue(bad)


def test_sacct_sandbox() -> None:
    recs = sl_jobs.parse_sacct(fixture("sacct_P_n_idle_sandbox_22.05.txt"))
    by_id = {r.job_id: r for r in recs}
    assert by_id["1"].succeeded
    assert by_id["1"].gpus == 1
    assert by_id["1.batch"].step == "batch"
    assert by_id["1.batch"].job == "1"
    assert by_id["1.batch"].max_rss_bytes is None
    assert sl_units.tres_memory_bytes(by_id["1.batch"].alloc_tres) == 0
    assert by_id["2"].state == "FAILED"
    assert (by_id["2"].exit_code, by_id["2"].exit_signal) == (3, 0)
    assert not by_id["2"].succeeded
    assert by_id["2"].gpus == 0
    assert all(r.terminal for r in recs)


def test_sacct_composed() -> None:
    recs = {r.job_id: r for r in sl_jobs.parse_sacct(fixture("sacct_P_n_composed_22.05.txt"))}
    assert recs["101"].succeeded and not recs["101"].is_step
    assert recs["101.batch"].max_rss_bytes == 1128 * 1024
    assert recs["101.extern"].max_rss_bytes == 0
    assert recs["101.0"].step == "0"
    assert recs["101.0"].max_rss_bytes == round(253.5 * 1024**2)
    assert recs["101"].max_rss_bytes is None
    assert sl_units.tres_memory_bytes(recs["101"].alloc_tres) == 100 * 1024**2
    assert recs["102"].exit_code == 3
    assert recs["102.batch"].max_rss_bytes == 4096
    assert recs["103"].state == "CANCELLED"
    assert recs["103"].cancelled_by == "0"
    assert recs["103"].exit_signal == 15
    assert recs["103"].elapsed_s == 1 * 86400 + 2 * 3600 + 3 * 60 + 4
    assert recs["103.batch"].max_rss_bytes == 2 * 1024**3
    assert recs["104"].state == "TIMEOUT"
    assert recs["104"].nodes == ("gpu01", "gpu02")
    assert recs["105"].state == "OUT_OF_MEMORY"
    assert recs["106"].state == "NODE_FAIL"
    assert recs["107"].state == "PENDING"
    assert recs["107"].nodes == ()
    assert not recs["107"].terminal
    assert recs["108_3"].gpus == 1
    assert recs["108_3"].job == "108_3"


def test_sacct_job_name_with_pipes() -> None:
    (rec,) = sl_jobs.parse_sacct("7|a|b|c|COMPLETED|0:0|00:00:01|cpu=1||n1")
    assert rec.job_name == "a|b|c"
    assert rec.nodes == ("n1",)


@pytest.mark.parametrize(
    "bad",
    [
        "1|x|COMPLETED|0:0|00:00:01|cpu=1|",
        "1|x|COMPLETED|0|00:00:01|cpu=1||n1",
        "1|x|COMPLETED|0:0|yesterday|cpu=1||n1",
        "1|x|COMPLETED|0:0|00:00:01|cpu||n1",
        "1|x|COMPLETED|0:0|00:00:01|cpu=1|lots|n1",
        "job|x|COMPLETED|0:0|00:00:01|cpu=1||n1",
        "1|x|COMPLETED|0:0|00:00:01|cpu=1||n[1-",
        "sacct: error: Problem talking to the database: Connection refused",
    ],
)
def test_sacct_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError):
        sl_jobs.parse_sacct(bad)


def test_sbatch_outputs() -> None:
    for job_id, cluster, text in fixture_table("sbatch_outputs.txt"):
        sub = sl_jobs.parse_sbatch(text)
        assert sub.job_id == int(job_id)
        assert sub.cluster == (None if cluster == "-" else cluster)
    warned = "sbatch: warning: can't honor --ntasks-per-node\nSubmitted batch job 77\n"
    assert sl_jobs.parse_sbatch(warned) == sl_jobs.SbatchSubmission(77)
    for bad in ["", "sbatch: error: Batch job submission failed: Invalid partition name"]:
        with pytest.raises(ValueError):
            sl_jobs.parse_sbatch(bad)


# --- helpers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("00:00:05", 5),
        ("1-02:03:04", 93784),
        ("10:00", 600),
        ("5", 300),
        ("2-00", 2 * 86400),
        ("2-03:04", 2 * 86400 + 3 * 3600 + 4 * 60),
        ("00:01.234", 1),
        ("100:00:00", 360000),
        ("UNLIMITED", None),
        ("Partition_Limit", None),
    ],
)
def test_parse_slurm_duration(text: str, seconds: int | None) -> None:
    assert sl_units.parse_slurm_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "abc", "00:61:00", "1-", "-1", "1:2:3:4", "INVALID"])
def test_parse_slurm_duration_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        sl_units.parse_slurm_duration(bad)


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("1234K", "", 1234 * 1024),
        ("12.50M", "", round(12.5 * 1024**2)),
        ("100", "", 100),
        ("100", "M", 100 * 1024**2),
        ("2G", "", 2 * 1024**3),
        ("0", "", 0),
    ],
)
def test_parse_size_bytes(text: str, default: str, expected: int) -> None:
    assert sl_units.parse_size_bytes(text, default) == expected


def test_parse_tres() -> None:
    tres = sl_units.parse_tres("billing=1,cpu=1,gres/gpu=1,mem=100M,node=1")
    assert tres == {"billing": "1", "cpu": "1", "gres/gpu": "1", "mem": "100M", "node": "1"}
    assert sl_units.tres_gpus(tres) == 1
    assert sl_units.tres_gpus(sl_units.parse_tres("cpu=2,gres/gpu:a100=2,gres/gpu:v100=1")) == 3
    assert sl_units.parse_tres("") == {}
    assert sl_states.parse_job_state("CANCELLED by 1000") == ("CANCELLED", "1000")
    assert sl_states.parse_exit_code("0:15") == (0, 15)


# --- garbage never raises anything but ValueError ----------------------------------------

_TEXT_PARSERS: list[Callable[[str], object]] = [
    sl_units.parse_gres,
    sl_states.parse_node_state,
    sl_states.parse_drain_reason,
    sl_states.parse_gres_mismatch,
    sl_nodes.parse_sinfo_nodes,
    sl_nodes.parse_scontrol_nodes,
    sl_nodes.parse_scontrol_partitions,
    sl_nodes.parse_scontrol_config,
    sl_jobs.parse_squeue,
    sl_jobs.parse_sacct,
    sl_jobs.parse_sbatch,
    sl_units.parse_slurm_duration,
    sl_units.parse_size_bytes,
    sl_units.parse_tres,
    sl_states.parse_job_state,
    sl_states.parse_exit_code,
]

_slurmish = st.lists(
    st.sampled_from(
        [
            *"abgpu:0123|=[](),-+*~ \n.NSIDXR/",
            "gpu",
            "IDLE",
            "DRAIN",
            "NodeName=",
            "State=",
            "PartitionName=",
            "Reason=",
            " = ",
            "(null)",
            "COMPLETED",
            "1-",
            "K",
            "by ",
        ]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=st.one_of(st.text(max_size=80), _slurmish))
def test_text_parsers_raise_only_value_error(text: str) -> None:
    for parse in _TEXT_PARSERS:
        with contextlib.suppress(ValueError):
            parse(text)


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.text(max_size=8)
    | st.sampled_from(["IDLE", "DRAIN", "gpu:2", "localhost", "n[1-2]"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "nodes",
                    "sinfo",
                    "name",
                    "state",
                    "state_flags",
                    "gres",
                    "gres_used",
                    "reason",
                    "partitions",
                    "cpus",
                    "errors",
                    "node",
                    "partition",
                    "number",
                    "set",
                    "total",
                    "configured",
                    "description",
                    "time",
                    "user",
                    "tres",
                    "real_memory",
                    "filesystems",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(
    doc=st.dictionaries(
        st.sampled_from(["nodes", "sinfo", "partitions", "errors", "meta"]),
        _json_values,
        max_size=3,
    )
)
def test_json_parsers_raise_only_value_error(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    for parse in (
        sl_nodes.parse_sinfo_nodes,
        sl_nodes.parse_scontrol_nodes,
        sl_nodes.parse_scontrol_partitions,
    ):
        with contextlib.suppress(ValueError):
            parse(text)


def test_huge_numbers_do_not_overflow() -> None:
    assert sl_units.parse_size_bytes("9" * 400 + ".5K") > 0
    assert sl_units.gpu_count("gpu:" + "9" * 50) == int("9" * 50)


# --- the sandbox node drained with SLURM's GRES-mismatch reason (real 22.05 recordings) -----


def test_drained_sandbox_text_formats_agree() -> None:
    (sinfo_node,) = sl_nodes.parse_sinfo_nodes(fixture("sinfo_N_drained_sandbox_22.05.txt"))
    (multi,) = sl_nodes.parse_scontrol_nodes(
        fixture("scontrol_show_node_drained_sandbox_22.05.txt")
    )
    (one,) = sl_nodes.parse_scontrol_nodes(
        fixture("scontrol_show_node_o_drained_sandbox_22.05.txt")
    )
    (json_node,) = sl_nodes.parse_sinfo_nodes(fixture("sinfo_json_drained_sandbox_22.05.json"))
    assert multi == one
    for node in (sinfo_node, multi, json_node):
        assert node.state == sl_states.NodeState("IDLE", frozenset({"DRAIN"}))
        assert node.state.drained and not node.state.available and not node.state.healthy
        assert node.reason is not None
        assert node.reason.text == "gres/gpu count reported lower than configured (0 < 2)"
        assert node.reason.gres_mismatch == sl_states.GresMismatch("gpu", None, 0, 2)
        assert node.gpus == 2
    # sinfo %E carries no user/time; scontrol has the [user@time] tail; JSON has both fields.
    assert sinfo_node.reason is not None and sinfo_node.reason.user is None
    assert multi.reason == sl_states.DrainReason(
        "gres/gpu count reported lower than configured (0 < 2)", "root", "2026-11-28T17:46:25"
    )
    assert json_node.reason is not None
    assert (json_node.reason.user, json_node.reason.timestamp) == ("root", "1795887985")


def test_drained_sandbox_partition_and_queue() -> None:
    (node,) = sl_nodes.parse_sinfo_nodes(
        fixture("sinfo_partitions_drained_sandbox_22.05.txt"), PARTITION_FORMAT
    )
    assert not node.state.available and not node.state.healthy
    (part,) = sl_nodes.parse_scontrol_partitions(
        fixture("scontrol_show_partition_o_drained_sandbox_22.05.txt")
    )
    assert part.up  # the partition stays UP while its only node is drained
    (job,) = sl_jobs.parse_squeue(fixture("squeue_drained_jobs_sandbox_22.05.txt"))
    assert job.state == "PENDING"
    assert job.reason == "ReqNodeNotAvail, UnavailableNodes:localhost"
    assert job.nodes == ()
    assert sl_jobs.parse_squeue(fixture("squeue_drained_sandbox_22.05.txt")) == []


def test_sacct_sandbox_jobs() -> None:
    recs = {r.job_id: r for r in sl_jobs.parse_sacct(fixture("sacct_P_n_jobs_sandbox_22.05.txt"))}
    assert recs["4.0"].step == "0" and recs["4.0"].job_name == "nvidia-smi"
    assert (recs["4"].state, recs["4"].exit_code) == ("FAILED", 2)
    assert recs["5"].succeeded and recs["5"].gpus == 1
    # Cancelled while pending on a drained node: no "by", no TRES, no node.
    assert recs["7"].state == "CANCELLED"
    assert recs["7"].cancelled_by is None
    assert recs["7"].alloc_tres == {}
    assert recs["7"].nodes == ()
    assert recs["7"].terminal and not recs["7"].succeeded
    jobs = [r for r in recs.values() if not r.is_step]
    assert [r.job for r in jobs] == ["1", "2", "3", "4", "5", "6", "7"]


# --- issue 15: pasted scontrol blocks (class 8) and cut sacct tables (class 7a) -------------


def test_scontrol_node_pasted_without_indentation() -> None:
    """Documentation and forum posts show `scontrol show node` flush left."""
    indented = fixture("scontrol_show_node_drained_sandbox_22.05.txt")
    flush = "\n".join(line.lstrip() for line in indented.splitlines())
    assert flush != indented
    assert sl_nodes.parse_scontrol_nodes(flush) == sl_nodes.parse_scontrol_nodes(indented)
    part = fixture("scontrol_show_partition_idle_sandbox_22.05.txt")
    assert sl_nodes.parse_scontrol_partitions(
        "\n".join(ln.lstrip() for ln in part.splitlines())
    ) == (sl_nodes.parse_scontrol_partitions(part))


def test_sacct_default_table_with_cut_state_raises() -> None:
    table = (
        "JobID           JobName  Partition    Account  AllocCPUS      State ExitCode \n"
        "------------ ---------- ---------- ---------- ---------- ---------- -------- \n"
        "3765959        mem_test       test   rc_admin          1  COMPLETED      0:0 \n"
        "3765959.bat+      batch              rc_admin          1  COMPLETED      0:0 \n"
    )
    with pytest.raises(ValueError, match="cut"):
        sl_jobs.parse_sacct(table)
    (job,) = sl_jobs.parse_sacct(table.rsplit("\n", 2)[0])
    assert job.succeeded and job.job_name == "mem_test"
    with pytest.raises(ValueError, match="cut"):
        sl_jobs.parse_sacct(
            table.replace(
                " COMPLETED      0:0 \n3765959.bat+", "OUT_OF_ME+    0:125 \n3765959.ext+", 1
            )
        )
