"""The Pipes message reader's drain after a payload ended: every message read, and a file
that fits one read costs one read (each read is an SSH round trip in production)."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from mlops_assets.core.transport.hostexec import CommandResult, LocalRunner
from mlops_assets.resources.hpc_pipes import READ_CHUNK, RunnerFileMessageReader


class CountingRunner(LocalRunner):
    """A real LocalRunner that counts the commands it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        self.count += 1
        return super().run(argv, timeout_s=timeout_s, env=env)


class Collect:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def handle_message(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


def drain(path: Path) -> tuple[list[dict[str, Any]], int]:
    runner = CountingRunner()
    reader = RunnerFileMessageReader(runner, str(path), poll_s=0.01)
    handler = Collect()
    done = threading.Event()
    done.set()  # the payload has ended: only the drain runs
    reader._loop(cast(Any, handler), done)
    assert not reader.errors, reader.errors
    return handler.messages, runner.count


def write(path: Path, count: int, pad: int) -> list[dict[str, Any]]:
    msgs = [{"method": "log", "params": {"i": i, "pad": "x" * pad}} for i in range(count)]
    path.write_text("".join(json.dumps(m) + "\n" for m in msgs))
    return msgs


def test_a_small_message_file_is_drained_in_one_read(tmp_path: Path) -> None:
    path = tmp_path / "messages.jsonl"
    msgs = write(path, 20, 10)
    got, reads = drain(path)
    assert got == msgs and reads == 1


def test_a_message_file_larger_than_a_read_is_drained_whole(tmp_path: Path) -> None:
    path = tmp_path / "messages.jsonl"
    msgs = write(path, 40, 10_000)  # ~400 KB: several READ_CHUNKs
    assert path.stat().st_size > 2 * READ_CHUNK
    got, reads = drain(path)
    assert got == msgs and reads >= 3
