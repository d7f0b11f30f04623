"""Issue 15's GPU verdict classes, each a test that failed before its fix: a slow all-reduce
with no expected figure (class 2), distinct nvidia-smi failures (class 5), ``[N/A]`` values
(class 7b), and a site's own all_reduce_perf and ``nvidia-smi -q`` judged by the profiles
(delivery 4)."""

from __future__ import annotations

from mlops_assets.catalog.loader import DEFAULT_CATALOG, load_catalog
from mlops_assets.core import smoke_rules as rules
from mlops_assets.core.checks import CheckSpec, Outcome, Severity, run_check
from mlops_assets.core.parse import nccl_tests, nvidia_smi
from mlops_assets.core.probes.hpc import judge_smi_output

CATALOG = load_catalog(DEFAULT_CATALOG, "production", env={"MLOPS_SANDBOX_HOME": "/x"}).catalog
PROFILES = {k: p.model_dump() for k, p in CATALOG.smoke.gpu_profiles.items()}


def _allreduce(busbw: float, gpu: str, profile: str | None) -> dict[str, object]:
    return {
        "world_size": 2,
        "gpu_name": gpu,
        "profile": profile,
        "sizes": [{"bytes": 1 << 30, "wrong": 0, "checked": 1 << 29, "busbw_gbps": busbw}],
    }


# ----------------------------------------------------------------- class 2


def test_slow_allreduce_without_expected_figure_is_unjudged_not_passed() -> None:
    assert PROFILES["A100"]["allreduce_busbw_gbps"] is None  # the catalog as shipped
    judged = rules.judge_nccl(
        _allreduce(4.0, "NVIDIA A100-SXM4-80GB", "A100"), expected_busbw_gbps=None
    )
    assert judged["verdict"] == rules.WARN
    assert any(
        m.startswith("unjudged: no expected bus bandwidth for NVIDIA A100-SXM4-80GB")
        for m in judged["messages"]
    )
    no_profile = rules.judge_nccl(
        _allreduce(4.0, "NVIDIA GeForce RTX 4090", None), expected_busbw_gbps=None
    )
    assert no_profile["verdict"] == rules.WARN and "no profile" in " ".join(no_profile["messages"])
    # With a figure the same run is judged, and a CPU stand-in run is never given one.
    assert (
        rules.judge_nccl(_allreduce(4.0, "NVIDIA H100", "H100"), expected_busbw_gbps=329)["verdict"]
        == rules.FAIL
    )
    cpu = rules.judge_allreduce_on_cpu(_allreduce(4.0, "cpu", None))
    assert not any("unjudged: no expected" in m for m in cpu["messages"])


# ----------------------------------------------------------------- class 5


def test_distinct_nvidia_smi_failures_are_distinct_diagnoses() -> None:
    texts = {
        "version_mismatch": (
            "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: "
            "550.144\n"
        ),
        "no_devices": "No devices were found\n",
        "device_handle": (
            "Unable to determine the device handle for GPU0000:17:00.0: Unknown Error\n"
        ),
        "driver_not_loaded": (
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make "
            "sure that the latest NVIDIA driver is installed and running.\n"
        ),
        "not_installed": "slurmstepd: error: execve(): nvidia-smi: No such file or directory\n",
    }
    facts = set()
    for cause, text in texts.items():
        health, failure = judge_smi_output(
            "gpu01", 1, "", text, expected_count=2, min_driver="535.0"
        )
        assert failure is not None and failure.cause == cause
        assert health.verdict == "FAIL" and health.fact == failure.meaning
        facts.add(health.fact)
    assert len(facts) == len(texts)
    mismatch = nvidia_smi.classify_failure(texts["version_mismatch"])
    assert (
        mismatch is not None
        and "reboot" in mismatch.hint
        and "reinstall is not needed" in mismatch.hint
    )
    lost = nvidia_smi.classify_failure(texts["device_handle"])
    assert lost is not None and "Xid 79" in lost.hint and "RMA" in lost.hint
    missing = nvidia_smi.classify_failure(texts["not_installed"])
    assert missing is not None and missing.meaning == "no NVIDIA driver"


