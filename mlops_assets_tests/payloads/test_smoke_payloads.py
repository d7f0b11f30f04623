"""The smoke payloads' judgement, on what they printed on real H200s (fixtures/, see
docs/gpu-evidence.md), and their no-CUDA path here, where there is no driver. No torch."""

from __future__ import annotations

import copy
import gzip
import json
import math
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops_assets.core import smoke_rules as rules
from mlops_assets.core.slurm_jobs import smoke_payload_config
from mlops_assets.payloads import mnist_train, nccl_allreduce, smoke_common
from mlops_assets.platform import active

FIX = Path(__file__).parent / "fixtures"
PAYLOADS = Path(__file__).parents[2] / "mlops_assets" / "payloads"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((FIX / f"{name}_h200x2.json").read_text())


def profiles() -> dict[str, Any]:
    return smoke_payload_config(active().catalog, "gpu")["gpu_profiles"]


# ------------------------------------------------------------------------------- GPU


def test_recorded_h200_figures_pass_the_catalog_profile() -> None:
    res = recorded("gpu_smoke")
    assert res["verdict"] == "PASS" and res["cuda_devices"] == 2
    judged = rules.judge_gpus(res["gpus"], profiles())
    assert judged["verdict"] == "PASS", judged["messages"]
    assert [g["profile"] for g in judged["gpus"]] == ["H200", "H200"]
    assert 700 < res["min_matmul_bf16_tflops"] < 1000 and 3500 < res["min_copy_gbps"] < 4800


def test_gpu_far_below_its_siblings_is_named() -> None:
    gpus = copy.deepcopy(recorded("gpu_smoke")["gpus"])
    gpus[1]["matmul_bf16_tflops"] = 0.7 * gpus[0]["matmul_bf16_tflops"]
    gpus.append({**gpus[0], "index": 2})
    judged = rules.judge_gpus(gpus, profiles())
    assert judged["verdict"] == "FAIL"
    assert [o["index"] for o in judged["outliers"]] == [1]
    assert any("GPU 1" in m and "far below its siblings" in m for m in judged["messages"])
    assert judged["gpus"][0]["verdict"] == "PASS" and judged["gpus"][1]["verdict"] == "FAIL"


@pytest.mark.parametrize(
    ("measured", "verdict"),
    [(780, "PASS"), (702, "PASS"), (700, "WARN"), (585, "WARN"), (584, "FAIL"), (None, "FAIL")],
)
def test_reframe_style_bands(measured: float | None, verdict: str) -> None:
    assert rules.judge_value(measured, 780, 0.9, 0.75) == verdict


@pytest.mark.parametrize(
    ("name", "profile"),
    [
        ("NVIDIA H200", "H200"),
        ("NVIDIA H100 80GB HBM3", "H100"),
        ("NVIDIA A100-SXM4-80GB", "A100"),
        ("NVIDIA A100-SXM4-40GB", "A100_40GB"),
        ("NVIDIA L40S", "L40S"),
        ("Tesla T4", None),
    ],
)
def test_profile_matching_prefers_the_longest_match(name: str, profile: str | None) -> None:
    assert rules.match_profile(name, profiles()) == profile


def test_gpu_without_profile_is_a_warning_that_says_so() -> None:
    judged = rules.judge_gpus(
        [{"index": 0, "name": "Tesla T4", "matmul_bf16_tflops": 60, "copy_gbps": 250}], profiles()
    )
    assert judged["verdict"] == "WARN" and "no profile" in judged["messages"][0]


def test_no_gpu_measured_is_a_failure() -> None:
    assert rules.judge_gpus([], profiles())["verdict"] == "FAIL"


# ------------------------------------------------------------------------------ NCCL


def test_recorded_allreduce_passes_with_busbw_at_4gib() -> None:
    res = recorded("nccl_allreduce")
    judged = rules.judge_nccl(res, expected_busbw_gbps=329)
    assert judged["verdict"] == "PASS"
    assert judged["size_bytes"] == 4 << 30 and judged["busbw_gbps"] == res["busbw_gbps"] > 300
    for s in res["sizes"]:  # 2 ranks: busbw = algbw * 2(n-1)/n = algbw
        assert s["busbw_gbps"] == pytest.approx(rules.bus_bandwidth(s["algbw_gbps"], 2), abs=0.01)


