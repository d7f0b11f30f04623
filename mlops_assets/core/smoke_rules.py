"""Judging GPU, NCCL, MNIST and SFT smoke results: pure, standard library only.

The smoke payloads measure on the HPC side and judge there, so one result line says
everything; the orchestrator ships this file next to them as ``mlops_smoke_rules.py`` (the
same trick staging uses for core/manifest.py). Tests import it from here.

- GPU: a per-model profile (``smoke.gpu_profiles`` in the catalog) holds the expected bf16
  matmul TFLOP/s and device-copy GB/s with warn and fail fractions, as ReFrame references
  ``(value, lower, upper, unit)`` do; a GPU far below the median of its siblings is named.
- NCCL: every element of every all-reduce is compared EXACTLY with the expected sum; any
  wrong value, a missing size or a malformed record is a failure, never a pass. Bus
  bandwidth is ``algbw * 2(n-1)/n`` and is judged only at sizes of at least 1 GiB.
- MNIST: validation task MLOPS-1.1 (accuracy above the catalog's minimum, wall time below
  its maximum).
- SFT: validation task MLOPS-1.2's loop (loss falls by the catalog's fraction, finite, in
  time, the checkpoint reloads); a stand-in model says so in every verdict.
- Fake GPUs (the catalog's ``hpc.gpus.fake``, the sandbox): the payloads measure on the CPU,
  name those figures as CPU figures and report no GPU figure; correctness still decides
  between FAIL and not-FAIL, and the best such result is a WARN that says the GPUs are fake,
  never a PASS that reads as if a GPU had been measured.

Multi-node DDP runs are judged by core/ddp_rules.py (shipped as ``mlops_ddp_rules.py``) with
the verdict words and helpers defined here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
_RANK = {PASS: 0, WARN: 1, FAIL: 2}
GIB = 1 << 30
NO_CUDA = "no CUDA device"
FAKE_GPUS = "fake GPUs"
#: Result keys that only a GPU measurement may carry (absent from a CPU-fallback result).
GPU_ONLY_FIGURES = ("matmul_bf16_tflops", "copy_gbps", "busbw_gbps")


def worst(verdicts: Sequence[str]) -> str:
    """The worst of PASS < WARN < FAIL (PASS for none)."""
    return max(verdicts, key=lambda v: _RANK[v], default=PASS)


def judge_value(
    measured: float | None, expected: float | None, warn_fraction: float, fail_fraction: float
) -> str:
    """ReFrame-style lower bound: PASS at >= warn_fraction * expected, WARN at >= fail_fraction,
    FAIL below or when nothing was measured. No expectation → PASS (nothing to compare)."""
    if measured is None:
        return FAIL
    if expected is None or expected <= 0:
        return PASS
    ratio = measured / expected
    if ratio >= warn_fraction:
        return PASS
    return WARN if ratio >= fail_fraction else FAIL


def match_profile(gpu_name: str, profiles: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The profile whose ``match`` substring (case-insensitive) is the longest one found in
    the GPU's name: 'NVIDIA H100 NVL' prefers a 'H100 NVL' profile over 'H100'."""
    name = gpu_name.upper()
    best: tuple[int, str] | None = None
    for key, prof in profiles.items():
        pats = prof.get("match") or [key]
        for pat in [pats] if isinstance(pats, str) else pats:
            if str(pat).upper() in name and (best is None or len(str(pat)) > best[0]):
                best = (len(str(pat)), key)
    return best[1] if best else None


def nccl_expectation(
    gpu_name: str,
    profiles: Mapping[str, Mapping[str, Any]],
    *,
    expected_busbw_gbps: float | None = None,
    warn_fraction: float = 0.9,
    fail_fraction: float = 0.75,
) -> tuple[str | None, dict[str, Any]]:
    """(profile key, judge_nccl's bandwidth keywords) for a GPU: an explicit expectation wins;
    else the GPU's profile gives its all-reduce bus bandwidth and may tighten the fractions.
    One rule for the smoke payload and for pasted nccl-tests output."""
    key = match_profile(gpu_name, profiles) if gpu_name else None
    if expected_busbw_gbps is None and key is not None:
        prof = profiles[key]
        expected_busbw_gbps = prof.get("allreduce_busbw_gbps")
        warn_fraction = float(prof.get("warn_fraction", warn_fraction))
        fail_fraction = float(prof.get("fail_fraction", fail_fraction))
    return key, {
        "expected_busbw_gbps": expected_busbw_gbps,
        "warn_fraction": warn_fraction,
        "fail_fraction": fail_fraction,
    }


