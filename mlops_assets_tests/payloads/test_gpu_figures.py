"""The training payloads' GPU figures (issue 19: peak memory, and GPU utilization where NVML
is present): smoke_common.GpuSampler sampling nvidia-smi, and mnist_ddp's gathering of every
rank's figures. There is no GPU here: `nvidia-smi` is a STAND-IN script on PATH printing what
the real one prints for `--query-gpu=utilization.gpu --format=csv,noheader,nounits`; the real
one's figures are in docs/gpu-evidence.md. Each runs in a fresh interpreter (the payloads put
their own folder on sys.path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PAYLOADS = Path(__file__).resolve().parents[2] / "mlops_assets" / "payloads"


def run_py(code: str, path_dir: Path | None = None) -> Any:
    env = dict(os.environ)
    if path_dir is not None:
        env["PATH"] = f"{path_dir}:{env['PATH']}"
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(PAYLOADS)!r}); {code}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_sampler_reads_nvidia_smi_utilization_for_the_job_gpu(tmp_path: Path) -> None:
    smi = tmp_path / "nvidia-smi"
    # answers by the -i index it is asked for, as the real one does: job GPU 3 -> 37 %
    smi.write_text('#!/bin/sh\n[ "$1" = "-i" ] && [ "$2" = "3" ] && echo 37 && exit 0\necho 99\n')
    smi.chmod(0o755)
    figures = run_py(
        "import os, json, time; os.environ['CUDA_VISIBLE_DEVICES'] = '3,1'; "
        "from smoke_common import GpuSampler\n"
        "with GpuSampler(interval=0.05) as s: time.sleep(0.6)\n"
        "print(json.dumps(s.figures()))",
        tmp_path,
    )
    assert figures["gpu_utilization_mean_pct"] == 37.0 and figures["gpu_utilization_max_pct"] == 37
    assert figures["gpu_utilization_samples"] >= 3


def test_sampler_without_nvml_reports_none_not_zero(tmp_path: Path) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    smi.chmod(0o755)
    figures = run_py(
        "import json, time\nfrom smoke_common import GpuSampler\n"
        "with GpuSampler(interval=0.05) as s: time.sleep(0.3)\n"
        "print(json.dumps(s.figures()))",
        tmp_path,
    )
    assert figures == {"gpu_utilization_mean_pct": None, "gpu_utilization_max_pct": None}


def test_ddp_gathers_every_rank_peak_memory_and_utilization() -> None:
    ranks = [
        {"cuda_peak": 2_000, "gpu_util": {"gpu_utilization_mean_pct": 80.0}},
        {"cuda_peak": 3_000, "gpu_util": {"gpu_utilization_mean_pct": None}},
        {"cuda_peak": 1_000, "gpu_util": {"gpu_utilization_mean_pct": 60.0}},
    ]
    got = run_py(f"import json, mnist_ddp; print(json.dumps(mnist_ddp._gpu_figures({ranks!r})))")
    assert got == {
        "cuda_max_memory_allocated_bytes": 3_000,
        "rank_cuda_max_memory_allocated_bytes": [2_000, 3_000, 1_000],
        "rank_gpu_utilization_mean_pct": [80.0, None, 60.0],
        "gpu_utilization_mean_pct": 70.0,  # of the ranks NVML answered for
    }
    cpu = [{"cuda_peak": None, "gpu_util": {}}] * 2
    assert (
        run_py(f"import json, mnist_ddp; print(json.dumps(mnist_ddp._gpu_figures({cpu!r})))") == {}
    )
