"""Parse nvidia-smi output for GPU health checks (count, driver, ECC, row remapping).

Checks run nvidia-smi on the HPC nodes (and inside Apptainer ``--nv`` containers, where a
missing driver still exits 0) and compare what they read with the inventory. The query
uses row-remapping fields because H100/H200 report ``retired_pages.*`` as ``[N/A]``: they
remap rows instead of retiring pages. A pending remap needs a GPU reset; a remapping
failure means the GPU should be taken out of service.

Output that is not what the query asked for ("No devices were found", a driver
communication failure, a wrong column count) raises :class:`ValueError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "NVIDIA_SMI_QUERY",
    "NVIDIA_SMI_QUERY_COMMAND",
    "NVIDIA_SMI_QUERY_FIELDS",
    "GpuInfo",
    "ListedGpu",
    "MigDevice",
    "SmiVersions",
    "parse_nvidia_smi_list",
    "parse_nvidia_smi_versions",
    "parse_query_csv",
    "parse_query_gpu",
]

#: Fields of the health query, in order.
NVIDIA_SMI_QUERY_FIELDS: tuple[str, ...] = (
    "index",
    "uuid",
    "name",
    "pci.bus_id",
    "driver_version",
    "memory.total",
    "temperature.gpu",
    "ecc.errors.uncorrected.volatile.total",
    "remapped_rows.pending",
    "remapped_rows.failure",
)
NVIDIA_SMI_QUERY = ",".join(NVIDIA_SMI_QUERY_FIELDS)
#: The full command line the parsers below expect.
NVIDIA_SMI_QUERY_COMMAND = (
    f"nvidia-smi --query-gpu={NVIDIA_SMI_QUERY} --format=csv,noheader,nounits"
)

# Values nvidia-smi prints when a field does not apply to this GPU or driver.
_NOT_AVAILABLE = frozenset({"[N/A]", "N/A", "[Not Supported]", "Not Supported"})
_UNIT_TAIL = re.compile(r"^(-?\d+(?:\.\d+)?)\s*(?:MiB|GiB|KiB|W|MHz|C|%)$")


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def parse_query_csv(
    text: str, fields: Sequence[str] = NVIDIA_SMI_QUERY_FIELDS
) -> list[dict[str, str | None]]:
    """Split ``--query-gpu ... --format=csv[,noheader][,nounits]`` into one dict per GPU.

    ``[N/A]`` / ``[Not Supported]`` become ``None``. A header line (``--format=csv``
    without ``noheader``) is recognized and skipped; units (``143771 MiB``) are removed.
    Other bracketed messages such as ``[Unknown Error]`` or ``[GPU is lost]`` are kept
    as text so the caller can report them.
    """
    rows: list[dict[str, str | None]] = []
    n = len(fields)
    for lineno, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        values = [v.strip() for v in line.split(",")]
        if lineno == 0 or not rows:
            names = [re.sub(r"\s*\[[^\]]*\]$", "", v) for v in values]
            if names == list(fields):
                continue  # the csv header
        if len(values) > n and "name" in fields:
            # A product name with a comma: fold the surplus back into it.
            i = list(fields).index("name")
            extra = len(values) - n
            values = [*values[:i], ", ".join(values[i : i + extra + 1]), *values[i + extra + 1 :]]
        if len(values) != n:
            raise ValueError(
                f"nvidia-smi line has {len(values)} values, query has {n}: {_clip(line)!r}"
            )
        row: dict[str, str | None] = {}
        for key, value in zip(fields, values, strict=True):
            if value in _NOT_AVAILABLE:
                row[key] = None
            else:
                m = _UNIT_TAIL.match(value)
                row[key] = m.group(1) if m else value
        rows.append(row)
    return rows


def _int(row: Mapping[str, str | None], key: str, errors: dict[str, str]) -> int | None:
    v = row.get(key)
    if v is None:
        return None
    if v.startswith("["):
        errors[key] = v.strip("[]")
        return None
    if not re.fullmatch(r"-?\d+", v):
        raise ValueError(f"nvidia-smi {key} is not an integer: {v!r}")
    return int(v)


def _yes_no(row: Mapping[str, str | None], key: str, errors: dict[str, str]) -> bool | None:
    v = row.get(key)
    if v is None:
        return None
    if v.startswith("["):
        errors[key] = v.strip("[]")
        return None
    if v not in ("Yes", "No"):
        raise ValueError(f"nvidia-smi {key} is not Yes/No: {v!r}")
    return v == "Yes"


def _str(row: Mapping[str, str | None], key: str, errors: dict[str, str]) -> str | None:
    v = row.get(key)
    if v is not None and v.startswith("["):
        errors[key] = v.strip("[]")
        return None
    return v


@dataclass(frozen=True)
class GpuInfo:
    """One GPU from the health query. ``None`` where nvidia-smi printed ``[N/A]``.

    ``errors`` maps a field to the message nvidia-smi printed instead of a value
    (``Unknown Error``, ``GPU is lost``...): a sign of a sick GPU, not of an old driver.
    """

    index: int
    uuid: str | None
    name: str | None
    pci_bus_id: str | None
    driver_version: str | None
    memory_total_mib: int | None
    temperature_c: int | None
    ecc_uncorrected_volatile: int | None
    remapped_rows_pending: bool | None
    remapped_rows_failure: bool | None
    errors: Mapping[str, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Human-readable reasons this GPU needs attention (empty when healthy)."""
        out = [f"{k}: {v}" for k, v in sorted(self.errors.items())]
        if self.ecc_uncorrected_volatile:
            out.append(f"{self.ecc_uncorrected_volatile} uncorrected ECC errors since boot")
        if self.remapped_rows_pending:
            out.append("row remapping pending (GPU reset needed)")
        if self.remapped_rows_failure:
            out.append("row remapping failed (take the GPU out of service)")
        return out

    @property
    def healthy(self) -> bool:
        """No ECC uncorrected errors, no pending/failed remap, no error markers."""
        return not self.problems()