def judge_gpus(
    gpus: Sequence[Mapping[str, Any]],
    profiles: Mapping[str, Mapping[str, Any]],
    *,
    sibling_min_fraction: float = 0.85,
) -> dict[str, Any]:
    """Per-GPU verdicts for ``[{index, name, matmul_bf16_tflops, copy_gbps}, ...]``.

    Each figure is judged against the GPU model's profile; a GPU without a profile is a WARN
    (nothing to compare against, said so). A GPU whose figure is below ``sibling_min_fraction``
    of the median of the node's GPUs of the same model is named as an outlier (FAIL): a
    node's worst GPU sets the pace of every data-parallel job on it.
    """
    if not gpus:
        return {
            "verdict": FAIL,
            "gpus": [],
            "outliers": [],
            "messages": [f"{NO_CUDA}: no GPU measured"],
        }
    per_gpu: list[dict[str, Any]] = []
    messages: list[str] = []
    for g in gpus:
        idx, name = g.get("index"), str(g.get("name", "?"))
        key = match_profile(name, profiles)
        entry: dict[str, Any] = {"index": idx, "name": name, "profile": key}
        if key is None:
            entry["verdict"] = WARN
            messages.append(
                f"GPU {idx} ({name}): no profile in smoke.gpu_profiles, figures not judged"
            )
            per_gpu.append(entry)
            continue
        prof = profiles[key]
        warn_f, fail_f = (
            float(prof.get("warn_fraction", 0.9)),
            float(prof.get("fail_fraction", 0.75)),
        )
        verdicts = []
        for field, ref in (
            ("matmul_bf16_tflops", "matmul_bf16_tflops"),
            ("copy_gbps", "copy_gbps"),
        ):
            measured = g.get(field)
            expected = prof.get(ref)
            v = judge_value(measured, expected, warn_f, fail_f)
            entry[f"{field}_verdict"] = v
            verdicts.append(v)
            if v != PASS:
                shown = "nothing" if measured is None else f"{measured:.1f}"
                messages.append(
                    f"GPU {idx} ({name}) {field} {shown} vs expected {expected} for {key}"
                    f" (warn below {warn_f:.0%}, fail below {fail_f:.0%}): {v}"
                )
        entry["verdict"] = worst(verdicts)
        per_gpu.append(entry)
    outliers = sibling_outliers(gpus, sibling_min_fraction)
    for o in outliers:
        messages.append(
            f"GPU {o['index']} ({o['name']}) {o['field']} {o['value']:.1f} is {o['fraction']:.0%}"
            f" of its siblings' median {o['median']:.1f}: far below its siblings"
        )
        for e in per_gpu:
            if e["index"] == o["index"]:
                e["verdict"] = FAIL
    return {
        "verdict": worst([e["verdict"] for e in per_gpu]),
        "gpus": per_gpu,
        "outliers": outliers,
        "messages": messages,
    }


def sibling_outliers(
    gpus: Sequence[Mapping[str, Any]], min_fraction: float
) -> list[dict[str, Any]]:
    """GPUs of one model on one node whose figure is below ``min_fraction`` of the median."""
    out: list[dict[str, Any]] = []
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for g in gpus:
        by_model.setdefault(str(g.get("name", "?")), []).append(g)
    for group in by_model.values():
        if len(group) < 2:
            continue
        for field in ("matmul_bf16_tflops", "copy_gbps"):
            values = [float(g[field]) for g in group if isinstance(g.get(field), int | float)]
            if len(values) < 2:
                continue
            med = statistics.median(values)
            for g in group:
                v = g.get(field)
                if isinstance(v, int | float) and med > 0 and v < min_fraction * med:
                    out.append(
                        {
                            "index": g.get("index"),
                            "name": g.get("name"),
                            "field": field,
                            "value": float(v),
                            "median": med,
                            "fraction": float(v) / med,
                        }
                    )
    return out


# ----------------------------------------------------------------------------- NCCL


def bus_bandwidth(algbw_gbps: float, world_size: int) -> float:
    """nccl-tests' all-reduce bus bandwidth: algbw * 2(n-1)/n."""
    if world_size < 1:
        raise ValueError("world_size must be >= 1")
    return algbw_gbps * 2 * (world_size - 1) / world_size


def verify_exact(got: Sequence[float], expected: Sequence[float]) -> int:
    """How many elements differ (exact comparison; NaN never equals). A length mismatch
    counts every missing or extra element as wrong."""
    wrong = abs(len(got) - len(expected))
    for a, b in zip(got, expected, strict=False):
        if a != b:  # NaN != NaN: a NaN is always wrong
            wrong += 1
    return wrong