def test_allreduce_with_one_wrong_value_fails_however_fast() -> None:
    res = copy.deepcopy(recorded("nccl_allreduce"))
    res["sizes"][1]["wrong"] = 1
    for s in res["sizes"]:
        s["busbw_gbps"] *= 10
    judged = rules.judge_nccl(res, expected_busbw_gbps=329)
    assert judged["verdict"] == "FAIL"
    assert "16777216 B: 1 of 16777216 values wrong" in judged["messages"][0]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.update(sizes=[]),
        lambda r: r.update(world_size=1),
        lambda r: r["sizes"][0].pop("wrong"),
        lambda r: r["sizes"][2].update(checked=0),
        lambda r: r.update(sizes=[s for s in r["sizes"] if s["bytes"] < (1 << 30)]),
        lambda r: [s.update(busbw_gbps=100.0) for s in r["sizes"]],
    ],
    ids=["no-sizes", "one-rank", "malformed", "unverified", "no-1GiB", "slow"],
)
def test_allreduce_never_passes_on_missing_or_malformed_results(mutate: Any) -> None:
    res = copy.deepcopy(recorded("nccl_allreduce"))
    mutate(res)
    assert rules.judge_nccl(res, expected_busbw_gbps=329)["verdict"] == "FAIL"


def test_exact_verification_counts_every_wrong_element() -> None:
    expected = [float((i % 251 + 1) * 3) for i in range(1000)]
    got = list(expected)
    assert rules.verify_exact(got, expected) == 0
    got[17] += 1e-3
    got[500] = math.nan
    assert rules.verify_exact(got, expected) == 2
    assert rules.verify_exact(got[:-5], expected) == 7


def test_combine_a_rank_that_did_not_report_a_size_leaves_it_unverified() -> None:
    rank0 = {"records": [{"bytes": 1 << 30, "seconds": 0.0033, "wrong": 0, "checked": 10}]}
    rank1: dict[str, Any] = {"records": []}
    sizes = nccl_allreduce.combine([rank0, rank1], 2)
    assert sizes[0]["checked"] == 0
    assert rules.judge_nccl({"world_size": 2, "sizes": sizes})["verdict"] == "FAIL"


# ------------------------------------------------------------------------ fake GPUs


def test_cpu_fallback_verified_is_a_warning_that_says_the_gpus_are_fake() -> None:
    judged = rules.judge_cpu_fallback(
        {"float32 matmul": True, "memory copy": True},
        "the GPU smoke",
        {"device": "cpu", "cpu_matmul_fp32_gflops": 2.5, "cpu_copy_gbps": 10.0},
    )
    assert judged["verdict"] == "WARN", "never PASS: no GPU was measured"
    assert any(rules.FAKE_GPUS in m and "GPU figures are absent" in m for m in judged["messages"])


@pytest.mark.parametrize(
    ("checks", "result", "named"),
    [
        ({"float32 matmul": False, "memory copy": True}, {}, "float32 matmul gave wrong values"),
        ({}, {}, "nothing was verified"),
        ({"memory copy": True}, {"min_matmul_bf16_tflops": 700.0}, "min_matmul_bf16_tflops"),
        ({"memory copy": True}, {"gpu0_copy_gbps": 4000.0}, "gpu0_copy_gbps"),
        ({"all-reduce": True}, {"busbw_gbps": 1.0}, "busbw_gbps"),
    ],
    ids=["wrong-matmul", "unverified", "bf16-figure", "per-gpu-figure", "nccl-busbw"],
)
def test_cpu_fallback_fails_on_wrong_values_or_any_gpu_figure(
    checks: dict[str, bool], result: dict[str, Any], named: str
) -> None:
    judged = rules.judge_cpu_fallback(checks, "x", result)
    assert judged["verdict"] == "FAIL" and any(named in m for m in judged["messages"]), judged


