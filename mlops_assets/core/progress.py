"""Progress of a long `materialize` / `validate` on stderr: one line per finished asset or
check as the run's events arrive, so a 2-minute run is never silent. No Dagster imports.

Two renderings. `plain`: one line per finished item, nothing else, fit for logs and CI (a
CI runner's log is not a terminal, and many set `CI`). `live`: the same lines, plus a status
line at the bottom that keeps the count and the elapsed time current between events,
redrawn in place. stdout is never touched: it carries the report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TextIO

MODES = ("live", "plain", "none")


def progress_mode(choice: str, stream: TextIO, environ: Mapping[str, str]) -> str:
    """`auto` is live only on a terminal that can redraw a line and outside CI."""
    if choice != "auto":
        return choice
    if environ.get("CI", "").lower() not in ("", "0", "false"):
        return "plain"
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty() and environ.get("TERM", "") != "dumb":
        return "live"
    return "plain"


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m:d}:{s:02d}"


class Progress:
    """`finished(status, what, seconds)` per item; `close()` once at the end."""

    def __init__(
        self,
        stream: TextIO,
        *,
        total: int,
        mode: str = "plain",
        clock: Callable[[], float] = time.monotonic,
        tick_s: float = 1.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode {mode!r}: use one of {', '.join(MODES)}")
        self.stream, self.total, self.mode, self.clock = stream, total, mode, clock
        self.started = clock()
        self.done = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if mode == "live":
            self._ticker = threading.Thread(target=self._tick, args=(tick_s,), daemon=True)
            self._ticker.start()

    def line(self, status: str, what: str, seconds: float) -> str:
        """`[0:42]  12/115  PASS  asset check  (0.41s)`: elapsed since start, count, verdict."""
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        return (
            f"[{_clock(self.clock() - self.started)}] {count:>9}  {status:<4}  {what}"
            f"  ({seconds:.2f}s)"
        )

    def finished(self, status: str, what: str, seconds: float) -> None:
        if self.mode == "none":
            return
        with self._lock:
            self.done += 1
            self.failed += status in ("FAIL", "ERROR")
            text = self.line(status, what, seconds)
            if self.mode == "live":
                self.stream.write("\r\x1b[K" + text + "\n" + self._status())
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def _status(self) -> str:
        left = f", {self.total - self.done} to go" if self.total > self.done else ""
        fails = f", {self.failed} failed" if self.failed else ""
        return (
            f"  running for {_clock(self.clock() - self.started)}: "
            f"{self.done} finished{left}{fails}"
        )

    def _tick(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            with self._lock:
                self.stream.write("\r\x1b[K" + self._status())
                self.stream.flush()

    def close(self) -> None:
        """Stop the live view and leave the terminal at the start of an empty line."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        if self.mode == "live":
            with self._lock:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