def judge_nccl(
    result: Mapping[str, Any],
    *,
    min_world_size: int = 2,
    expected_busbw_gbps: float | None = None,
    warn_fraction: float = 0.9,
    fail_fraction: float = 0.75,
    min_size_bytes: int = GIB,
    judge_bandwidth: bool = True,
) -> dict[str, Any]:
    """Judge an all-reduce result ``{world_size, sizes: [{bytes, wrong, checked, busbw_gbps}]}``.

    FAIL when: fewer ranks than required; no size was measured; any record is malformed,
    checked no element, or has a wrong value; no size of at least ``min_size_bytes``; or the
    bus bandwidth there is below ``fail_fraction`` of the expectation. Correctness first:
    a fast wrong answer is a failure.

    WARN "unjudged" when there is no expected bus bandwidth (the GPU's profile has none, or
    there is no profile): a slow all-reduce must not pass silently. ``checked: None`` means
    the tool did not verify the values (nccl-tests ``-c 0``): a WARN, not a pass.
    ``judge_bandwidth=False`` (a CPU stand-in run) leaves bandwidth out entirely.
    """
    messages: list[str] = []
    verdicts: list[str] = []
    n = result.get("world_size")
    if not isinstance(n, int) or n < min_world_size:
        verdicts.append(FAIL)
        messages.append(f"all-reduce ran on {n} ranks, need {min_world_size}")
    sizes = result.get("sizes")
    if not isinstance(sizes, list) or not sizes:
        return {
            "verdict": FAIL,
            "messages": [*messages, "no all-reduce size was measured"],
            "busbw_gbps": None,
            "size_bytes": None,
        }
    big: Mapping[str, Any] | None = None
    unverified: list[int] = []
    for rec in sizes:
        if (
            isinstance(rec, dict)
            and rec.get("checked", 0) is None
            and rec.get("wrong") is None
            and "bytes" in rec
        ):
            unverified.append(int(rec["bytes"]))
            if (
                int(rec["bytes"]) >= min_size_bytes
                and isinstance(rec.get("busbw_gbps"), int | float)
                and (big is None or int(rec["bytes"]) > int(big["bytes"]))
            ):
                big = rec
            continue
        try:
            nbytes, wrong, checked = int(rec["bytes"]), int(rec["wrong"]), int(rec["checked"])
        except (KeyError, TypeError, ValueError):
            verdicts.append(FAIL)
            messages.append(f"malformed all-reduce record {rec!r}")
            continue
        if checked <= 0:
            verdicts.append(FAIL)
            messages.append(f"{nbytes} B: no element was verified")
        if wrong != 0:
            verdicts.append(FAIL)
            messages.append(f"{nbytes} B: {wrong} of {checked} values wrong after all-reduce")
        if (
            nbytes >= min_size_bytes
            and isinstance(rec.get("busbw_gbps"), int | float)
            and (big is None or nbytes > int(big["bytes"]))
        ):
            big = rec
    if unverified:
        verdicts.append(WARN)
        messages.append(
            f"values not verified at {len(unverified)} size(s) (validation off, nccl-tests -c "
            "0): correctness unjudged"
        )
    busbw = None
    if big is None:
        verdicts.append(FAIL)
        messages.append(
            f"no verified size of at least {min_size_bytes} B: bus bandwidth is only compared there"
        )
    else:
        busbw = float(big["busbw_gbps"])
        if judge_bandwidth and (expected_busbw_gbps is None or expected_busbw_gbps <= 0):
            verdicts.append(WARN)
            messages.append(
                f"unjudged: no expected bus bandwidth for {_gpu_named(result)}: busbw "
                f"{busbw:.1f} GB/s at {int(big['bytes'])} B not compared"
            )
        elif judge_bandwidth:
            v = judge_value(busbw, expected_busbw_gbps, warn_fraction, fail_fraction)
            verdicts.append(v)
            if v != PASS:
                messages.append(
                    f"busbw {busbw:.1f} GB/s at {int(big['bytes'])} B vs expected "
                    f"{expected_busbw_gbps}: {v}"
                )
    return {
        "verdict": worst(verdicts),
        "messages": messages,
        "busbw_gbps": busbw,
        "size_bytes": int(big["bytes"]) if big is not None else None,
    }


