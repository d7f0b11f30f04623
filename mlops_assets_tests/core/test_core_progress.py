"""Progress lines on stderr: plain in logs and CI, a live status line on a terminal."""

from __future__ import annotations

import io

import pytest

from mlops_assets.core.progress import Progress, progress_mode


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_live_only_on_a_terminal_outside_ci() -> None:
    assert progress_mode("auto", Tty(), {"TERM": "xterm"}) == "live"
    assert progress_mode("auto", Tty(), {"TERM": "xterm", "CI": "true"}) == "plain"
    assert progress_mode("auto", Tty(), {"TERM": "dumb"}) == "plain"
    assert progress_mode("auto", io.StringIO(), {}) == "plain"
    assert progress_mode("auto", Tty(), {"CI": "false"}) == "live"
    assert progress_mode("none", Tty(), {}) == "none"


def test_plain_prints_one_line_per_finished_item_with_elapsed_count_status() -> None:
    now = [100.0]
    out = io.StringIO()
    p = Progress(out, total=3, mode="plain", clock=lambda: now[0])
    now[0] = 101.5
    p.finished("DONE", "dataset_mnist", 1.25)
    now[0] = 172.0
    p.finished("WARN", "gpu_nodes nvidia_smi_matches_gres", 0.4)
    p.close()
    assert out.getvalue().splitlines() == [
        "[0:01]       1/3  DONE  dataset_mnist  (1.25s)",
        "[1:12]       2/3  WARN  gpu_nodes nvidia_smi_matches_gres  (0.40s)",
    ]


def test_live_redraws_a_status_line_and_leaves_a_clean_line_at_close() -> None:
    out = Tty()
    p = Progress(out, total=2, mode="live", tick_s=3600)
    p.finished("FAIL", "slurm slurm_controller_up", 0.1)
    text = out.getvalue()
    assert text.startswith("\r\x1b[K[0:00]")
    assert text.endswith("1 finished, 1 to go, 1 failed")
    p.close()
    assert out.getvalue().endswith("\r\x1b[K")


def test_none_writes_nothing_and_bad_modes_are_refused() -> None:
    out = io.StringIO()
    p = Progress(out, total=1, mode="none")
    p.finished("PASS", "a c", 0.0)
    p.close()
    assert out.getvalue() == ""
    with pytest.raises(ValueError, match="progress mode"):
        Progress(out, total=1, mode="fancy")
