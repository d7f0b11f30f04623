"""core.node_watch: which GPU nodes the sensor sends smoke jobs to, and how cheap a tick is."""

from __future__ import annotations

from pathlib import Path

from mlops_assets.core import node_watch as nw

FIX = Path(__file__).parent / "fixtures"


def recorded(name: str) -> str:
    return "\n".join(ln for ln in (FIX / name).read_text().splitlines() if not ln.startswith("#@"))


def test_recorded_sandbox_states() -> None:
    assert nw.snapshot_from_sinfo(recorded("sinfo_N_idle_sandbox_22.05.txt"), "gpu") == {
        "localhost": "IDLE|gpu:2"
    }
    assert nw.snapshot_from_sinfo(recorded("sinfo_N_drained_sandbox_22.05.txt"), "gpu") == {
        "localhost": "IDLE+DRAIN|gpu:2"
    }
    assert nw.snapshot_from_sinfo(recorded("sinfo_N_idle_sandbox_22.05.txt"), "other") == {}


def test_first_tick_is_a_baseline() -> None:
    assert nw.changes(None, {"a": "IDLE|gpu:2"}) == []


def test_new_resumed_and_gres_changed_nodes_only() -> None:
    before = {
        "a": "IDLE|gpu:2",
        "b": "IDLE+DRAIN|gpu:2",
        "c": "MIXED|gpu:2",
        "d": "DOWN|gpu:2",
        "e": "IDLE|gpu:2",
    }
    after = {
        "a": "ALLOCATED|gpu:2",
        "b": "IDLE|gpu:2",
        "c": "MIXED|gpu:4",
        "d": "DOWN|gpu:2",
        "e": "IDLE+DRAIN|gpu:2",
        "f": "IDLE|gpu:8",
        "g": "IDLE+DRAIN|gpu:2",
    }
    found = {(c.node, c.reason) for c in nw.changes(before, after)}
    assert found == {("b", nw.RESUMED), ("c", nw.GRES_CHANGED), ("f", nw.NEW)}


def test_a_node_skipped_as_busy_is_asked_for_once_it_comes_free() -> None:
    before = {"a": "MIXED|gpu:8", "b": "ALLOCATED|gpu:8", "c": "ALLOCATED|gpu:8"}
    after = {"a": "IDLE|gpu:8", "b": "ALLOCATED|gpu:8", "c": "IDLE|gpu:8"}
    found = nw.changes(before, after, waiting={"a", "b"})
    assert [(c.node, c.reason) for c in found] == [("a", nw.FREED)]  # c was probed: not waiting
    assert nw.changes(after, after, waiting={"a"}) == []  # once, on the tick it came free


def test_usable_states() -> None:
    assert nw.usable("IDLE") and nw.usable("MIXED") and nw.usable("ALLOCATED+COMPLETING")
    for bad in (
        "IDLE+DRAIN",
        "DOWN",
        "DOWN+NOT_RESPONDING",
        "IDLE+NOT_RESPONDING",
        "MIXED+DRAIN",
        "IDLE+POWERED_DOWN",
        "DRAINED",
    ):
        assert not nw.usable(bad), bad


def test_cursor_round_trip_and_garbage() -> None:
    snap = {"a": "IDLE|gpu:2"}
    assert nw.decode_cursor(nw.encode_cursor(snap)) == snap
    for bad in (None, "", "not json", "[1]", '{"a": 1}'):
        assert nw.decode_cursor(bad) is None


def test_a_10000_node_tick_finds_every_resumed_node() -> None:
    """Correctness at fleet scale; its time is bench/fleet_sim.py's (node_tick_10000_s)."""
    lines = [
        f"gpu{i:05d}|gpu|{'idle' if i % 7 else 'drained'}|64|512000|gpu:8|"
        f"{'none' if i % 7 else 'bad DIMM'}"
        for i in range(10_000)
    ]
    text = "\n".join(lines)
    cursor = nw.encode_cursor(nw.snapshot_from_sinfo(text, "gpu"))
    resumed = text.replace("drained|64|512000|gpu:8|bad DIMM", "idle|64|512000|gpu:8|none")
    current = nw.snapshot_from_sinfo(resumed, "gpu")
    found = nw.changes(nw.decode_cursor(cursor), current)
    assert len(current) == 10_000
    assert [c.node for c in found] == [f"gpu{i:05d}" for i in range(0, 10_000, 7)]