# ----------------------------------------------------------------- class 7b


def test_not_available_values_are_unjudged_never_passed() -> None:
    text = "0, GPU-a, NVIDIA L40S, 00000000:18:00.0, 550.54.15, 46068, 30, [N/A], [N/A], [N/A]\n"
    health, failure = judge_smi_output("gpu01", 0, text, "", expected_count=1, min_driver="535.0")
    assert failure is None and health.problems == []
    assert health.verdict == "WARN"
    assert any("uncorrected ECC errors not reported" in u for u in health.unjudged)
    rows = nvidia_smi.parse_query_csv(
        "0, N/A, [Not Supported], [Unknown Error]", ("index", "a", "b", "c")
    )
    values, errors = nvidia_smi.split_errors(rows[0])
    assert values == {"index": "0", "a": None, "b": None, "c": None} and errors == {
        "c": "Unknown Error"
    }


def test_an_unjudged_outcome_is_a_warn_on_an_error_check() -> None:
    spec = CheckSpec(
        "gpu_nodes",
        "x",
        Severity.ERROR,
        "",
        lambda ctx: Outcome(False, "m", "t", severity=Severity.WARN),
    )
    assert run_check(spec, None).severity == Severity.WARN
    plain = CheckSpec("gpu_nodes", "y", Severity.ERROR, "", lambda ctx: Outcome(False, "m", "t"))
    assert run_check(plain, None).severity == Severity.ERROR


# ------------------------------------------------------------- delivery 4

_HEADER = (  # nccl-tests' header as it prints it; long lines cut where in-place columns begin
    "# nThread 1 nGpus 8 minBytes 1073741824 maxBytes 4294967296 step: 2(factor) warmup iters: 5 "
    "iters: 20 agg iters: 1 validation: 1 graph: 0\n"
    "#\n"
    "# Using devices\n"
    + "".join(
        f"#  Rank  {i} Group  0 Pid 1623025 on    host device  {i} [0x1b] {{gpu}}\n"
        for i in range(8)
    )
    + "#\n"
    "#                                                              out-of-place"
    "                       in-place\n"
    "#       size         count      type   redop    root     time   algbw   busbw #wrong"
    "     time   algbw   busbw #wrong\n"
    "#        (B)    (elements)                               (us)  (GB/s)  (GB/s)"
    "            (us)  (GB/s)  (GB/s)\n"
)


def _run(
    gpu: str,
    rows: str,
    tail: str = "# Out of bounds values : 0 OK\n# Avg bus bandwidth    : 448.212\n",
) -> str:
    return _HEADER.replace("{gpu}", gpu) + rows + tail


ROWS = (
    "  1073741824     268435456     float     sum      -1   4027.3  266.61  466.57      0   "
    "4029.1  266.50  466.37      0\n  2147483648     536870912     float     sum      -1   "
    "7983.5  268.99  470.73      0   7985.2  268.93  470.63      0\n"
)


def test_site_all_reduce_perf_is_judged_by_the_profile() -> None:
    h100 = nccl_tests.judge_all_reduce_perf(
        nccl_tests.parse_all_reduce_perf(_run("NVIDIA H100 80GB HBM3", ROWS)), PROFILES
    )
    assert (h100["verdict"], h100["profile"], h100["busbw_gbps"], h100["world_size"]) == (
        "PASS",
        "H100",
        470.63,
        8,
    )
    slow = ROWS.replace("470.63", " 40.63")
    assert (
        nccl_tests.judge_all_reduce_perf(
            nccl_tests.parse_all_reduce_perf(_run("NVIDIA H100 80GB HBM3", slow)), PROFILES
        )["verdict"]
        == "FAIL"
    )
    a100 = nccl_tests.judge_all_reduce_perf(
        nccl_tests.parse_all_reduce_perf(_run("NVIDIA A100-SXM4-80GB", ROWS)), PROFILES
    )
    assert a100["verdict"] == "WARN" and "unjudged: no expected bus bandwidth" in " ".join(
        a100["messages"]
    )