def parse_query_gpu(text: str) -> list[GpuInfo]:
    """Parse the output of :data:`NVIDIA_SMI_QUERY_COMMAND` (header and units tolerated)."""
    gpus: list[GpuInfo] = []
    for row in parse_query_csv(text, NVIDIA_SMI_QUERY_FIELDS):
        errors: dict[str, str] = {}
        index = _int(row, "index", errors)
        if index is None:
            raise ValueError(f"nvidia-smi row without a GPU index: {row!r}")
        gpus.append(
            GpuInfo(
                index=index,
                uuid=_str(row, "uuid", errors),
                name=_str(row, "name", errors),
                pci_bus_id=_str(row, "pci.bus_id", errors),
                driver_version=_str(row, "driver_version", errors),
                memory_total_mib=_int(row, "memory.total", errors),
                temperature_c=_int(row, "temperature.gpu", errors),
                ecc_uncorrected_volatile=_int(row, "ecc.errors.uncorrected.volatile.total", errors),
                remapped_rows_pending=_yes_no(row, "remapped_rows.pending", errors),
                remapped_rows_failure=_yes_no(row, "remapped_rows.failure", errors),
                errors=errors,
            )
        )
    return gpus


@dataclass(frozen=True)
class MigDevice:
    """A MIG instance under a GPU in ``nvidia-smi -L``."""

    profile: str
    device: int
    uuid: str


@dataclass(frozen=True)
class ListedGpu:
    """A GPU line of ``nvidia-smi -L`` with any MIG devices listed under it."""

    index: int
    name: str
    uuid: str
    mig_devices: tuple[MigDevice, ...] = ()


_L_GPU = re.compile(r"^GPU (\d+): (.+?) \(UUID: (GPU-[0-9A-Fa-f-]+)\)\s*$")
_L_MIG = re.compile(r"^\s+MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^\s)]+)\)\s*$")


def parse_nvidia_smi_list(text: str) -> list[ListedGpu]:
    """Parse ``nvidia-smi -L``, including MIG lines (``  MIG 1g.5gb  Device 0: ...``)."""
    gpus: list[ListedGpu] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        m = _L_GPU.match(line)
        if m:
            gpus.append(ListedGpu(index=int(m.group(1)), name=m.group(2), uuid=m.group(3)))
            continue
        mm = _L_MIG.match(line)
        if mm and gpus:
            last = gpus[-1]
            mig = MigDevice(profile=mm.group(1), device=int(mm.group(2)), uuid=mm.group(3))
            gpus[-1] = ListedGpu(
                index=last.index,
                name=last.name,
                uuid=last.uuid,
                mig_devices=(*last.mig_devices, mig),
            )
            continue
        raise ValueError(f"unexpected nvidia-smi -L line: {_clip(line)!r}")
    return gpus


@dataclass(frozen=True)
class SmiVersions:
    """Driver and CUDA versions as nvidia-smi reports them."""

    driver: str
    cuda: str | None = None
    nvml: str | None = None


_VER_LINE = re.compile(r"^\s*(NVIDIA-SMI|NVML|DRIVER|CUDA) [Vv]ersion\s*:\s*(\S+)\s*$")
_BANNER = re.compile(r"Driver Version:\s*(\S+)(?:\s+CUDA Version:\s*(\S+))?")


def parse_nvidia_smi_versions(text: str) -> SmiVersions:
    """Read versions from ``nvidia-smi --version`` or from the plain ``nvidia-smi`` banner."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = _VER_LINE.match(line)
        if m:
            found[m.group(1)] = m.group(2)
    if "DRIVER" in found:
        return SmiVersions(driver=found["DRIVER"], cuda=found.get("CUDA"), nvml=found.get("NVML"))
    b = _BANNER.search(text)
    if b:
        cuda = b.group(2)
        return SmiVersions(driver=b.group(1), cuda=None if cuda in (None, "N/A") else cuda)
    raise ValueError(f"no driver version in nvidia-smi output: {_clip(text)!r}")