def _gpu_named(result: Mapping[str, Any]) -> str:
    """'NVIDIA A100-SXM4-80GB (profile A100 has no allreduce_busbw_gbps)'
    or '... (no profile ...)'."""
    gpu = str(result.get("gpu_name") or "this GPU")
    profile = result.get("profile")
    return (
        f"{gpu} (profile {profile} has no allreduce_busbw_gbps)"
        if profile
        else f"{gpu} (no profile in smoke.gpu_profiles)"
    )


# ------------------------------------------------------------------------ fake GPUs


def gpu_figures_in(result: Mapping[str, Any]) -> list[str]:
    """Keys of ``result`` that are GPU-only figures (``gpu<N>_*``, ``*matmul_bf16_tflops``,
    ``*copy_gbps``, ``*busbw_gbps``; ``cpu_*`` are CPU figures) holding a value: a
    CPU-fallback result must have none."""
    out = []
    for key, value in result.items():
        if value is None or key.startswith("cpu_"):
            continue
        if (key.startswith("gpu") and key[3:4].isdigit()) or any(
            key == f or key.endswith("_" + f) for f in GPU_ONLY_FIGURES
        ):
            out.append(key)
    return sorted(out)


def judge_cpu_fallback(
    checks: Mapping[str, bool], what: str, result: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A payload that ran on the CPU because the catalog declares the GPUs fake.

    ``checks``: name → whether that CPU measurement verified its own result. Any failed or
    missing check, or any GPU-only figure in ``result``, is a FAIL; otherwise WARN with a
    message saying the GPUs are fake and what ran instead: never PASS, which would read as
    if a GPU had been measured."""
    messages: list[str] = []
    verdicts: list[str] = []
    if not checks:
        verdicts.append(FAIL)
        messages.append(f"{what}: nothing was verified")
    for name, ok in checks.items():
        if not ok:
            verdicts.append(FAIL)
            messages.append(f"{what}: {name} gave wrong values")
    invented = gpu_figures_in(result or {})
    if invented:
        verdicts.append(FAIL)
        messages.append(f"{what}: GPU figures {', '.join(invented)} in a CPU result")
    verdicts.append(WARN)
    messages.append(
        f"{FAKE_GPUS} (the catalog's hpc.gpus.fake): {what} ran on the CPU; GPU figures are "
        "absent, not measured"
    )
    return {"verdict": worst(verdicts), "messages": messages}


def judge_allreduce_on_cpu(result: Mapping[str, Any], *, min_world_size: int = 2) -> dict[str, Any]:
    """An all-reduce over CPU processes (gloo) where the GPUs are fake: every value verified
    exactly as for NCCL (a wrong, missing or unverified value is a FAIL), bandwidth not
    judged (it is loopback memory traffic, no GPU figure); otherwise a WARN that says so."""
    exact = judge_nccl(
        result, min_world_size=min_world_size, min_size_bytes=0, judge_bandwidth=False
    )
    cpu = judge_cpu_fallback(
        {"all-reduce": exact["verdict"] != FAIL},
        f"the {result.get('world_size')}-rank all-reduce (gloo, CPU processes)",
    )
    messages = [*exact["messages"], *(m for m in cpu["messages"] if "gave wrong values" not in m)]
    return {"verdict": worst([exact["verdict"], cpu["verdict"]]), "messages": messages}


# ---------------------------------------------------------------------------- MNIST


def judge_mnist(
    metrics: Mapping[str, Any], *, min_accuracy: float, max_seconds: float
) -> dict[str, Any]:
    """MLOPS-1.1: accuracy above ``min_accuracy`` and the run done within ``max_seconds``."""
    messages: list[str] = []
    verdicts: list[str] = []
    acc, secs = (
        metrics.get("accuracy"),
        metrics.get("total_seconds", metrics.get("training_time_seconds")),
    )
    if not isinstance(acc, int | float) or not acc > min_accuracy:
        verdicts.append(FAIL)
        messages.append(f"test accuracy {acc} not above {min_accuracy}")
    if not isinstance(secs, int | float) or secs >= max_seconds:
        verdicts.append(FAIL)
        messages.append(f"took {secs} s, limit {max_seconds} s")
    return {"verdict": worst(verdicts), "messages": messages}


# ----------------------------------------------------------------- SFT (MLOPS-1.2)

#: SmolLM-135M's parameter count (tied embeddings): a model of another size is a stand-in.
SFT_TASK_PARAMETERS = 134_515_008
STAND_IN = "stand-in"


def sft_stand_in(parameters: int | None, task_parameters: int | None) -> bool:
    """Whether the trained model is not the task's own (its parameter count differs)."""
    return task_parameters is None or parameters != task_parameters


def judge_sft(
    result: Mapping[str, Any],
    *,
    min_loss_drop_fraction: float,
    max_seconds: float,
    parameters_tolerance: float = 0.01,
) -> dict[str, Any]:
    """MLOPS-1.2 as the ``sft_train`` payload measures it: the loss goes down, within the time,
    and the checkpoint reloads.

    FAIL, naming the figures: any loss not finite (NaN/inf), no loss logged, the last logged
    window's mean loss not below the first's by ``min_loss_drop_fraction`` of it, the run not
    done within ``max_seconds``, a checkpoint that does not reload to the same loss, a model
    whose parameter count is off the catalog's ``expected_parameters`` (beyond the
    tolerance), a tokenizer whose decode(encode(text)) is not the text.

    What is honest about a stand-in (``parameters`` not ``task_parameters``, the sandbox's tiny
    random Llama): its run proves the loop, the staged model/tokenizer/data, the checkpoint and
    the SLURM job work, against the profile's own thresholds, and nothing about SmolLM-135M
    or Oumi. So it may PASS, but only with a message that says "stand-in", plain torch and not
    Oumi, and the result's ``stand_in: true``; never a bare PASS that reads as MLOPS-1.2's.
    The task's real model trained by this loop (``trainer: torch``) is a WARN: MLOPS-1.2 is
    ``oumi train``, which it did not exercise."""
    messages: list[str] = []
    verdicts: list[str] = []

    def fail(msg: str) -> None:
        verdicts.append(FAIL)
        messages.append(msg)

    windows = [w for w in result.get("window_losses") or [] if isinstance(w, int | float)]
    first, last = result.get("first_loss"), result.get("last_loss")
    bad = [f"window {i + 1}: {w}" for i, w in enumerate(windows) if not math.isfinite(float(w))] + [
        f"{k}: {v}" for k, v in (("first", first), ("last", last)) if not_finite(v)
    ]
    drop: float | None = None
    if bad:
        fail(f"loss not finite ({'; '.join(bad[:3])}): training diverged")
    elif not isinstance(first, int | float) or not isinstance(last, int | float):
        fail(f"no loss logged (first {first}, last {last})")
    else:
        drop = (first - last) / first if first > 0 else 0.0
        if drop < min_loss_drop_fraction:
            fail(
                f"loss did not fall enough: {first:.4f} -> {last:.4f} over "
                f"{result.get('steps')} steps is {drop:.1%}, need at least "
                f"{min_loss_drop_fraction:.0%}"
            )
    secs = result.get("total_seconds", result.get("training_time_seconds"))
    if not isinstance(secs, int | float) or secs >= max_seconds:
        fail(f"took {secs} s, limit {max_seconds:g} s")
    if result.get("checkpoint_reloads") is not True:
        fail(
            "the checkpoint did not reload to the same loss "
            f"({result.get('checkpoint_reload_loss')})"
        )
    params, expected = result.get("parameters"), result.get("expected_parameters")
    if (
        isinstance(expected, int)
        and expected > 0
        and (
            not isinstance(params, int) or abs(params - expected) > parameters_tolerance * expected
        )
    ):
        fail(f"the model has {params} parameters, the catalog expects {expected}")
    if result.get("tokenizer_roundtrip_ok") is False:
        fail(f"the tokenizer ({result.get('tokenizer')}) does not decode what it encoded")
    task = result.get("task_parameters")
    if sft_stand_in(params if isinstance(params, int) else None, task):
        messages.append(
            f"{STAND_IN}: a {_count(params)}-parameter model, not the task's {_count(task)} "
            f"(SmolLM-135M), trained with plain torch ({result.get('trainer', 'torch')}), not "
            f"Oumi, on {result.get('device')}: judged by this profile's stand-in thresholds; "
            "MLOPS-1.2 itself is not exercised"
        )
    elif result.get("trainer", "torch") != "oumi":
        verdicts.append(WARN)
        messages.append(
            "the task's model trained with this payload's plain-torch loop, not `oumi train`: "
            "the Oumi path of MLOPS-1.2 is untested"
        )
    return {
        "verdict": worst(verdicts),
        "messages": messages,
        "loss_drop_fraction": None if drop is None else round(drop, 5),
        "stand_in": sft_stand_in(params if isinstance(params, int) else None, task),
    }


def not_finite(value: Any) -> bool:
    """A number that is NaN or infinite (anything else, missing included, is not)."""
    return isinstance(value, int | float) and not math.isfinite(float(value))


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)