def test_site_all_reduce_perf_wrong_values_or_own_failure_never_pass() -> None:
    wrong = ROWS.replace("470.63      0", "470.63      3")
    judged = nccl_tests.judge_all_reduce_perf(
        nccl_tests.parse_all_reduce_perf(_run("NVIDIA H100 80GB HBM3", wrong)), PROFILES
    )
    assert judged["verdict"] == "FAIL" and any("values wrong" in m for m in judged["messages"])
    oob = _run("NVIDIA H100 80GB HBM3", ROWS, "# Out of bounds values : 3 FAILED\n")
    assert (
        nccl_tests.judge_all_reduce_perf(nccl_tests.parse_all_reduce_perf(oob), PROFILES)["verdict"]
        == "FAIL"
    )
    unverified = ROWS.replace("      0\n", "    N/A\n").replace("      0   ", "    N/A   ")
    judged = nccl_tests.judge_all_reduce_perf(
        nccl_tests.parse_all_reduce_perf(_run("NVIDIA H100 80GB HBM3", unverified)), PROFILES
    )
    assert judged["verdict"] == "WARN" and "not verified" in " ".join(judged["messages"])
    broken = _run(
        "NVIDIA H100 80GB HBM3",
        ROWS + "  4294967296    1073741824     float     sum      -1   15000.1  286.33\n",
    )
    assert (
        nccl_tests.judge_all_reduce_perf(nccl_tests.parse_all_reduce_perf(broken), PROFILES)[
            "verdict"
        ]
        == "FAIL"
    )


def test_site_nvidia_smi_q_goes_through_the_same_health_rule() -> None:
    text = """==============NVSMI LOG==============

Driver Version                            : 550.54.15

Attached GPUs                             : 1
GPU 00000000:18:00.0
    Product Name                          : NVIDIA A100-SXM4-80GB
    GPU UUID                              : GPU-0
    FB Memory Usage
        Total                             : 81920 MiB
    ECC Errors
        Volatile
            SRAM Correctable              : 0
            SRAM Uncorrectable            : 0
            DRAM Correctable              : 0
            DRAM Uncorrectable            : 2
    Remapped Rows
        Correctable Error                 : 0
        Uncorrectable Error               : 1
        Pending                           : Yes
        Remapping Failure Occurred        : No
    Temperature
        GPU Current Temp                  : 31 C
"""
    (g,) = nvidia_smi.parse_nvidia_smi_q(text)
    assert (
        g.memory_total_mib,
        g.temperature_c,
        g.ecc_uncorrected_volatile,
        g.remapped_rows_pending,
    ) == (81920, 31, 2, True)
    health = nvidia_smi.judge_gpu_health([g], where="gpu01", expected_count=1, min_driver="535.0")
    assert health.verdict == "FAIL" and any("reset needed" in p for p in health.problems)


def test_nccl_expectation_explicit_wins_else_the_profile_sets_figure_and_fractions() -> None:
    """One rule for the smoke payload and pasted nccl-tests output."""
    strict = {"H100": {**PROFILES["H100"], "warn_fraction": 0.95, "fail_fraction": 0.8}}
    key, expect = rules.nccl_expectation("NVIDIA H100 80GB HBM3", strict)
    assert (key, expect) == (
        "H100",
        {"expected_busbw_gbps": 329.0, "warn_fraction": 0.95, "fail_fraction": 0.8},
    )
    key, expect = rules.nccl_expectation(
        "NVIDIA H100 80GB HBM3", strict, expected_busbw_gbps=100.0, warn_fraction=0.5
    )
    assert (key, expect) == (
        "H100",
        {"expected_busbw_gbps": 100.0, "warn_fraction": 0.5, "fail_fraction": 0.75},
    )
    assert rules.nccl_expectation("", PROFILES) == (
        None,
        {"expected_busbw_gbps": None, "warn_fraction": 0.9, "fail_fraction": 0.75},
    )
