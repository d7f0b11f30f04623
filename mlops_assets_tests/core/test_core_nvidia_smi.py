"""nvidia-smi parsers against output recorded on a lent 2x H200 host (driver 580.159.04)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_assets.core.parse import nvidia_smi as ns

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    lines = (FIXTURES / name).read_text().splitlines(keepends=True)
    return "".join(ln for ln in lines if not ln.startswith("#@"))


def test_query_constant_matches_recorded_command() -> None:
    header = (FIXTURES / "nvidia_smi_query_h200x2_580.159.04.txt").read_text().splitlines()[1]
    assert header == f"#@ command: {ns.NVIDIA_SMI_QUERY_COMMAND}"
    assert "remapped_rows.pending" in ns.NVIDIA_SMI_QUERY
    assert "retired_pages" not in ns.NVIDIA_SMI_QUERY


@pytest.mark.parametrize(
    "name",
    ["nvidia_smi_query_h200x2_580.159.04.txt", "nvidia_smi_query_units_h200x2_580.159.04.txt"],
)
def test_query_gpu_h200(name: str) -> None:
    gpus = ns.parse_query_gpu(fixture(name))
    assert [g.index for g in gpus] == [0, 1]
    g0 = gpus[0]
    assert g0.uuid == "GPU-1a8c0f04-82f2-3644-1dce-a903d1fb9244"
    assert g0.name == "NVIDIA H200"
    assert g0.pci_bus_id == "00000000:00:06.0"
    assert g0.driver_version == "580.159.04"
    assert g0.memory_total_mib == 143771
    assert g0.temperature_c is not None and 20 < g0.temperature_c < 90
    assert g0.ecc_uncorrected_volatile == 0
    assert g0.remapped_rows_pending is False
    assert g0.remapped_rows_failure is False
    assert all(g.healthy for g in gpus)
    assert gpus[1].pci_bus_id == "00000000:00:07.0"


def test_h200_retired_pages_are_not_available() -> None:
    rows = ns.parse_query_csv(
        fixture("nvidia_smi_retired_pages_h200x2_580.159.04.txt"),
        ("index", "retired_pages.pending"),
    )
    assert rows == [
        {"index": "0", "retired_pages.pending": None},
        {"index": "1", "retired_pages.pending": None},
    ]


def test_query_csv_extra_fields() -> None:
    fields = (
        "index",
        "retired_pages.pending",
        "retired_pages.single_bit_ecc.count",
        "remapped_rows.correctable",
        "remapped_rows.uncorrectable",
        "remapped_rows.pending",
        "remapped_rows.failure",
        "ecc.mode.current",
        "mig.mode.current",
        "power.draw",
        "clocks.sm",
    )
    rows = ns.parse_query_csv(fixture("nvidia_smi_query_extra_h200x2_580.159.04.txt"), fields)
    assert len(rows) == 2
    assert rows[0]["retired_pages.pending"] is None
    assert rows[0]["remapped_rows.uncorrectable"] == "0"
    assert rows[0]["ecc.mode.current"] == "Enabled"
    assert rows[0]["mig.mode.current"] == "Disabled"
    assert float(rows[0]["power.draw"] or 0) > 0


def test_sick_gpu_rows() -> None:
    text = (
        "0, GPU-aaaa, NVIDIA H200, 00000000:18:00.0, 580.159.04, 143771, 41, 2, Yes, No\n"
        "1, GPU-bbbb, NVIDIA H200, 00000000:2A:00.0, 580.159.04, 143771, 40, 0, No, Yes\n"
        "2, GPU-cccc, NVIDIA H200, 00000000:3A:00.0, 580.159.04, 143771, [Unknown Error], "
        "[N/A], [N/A], [N/A]\n"
        "3, GPU-dddd, NVIDIA A10, Inc, 00000000:4A:00.0, 535.54.03, 23028, 30, [N/A], "
        "[Not Supported], [Not Supported]\n"
    )
    g0, g1, g2, g3 = ns.parse_query_gpu(text)
    assert not g0.healthy
    assert "uncorrected ECC" in " ".join(g0.problems())
    assert "reset" in " ".join(g0.problems())
    assert not g1.healthy
    assert "out of service" in " ".join(g1.problems())
    assert not g2.healthy
    assert g2.errors == {"temperature.gpu": "Unknown Error"}
    assert g2.temperature_c is None
    assert g3.name == "NVIDIA A10, Inc"  # a comma in the name is folded back
    assert g3.healthy  # [N/A] / [Not Supported] are absences, not faults
    assert g3.remapped_rows_pending is None


@pytest.mark.parametrize(
    "name",
    [
        "nvidia_smi_error_no_devices_h200x2_580.159.04.txt",
        "nvidia_smi_error_bad_field_h200x2_580.159.04.txt",
    ],
)
def test_recorded_errors_are_value_errors(name: str) -> None:
    with pytest.raises(ValueError, match="values"):
        ns.parse_query_gpu(fixture(name))


def test_driver_failure_message_is_value_error() -> None:
    text = (
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        "Make sure that the latest NVIDIA driver is installed and running.\n"
    )
    with pytest.raises(ValueError):
        ns.parse_query_gpu(text)
    with pytest.raises(ValueError):
        ns.parse_nvidia_smi_list(text)
    with pytest.raises(ValueError):
        ns.parse_nvidia_smi_versions(text)


def test_bad_values_are_value_errors() -> None:
    with pytest.raises(ValueError):
        ns.parse_query_gpu("x, GPU-a, H200, 0:0, 1, 2, 3, 0, No, No")
    with pytest.raises(ValueError):
        ns.parse_query_gpu("0, GPU-a, H200, 0:0, 1, 2, 3, 0, Maybe, No")
    assert ns.parse_query_gpu("") == []


def test_list_h200() -> None:
    gpus = ns.parse_nvidia_smi_list(fixture("nvidia_smi_L_h200x2_580.159.04.txt"))
    assert [(g.index, g.name) for g in gpus] == [(0, "NVIDIA H200"), (1, "NVIDIA H200")]
    assert gpus[1].uuid == "GPU-8aabbd92-90e3-2c6a-9dda-22231dcdb987"
    assert all(g.mig_devices == () for g in gpus)
    # -L and the query agree on the UUIDs.
    query = ns.parse_query_gpu(fixture("nvidia_smi_query_h200x2_580.159.04.txt"))
    assert [g.uuid for g in gpus] == [g.uuid for g in query]


def test_list_mig_from_nvidia_docs() -> None:
    g0, g1 = ns.parse_nvidia_smi_list(fixture("nvidia_smi_L_mig_a100_nvidia_docs.txt"))
    assert g0.name == "A100-SXM4-40GB"
    assert [m.profile for m in g0.mig_devices] == ["1g.5gb"] * 4
    assert [m.device for m in g0.mig_devices] == [0, 1, 2, 3]
    assert g0.mig_devices[0].uuid == "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f"
    assert g1.mig_devices == ()
    old = ns.parse_nvidia_smi_list(
        "GPU 0: A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)\n"
        "  MIG 3g.20gb Device 0: (UUID: MIG-GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77/1/0)\n"
    )
    assert old[0].mig_devices[0].uuid.endswith("/1/0")


def test_versions() -> None:
    v = ns.parse_nvidia_smi_versions(fixture("nvidia_smi_version_h200x2_580.159.04.txt"))
    assert v == ns.SmiVersions(driver="580.159.04", cuda="13.0", nvml="580.159")
    b = ns.parse_nvidia_smi_versions(fixture("nvidia_smi_banner_h200x2_580.159.04.txt"))
    assert (b.driver, b.cuda) == ("580.159.04", "13.0")


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=120),
        st.lists(
            st.sampled_from(
                [
                    "0",
                    ", ",
                    "GPU-ab",
                    "NVIDIA H200",
                    "[N/A]",
                    "[Unknown Error]",
                    "Yes",
                    "No",
                    "\n",
                    "GPU 0: ",
                    " (UUID: ",
                    ")",
                    "  MIG 1g.5gb Device  0: ",
                    "Driver Version: ",
                    "580.1",
                    " MiB",
                    "index",
                ]
            ),
            max_size=30,
        ).map("".join),
    )
)
def test_nvidia_smi_parsers_raise_only_value_error(text: str) -> None:
    for parse in (ns.parse_query_gpu, ns.parse_nvidia_smi_list, ns.parse_nvidia_smi_versions):
        with contextlib.suppress(ValueError):
            parse(text)


def test_driver_610_kmd_names() -> None:
    """Drivers >= 610 rename 'Driver Version' to 'KMD Version' (banner, --version) and tag -q's
    old line '[Deprecated; ...]'; the driver is still read as its bare version (corpus cases
    nvidia_smi_banner/*_kmd_gpuexporter and nvidia_smi_q/*610*)."""
    banner = (
        "| NVIDIA-SMI 610.57.04              KMD Version: 610.57.04     CUDA UMD Version: 13.3   "
        "  |\n"
    )
    assert ns.parse_nvidia_smi_versions(banner) == ns.SmiVersions("610.57.04", "13.3")
    version = (
        "NVIDIA-SMI version  : 610.57.04\nNVML version        : 610.57\n"
        'DRIVER version      : Deprecated, see "KMD version" instead\n'
        'CUDA version        : Deprecated, see "CUDA UMD version" instead\n'
        "KMD version         : 610.57.04\nCUDA UMD version    : 13.3\n"
    )
    assert ns.parse_nvidia_smi_versions(version) == ns.SmiVersions("610.57.04", "13.3", "610.57")
    q = (
        "Driver Version                                         : 610.62 [Deprecated; will be "
        "removed in CUDA 14.0. Use KMD Version instead]\nAttached GPUs : 1\nGPU "
        "00000000:0C:00.0\n    Product Name : X\n"
    )
    assert ns.parse_nvidia_smi_q(q)[0].driver_version == "610.62"


def test_retired_pages_pending_is_a_problem() -> None:
    """Pre-Ampere GPUs retire pages instead of remapping rows; a pending retirement needs a
    reboot or GPU reset (csv field retired_pages.pending, -q 'Pending Page Blacklist')."""
    fields = ["index", "name", "retired_pages.pending"]
    sick, fine, absent = ns.parse_query_gpu(
        "0, Tesla V100, Yes\n1, Tesla V100, No\n2, A100, [N/A]\n", fields
    )
    assert (
        "page retirement pending (reboot or reset the GPU to retire the pages)" in sick.problems()
    )
    assert fine.healthy and absent.healthy and absent.retired_pages_pending is None