def test_gpu_figures_are_told_from_cpu_figures() -> None:
    meta = {
        "cpu_matmul_fp32_gflops": 2.5,
        "cpu_copy_gbps": 10.0,
        "cpu_allreduce_busbw_gbps": 1.0,
        "gpus_visible": 2,
        "gpu0_matmul_bf16_tflops": 776.0,
        "min_copy_gbps": 4168.8,
        "busbw_gbps": None,
        "copy_gbps": 1.0,
    }
    assert rules.gpu_figures_in(meta) == ["copy_gbps", "gpu0_matmul_bf16_tflops", "min_copy_gbps"]


def _gloo(wrong: int = 0) -> dict[str, Any]:
    sizes = [
        {"bytes": b, "wrong": wrong if b == 16 << 20 else 0, "checked": b // 2, "busbw_gbps": 1.0}
        for b in (1 << 20, 16 << 20)
    ]
    return {
        "world_size": 2,
        "backend": "gloo (fake GPUs: CPU processes)",
        "sizes": sizes,
        "cpu_allreduce_busbw_gbps": 1.0,
    }


def test_allreduce_on_cpu_exact_is_a_warning_without_a_1gib_size() -> None:
    judged = rules.judge_allreduce_on_cpu(_gloo())
    assert judged["verdict"] == "WARN" and any(
        "gloo, CPU processes" in m for m in judged["messages"]
    )


def test_allreduce_on_cpu_with_one_wrong_value_fails() -> None:
    judged = rules.judge_allreduce_on_cpu(_gloo(wrong=1))
    assert judged["verdict"] == "FAIL"
    assert "16777216 B: 1 of 8388608 values wrong after all-reduce" in judged["messages"]
    res = _gloo()
    res["sizes"][0]["checked"] = 0
    assert rules.judge_allreduce_on_cpu(res)["verdict"] == "FAIL", (
        "an unverified size is no pass either"
    )
    assert rules.judge_allreduce_on_cpu({**_gloo(), "world_size": 1})["verdict"] == "FAIL"


# ----------------------------------------------------------------------------- MNIST


def test_recorded_mnist_run_meets_mlops_1_1() -> None:
    res = recorded("mnist_train")
    cat = active().catalog.smoke
    judged = rules.judge_mnist(
        res, min_accuracy=cat.mnist_min_accuracy, max_seconds=cat.mnist_max_seconds
    )
    assert judged["verdict"] == "PASS" and res["accuracy"] > 0.95 and res["epochs"] == 5
    metrics = json.loads((FIX / "mnist_metrics_h200x2.json").read_text())
    assert {"epochs", "loss", "accuracy", "training_time_seconds"} <= set(metrics)
    assert metrics["epoch_losses"] == sorted(metrics["epoch_losses"], reverse=True)


def test_mnist_on_cpu_learns_but_one_epoch_misses_the_gpu_threshold() -> None:
    res = recorded("mnist_train_cpu")
    assert res["device"] == "cpu" and res["cpu_fallback"] is True
    assert 0.5 < res["accuracy"] < 0.95 and res["verdict"] == "FAIL"


def _idx(path: Path, magic_dtype: int, shape: tuple[int, ...], body: bytes) -> None:
    header = b"\x00\x00" + bytes([magic_dtype, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    with gzip.open(str(path) + ".gz", "wb") as fh:
        fh.write(header + body)


def test_read_idx_reads_gz_and_rejects_bad_files(tmp_path: Path) -> None:
    _idx(tmp_path / "ok", 0x08, (2, 2, 2), bytes(range(8)))
    assert mnist_train.read_idx(str(tmp_path / "ok")) == ((2, 2, 2), bytes(range(8)))
    _idx(tmp_path / "short", 0x08, (2, 2, 2), bytes(range(7)))
    with pytest.raises(ValueError, match="file holds 7"):
        mnist_train.read_idx(str(tmp_path / "short"))
    _idx(tmp_path / "float", 0x0D, (2,), bytes(8))
    with pytest.raises(ValueError, match="unsigned-byte"):
        mnist_train.read_idx(str(tmp_path / "float"))
    with pytest.raises(FileNotFoundError, match="materialize dataset_mnist"):
        mnist_train.read_idx(str(tmp_path / "missing"))


# ---------------------------------------------------------------- no CUDA, here


def test_driver_probe_here_says_no_cuda_device() -> None:
    probe = smoke_common.cuda_driver_probe()
    assert probe["devices"] == 0 and probe["error"].startswith(rules.NO_CUDA)


@pytest.mark.parametrize("payload", ["gpu_smoke.py", "nccl_allreduce.py", "mnist_train.py"])
def test_payloads_fail_honestly_without_cuda(payload: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(PAYLOADS / payload)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1, proc.stderr
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert line["verdict"] == "FAIL" and line["error"].startswith("no CUDA device")
    assert not any(k.endswith(("tflops", "gbps")) and v is not None for k, v in line.items())


def test_recorded_hidden_gpus_fail_although_nvidia_smi_lists_two() -> None:
    res = recorded("gpu_smoke_hidden")
    assert res["verdict"] == "FAIL" and res["nvidia_smi_gpus"] == 2 and res["cuda_devices"] == 0
    assert res["error"].startswith("no CUDA device")


def test_args_config_then_set(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"iters": 5, "name": "x"}))
    out = smoke_common.parse_args(
        ["--config", str(cfg), "--set", "iters=7", "--set", "label=plain text"],
        {"iters": 1, "warmup": 2},
    )
    assert out == {"iters": 7, "warmup": 2, "name": "x", "label": "plain text"}


# ------------------------------------------------------- nvidia-smi inventory on the HPC side

CORPUS_CSV = Path(__file__).parents[1] / "corpus" / "nvidia_smi_csv"


def _replaying_nvidia_smi(tmp_path: Path, case: str) -> tuple[dict[str, str], str]:
    """A `nvidia-smi` on PATH that answers the recorded command of a corpus case with its
    recorded output (and refuses any other command line)."""
    import shlex

    import yaml

    meta = yaml.safe_load((CORPUS_CSV / f"{case}.yaml").read_text())
    args = shlex.split(meta["command"])[1:]
    fields = args[0].removeprefix("--query-gpu=")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "nvidia-smi"
    exe.write_text(
        "#!/bin/sh\n"
        f'[ "$*" = {shlex.quote(" ".join(args))} ] || {{ echo "unexpected: $*" >&2; exit 2; }}\n'
        f"cat {shlex.quote(str(CORPUS_CSV / f'{case}.txt'))}\n"
    )
    exe.chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}, fields


def test_inventory_reads_na_as_none_with_the_core_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recorded `[N/A]` fan speed (i3pystatus PR 776): None, not the text, as
    core/parse/nvidia_smi reads it."""
    env, fields = _replaying_nvidia_smi(tmp_path, "fan_na_new_driver_i3pystatus776")
    monkeypatch.setenv("PATH", env["PATH"])
    inv = smoke_common.nvidia_smi_inventory(fields)
    assert inv["exit_code"] == 0 and "error" not in inv, inv
    assert inv["gpus"] == [
        {
            "memory.total": "2004",
            "memory.free": "2004",
            "memory.used": "0",
            "temperature.gpu": "44",
            "fan.speed": None,
            "utilization.gpu": "0",
            "utilization.memory": "0",
        }
    ]


def test_shipped_payload_dir_parses_na_with_the_stdlib_only(tmp_path: Path) -> None:
    """As the smoke client ships them: the smoke kit into one folder, run by a bare
    interpreter (-I: no site-packages, no mlops_assets), nvidia-smi replaying the record."""
    from mlops_assets.core.transport.hostexec import LocalRunner
    from mlops_assets.resources.shipping import SMOKE, ship_payloads

    ship = Path(ship_payloads(LocalRunner(), str(tmp_path), SMOKE))
    env, fields = _replaying_nvidia_smi(tmp_path, "fan_na_new_driver_i3pystatus776")
    code = (
        "import json, smoke_common; "
        f"print(json.dumps(smoke_common.nvidia_smi_inventory({fields!r})))"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(ship)!r}); {code}"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ship,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    inv = json.loads(proc.stdout)
    assert inv["gpus"][0]["fan.speed"] is None and inv["gpus"][0]["temperature.gpu"] == "44"
    # the shipped copy, not the source tree (which is not beside it), answered the import
    assert not (ship.parent / "core").exists()
