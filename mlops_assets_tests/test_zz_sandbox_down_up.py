"""Last (by name): `down` stops every process `up` started, by PID, and leaves none behind;
`up` then brings the same sandbox back (always, even when an assertion fails), so a
developer's machine is left as it was."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SANDBOX = REPO / "deploy" / "sandbox" / "sandbox.sh"


def _alive(pids: dict[str, int]) -> list[str]:
    return [name for name, pid in pids.items() if os.path.exists(f"/proc/{pid}")]


def test_down_leaves_no_process_and_up_restores(sandbox: Path) -> None:
    pids = {
        p.stem: int(p.read_text().strip())
        for p in (sandbox / "pids").glob("*.pid")
        if p.read_text().strip()
    }
    assert pids, "the sandbox recorded no PIDs"
    try:
        down = subprocess.run(
            ["bash", str(SANDBOX), "down"], capture_output=True, text=True, timeout=300, check=False
        )
        assert down.returncode == 0, down.stdout[-3000:] + down.stderr[-3000:]
        deadline = time.monotonic() + 15  # a process may still be reaping its children
        while _alive(pids) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _alive(pids), f"still running after down: {_alive(pids)}"
        status = subprocess.run(
            ["bash", str(SANDBOX), "status"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert status.returncode != 0
    finally:
        up = subprocess.run(
            ["bash", str(SANDBOX), "up"], capture_output=True, text=True, timeout=600, check=False
        )
    assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
    assert (
        subprocess.run(
            ["bash", str(SANDBOX), "status"], capture_output=True, timeout=120, check=False
        ).returncode
        == 0
    )
