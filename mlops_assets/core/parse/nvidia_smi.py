"""Parse nvidia-smi output for GPU health checks (count, driver, ECC, row remapping).

Checks run nvidia-smi on the HPC nodes (and inside Apptainer ``--nv`` containers, where a
missing driver still exits 0) and compare what they read with the inventory. The query
uses row-remapping fields because H100/H200 report ``retired_pages.*`` as ``[N/A]``: they
remap rows instead of retiring pages. A pending remap needs a GPU reset; a remapping
failure means the GPU should be taken out of service.

Output that is not what the query asked for ("No devices were found", a driver
communication failure, a wrong column count) raises :class:`ValueError`;
:func:`classify_failure` names which failure it is and its usual fix, since a driver/library
version mismatch (reboot) and a GPU fallen off the bus (Xid 79, reset or RMA) need different
hands than a missing driver.

Values nvidia-smi prints instead of a figure (``[N/A]``, ``N/A``, ``[Not Supported]``,
``[Unknown Error]``, ``[GPU is lost]``) are never kept as values: they become ``None``, and a
rule that needs the figure says it is unjudged (:meth:`GpuInfo.unmeasured`).

Standard library only: shipped to the HPC side as ``mlops_nvidia_smi.py`` beside the smoke
payloads, whose nvidia-smi inventory uses the same CSV parser.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = [
    "HEALTH_FIELDS",
    "NVIDIA_SMI_QUERY",
    "NVIDIA_SMI_QUERY_COMMAND",
    "NVIDIA_SMI_QUERY_FIELDS",
    "GpuInfo",
    "Health",
    "ListedGpu",
    "MigDevice",
    "SmiFailure",
    "SmiVersions",
    "classify_failure",
    "gpu_info_from_row",
    "judge_gpu_health",
    "parse_nvidia_smi_list",
    "parse_nvidia_smi_q",
    "parse_nvidia_smi_versions",
    "parse_query_csv",
    "parse_query_gpu",
    "split_errors",
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


_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_.]*$")


def parse_query_csv(
    text: str, fields: Sequence[str] | None = NVIDIA_SMI_QUERY_FIELDS
) -> list[dict[str, str | None]]:
    """Split ``--query-gpu ... --format=csv[,noheader][,nounits]`` into one dict per GPU.

    ``[N/A]`` / ``N/A`` / ``[Not Supported]`` become ``None``. A header line
    (``--format=csv`` without ``noheader``) is recognized and skipped; with ``fields=None``
    the header names the fields (``memory.total [MiB]`` → ``memory.total``). Units
    (``143771 MiB``) are removed. Other bracketed messages such as ``[Unknown Error]`` or
    ``[GPU is lost]`` stay as bracketed text so the caller can report them; they are never
    a number (:func:`split_errors` separates them).
    """
    rows: list[dict[str, str | None]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        values = [v.strip() for v in line.split(",")]
        if not rows:
            names = [re.sub(r"\s*\[[^\]]*\]$", "", v) for v in values]
            if fields is None and all(_FIELD_NAME.match(nm) for nm in names):
                fields = names
                continue  # the csv header names the fields
            if fields is not None and names == list(fields):
                continue  # the csv header
        if fields is None:
            raise ValueError(
                f"nvidia-smi csv without a header line and no fields given: {_clip(line)!r}"
            )
        n = len(fields)
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
            if value in _NOT_AVAILABLE or value.endswith(" [N/A]"):
                row[key] = None
            else:
                m = _UNIT_TAIL.match(value)
                row[key] = m.group(1) if m else value
        rows.append(row)
    return rows


def split_errors(row: Mapping[str, str | None]) -> tuple[dict[str, str | None], dict[str, str]]:
    """(values, errors): bracketed messages (``[Unknown Error]``) leave the values as
    ``None`` and go to errors, field → message."""
    values: dict[str, str | None] = {}
    errors: dict[str, str] = {}
    for key, v in row.items():
        if v is not None and v.startswith("["):
            errors[key] = v.strip("[]")
            values[key] = None
        else:
            values[key] = v
    return values, errors


def _str(row: Mapping[str, str | None], key: str, errors: dict[str, str]) -> str | None:
    """The value as printed, or None when it is absent or a bracketed marker (``[N/A]``,
    ``[Not Supported]``...), which is recorded in `errors` instead of being read as a value."""
    v = row.get(key)
    if v is not None and v.startswith("["):
        errors[key] = v.strip("[]")
        return None
    return v


def _int(row: Mapping[str, str | None], key: str, errors: dict[str, str]) -> int | None:
    v = _str(row, key, errors)
    if v is None:
        return None
    m = re.fullmatch(r"(-?\d+)(?:\.0+)?(?:\s*(?:MiB|C))?", v)
    if not m:
        raise ValueError(f"nvidia-smi {key} is not an integer: {v!r}")
    return int(m.group(1))


def _yes_no(row: Mapping[str, str | None], key: str, errors: dict[str, str]) -> bool | None:
    v = _str(row, key, errors)
    if v is None:
        return None
    if v not in ("Yes", "No"):
        raise ValueError(f"nvidia-smi {key} is not Yes/No: {v!r}")
    return v == "Yes"


#: GpuInfo fields the health rule needs, and what their absence means.
HEALTH_FIELDS: dict[str, str] = {
    "ecc_uncorrected_volatile": (
        "uncorrected ECC errors not reported (ECC off or not supported): memory errors unjudged"
    ),
    "remapped_rows_pending": (
        "row remapping not reported (pre-Ampere GPU, MIG "
        "mode or old driver): pending remaps unjudged"
    ),
    "remapped_rows_failure": (
        "row remapping not reported (pre-Ampere GPU, MIG "
        "mode or old driver): remap failures unjudged"
    ),
}


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
    # Pre-Ampere page retirement (Ampere+ remap rows instead): absent is normal, not unjudged.
    retired_pages_pending: bool | None = None

    def problems(self) -> list[str]:
        """Human-readable reasons this GPU needs attention (empty when healthy)."""
        out = [f"{k}: {v}" for k, v in sorted(self.errors.items())]
        if self.ecc_uncorrected_volatile:
            out.append(f"{self.ecc_uncorrected_volatile} uncorrected ECC errors since boot")
        if self.remapped_rows_pending:
            out.append("row remapping pending (GPU reset needed)")
        if self.remapped_rows_failure:
            out.append("row remapping failed (take the GPU out of service)")
        if self.retired_pages_pending:
            out.append("page retirement pending (reboot or reset the GPU to retire the pages)")
        return out

    def unmeasured(self) -> list[str]:
        """What the health rule could not judge on this GPU: a field it needs is absent
        (``[N/A]``, not queried). An absence is not a fault, and not a pass either."""
        seen: list[str] = []
        for attr, why in HEALTH_FIELDS.items():
            if getattr(self, attr) is None and why not in seen:
                seen.append(why)
        return seen

    @property
    def healthy(self) -> bool:
        """No ECC uncorrected errors, no pending/failed remap, no error markers."""
        return not self.problems()


# --query-gpu aliases nvidia-smi accepts for the same fields.
_ALIASES = {"gpu_name": "name", "gpu_uuid": "uuid", "gpu_bus_id": "pci.bus_id"}


def gpu_info_from_row(row: Mapping[str, str | None], position: int = 0) -> GpuInfo:
    """A :class:`GpuInfo` from one CSV row of any field list: fields the query did not
    ask for are ``None`` (unmeasured), ``position`` stands in for a missing index."""
    row = {_ALIASES.get(k, k): v for k, v in row.items()}
    errors: dict[str, str] = {}
    index = _int(row, "index", errors) if "index" in row else position
    if index is None:
        raise ValueError(f"nvidia-smi row without a GPU index: {row!r}")
    return GpuInfo(
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
        retired_pages_pending=_yes_no(row, "retired_pages.pending", errors),
    )


def parse_query_gpu(
    text: str, fields: Sequence[str] | None = NVIDIA_SMI_QUERY_FIELDS
) -> list[GpuInfo]:
    """Parse the output of :data:`NVIDIA_SMI_QUERY_COMMAND` (header and units tolerated),
    or of another ``--query-gpu`` field list (``fields=None``: read from the csv header)."""
    return [gpu_info_from_row(row, i) for i, row in enumerate(parse_query_csv(text, fields))]


@dataclass(frozen=True)
class Health:
    """The health rule's reading of one node's GPUs: a summary fact, problems (FAIL),
    and what could not be judged (WARN when there is no problem)."""

    fact: str
    problems: list[str]
    unjudged: list[str]

    @property
    def verdict(self) -> str:
        return "FAIL" if self.problems else ("WARN" if self.unjudged else "PASS")


def judge_gpu_health(
    gpus: Sequence[GpuInfo],
    *,
    where: str,
    expected_count: int | None = None,
    min_driver: str | None = None,
) -> Health:
    """One rule for nvidia-smi's view of a node, whatever printed it (the query CSV or
    ``nvidia-smi -q``): GPU count, driver >= minimum, no ECC/row-remap trouble or error
    markers; an absent figure is named as unjudged, never passed."""
    from mlops_assets.core.parse import versions

    problems: list[str] = []
    unjudged: list[str] = []
    if expected_count is not None and len(gpus) != expected_count:
        problems.append(f"{where}: {len(gpus)} GPUs visible, GRES says {expected_count}")
    if not gpus:
        problems.append(f"{where}: no GPU listed")
    for g in gpus:
        problems += [f"{where} GPU{g.index}: {p}" for p in g.problems()]
        if min_driver:
            if g.driver_version is None:
                unjudged.append(
                    f"{where} GPU{g.index}: driver version not "
                    f"reported: driver >= {min_driver} unjudged"
                )
            elif not versions.at_least(g.driver_version, min_driver):
                problems.append(f"{where} GPU{g.index}: driver {g.driver_version} < {min_driver}")
        unjudged += [f"{where} GPU{g.index}: {u}" for u in g.unmeasured()]
    names = sorted({g.name or "?" for g in gpus})
    drivers = sorted({g.driver_version or "?" for g in gpus})
    return Health(f"{len(gpus)}x {'/'.join(names)} driver {'/'.join(drivers)}", problems, unjudged)


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
_L_GPU_ANY = re.compile(r"GPU (\d+): ([^()]+?) \(UUID: (GPU-[0-9A-Fa-f-]+)\)")
_L_MIG = re.compile(r"^\s*MIG (\S+)\s+Device\s+(\d+): \(UUID: (MIG-[^\s)]+)\)\s*$")


def parse_nvidia_smi_list(text: str, *, strict: bool = True) -> list[ListedGpu]:
    """Parse ``nvidia-smi -L``, including MIG lines (``  MIG 1g.5gb  Device 0: ...``).

    ``strict=False`` skips lines that are neither (Apptainer's INFO/WARNING lines, an error
    printed inside a container), for probes that count GPUs in mixed output; strict
    parsing raises :class:`ValueError` on them."""
    gpus: list[ListedGpu] = []
    for line in text.splitlines():
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if line.count("(UUID: GPU-") > 1:  # several lines joined into one by a paste
            for joined in _L_GPU_ANY.finditer(line):
                gpus.append(
                    ListedGpu(
                        index=int(joined.group(1)), name=joined.group(2), uuid=joined.group(3)
                    )
                )
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
        if strict:
            raise ValueError(f"unexpected nvidia-smi -L line: {_clip(line)!r}")
    return gpus


@dataclass(frozen=True)
class SmiVersions:
    """Driver and CUDA versions as nvidia-smi reports them."""

    driver: str
    cuda: str | None = None
    nvml: str | None = None


# Drivers >= 610 print "KMD version" and "CUDA UMD version"; their "DRIVER version" says
# "Deprecated, see ..." (and -q appends "[Deprecated; ...]" to "Driver Version").
_VER_LINE = re.compile(
    r"^\s*(NVIDIA-SMI|NVML|DRIVER|KMD|CUDA UMD|CUDA) [Vv]ersion\s*:\s*(\d\S*)\s*$"
)
_BANNER = re.compile(r"(?:Driver|KMD) Version:\s*(\S+)(?:\s+CUDA (?:UMD )?Version:\s*(\S+))?")


def parse_nvidia_smi_versions(text: str) -> SmiVersions:
    """Read versions from ``nvidia-smi --version`` or from the plain ``nvidia-smi`` banner,
    old and new names alike (DRIVER/KMD, CUDA/CUDA UMD)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = _VER_LINE.match(line)
        if m:
            found[m.group(1)] = m.group(2)
    driver = found.get("KMD") or found.get("DRIVER")
    if driver:
        return SmiVersions(
            driver=driver, cuda=found.get("CUDA UMD") or found.get("CUDA"), nvml=found.get("NVML")
        )
    b = _BANNER.search(text)
    if b:
        cuda = b.group(2)
        return SmiVersions(driver=b.group(1), cuda=None if cuda in (None, "N/A") else cuda)
    raise ValueError(f"no driver version in nvidia-smi output: {_clip(text)!r}")


# ------------------------------------------------------------------ failures


@dataclass(frozen=True)
class SmiFailure:
    """Why nvidia-smi printed no figures: a class, a short name for it (the check's measured
    value), its usual fix, and the line nvidia-smi printed."""

    cause: str
    meaning: str
    hint: str
    line: str

    def describe(self) -> str:
        return f"{self.meaning} ({self.line})"


_XID = "check `dmesg | grep -i xid` (Xid 79: fallen off the bus; 48/63/64/94/95: memory errors)"
#: (pattern, cause, meaning, usual fix): the first match wins, most specific first.
_FAILURES: tuple[tuple[re.Pattern[str], str, str, str], ...] = tuple(
    (re.compile(pat, re.I), cause, meaning, hint)
    for pat, cause, meaning, hint in (
        (
            r"Driver/library version mismatch",
            "version_mismatch",
            "driver/library version mismatch",
            "the loaded kernel module is not the installed driver's (upgraded without a reboot): "
            "reboot the node (or unload and reload the nvidia kernel modules once no process "
            "uses the GPUs); a reinstall is not needed",
        ),
        (
            r"GPU is lost|GPU has fallen off the bus",
            "gpu_lost",
            "GPU lost (fallen off the bus)",
            f"{_XID}; drain the node and reboot it to recover the GPU; if it happens again, "
            "reseat or RMA the GPU",
        ),
        (
            r"insufficiently powered|insufficient power",
            "insufficient_power",
            "GPU insufficiently powered",
            "check the GPU's auxiliary power cables and the power supply, then reboot",
        ),
        (
            r"Unable to (?:determine|detect) the device handle for GPU",
            "device_handle",
            "GPU not answering (no device handle)",
            f"a GPU did not answer, usually fallen off the bus: {_XID}; reset the GPU "
            "(nvidia-smi -r) or reboot the node, drain it meanwhile; RMA if it repeats",
        ),
        (
            r"couldn.t communicate with the NVIDIA driver",
            "driver_not_loaded",
            "NVIDIA kernel module not loaded",
            "load it (modprobe nvidia) and read dmesg; after a kernel "
            "update rebuild the module for the running kernel (DKMS) or "
            "install the driver for it; check nouveau is blacklisted",
        ),
        (
            r"No devices were found",
            "no_devices",
            "no GPU found by the driver",
            "the driver is loaded but lists no GPU: check lspci for the GPUs and dmesg for "
            "'RmInitAdapter failed'; in a job, check the GPUs it was given (gres.conf File= "
            "lines, cgroup ConstrainDevices, CUDA_VISIBLE_DEVICES)",
        ),
        (
            r"couldn't find libnvidia-ml\.so|libnvidia-ml\.so[.\d]*: cannot open shared object",
            "nvml_library_missing",
            "libnvidia-ml.so missing",
            "inside a container, run it with the GPU libraries bound (apptainer --nv, docker "
            "--gpus); on the host reinstall the driver's user-space libraries",
        ),
        (
            r"Failed to initialize NVML: Insufficient Permissions|Insufficient Permissions",
            "nvml_permissions",
            "no permission on the GPU devices",
            "check the mode of /dev/nvidia* (and /dev/nvidia-caps "
            "for MIG) and the job's device cgroup",
        ),
        (
            r"Failed to initialize NVML: Unknown Error",
            "nvml_unknown_error",
            "NVML failed to start (Unknown Error)",
            "in a container this is usually lost device access (/dev/nvidia* not in the "
            "container's device cgroup, e.g. after a systemd daemon-reload): restart the "
            "container; on a host, read dmesg and reload the driver",
        ),
        (
            r"Failed to initialize NVML",
            "nvml_init_failed",
            "NVML failed to start",
            "read the message and dmesg; reload the NVIDIA driver or reboot the node",
        ),
        (
            r"nvidia-smi: (?:command )?not found|nvidia-smi\S*: No such file or directory|"
            r"executable file not found|couldn't find the nvidia-smi",
            "not_installed",
            "no NVIDIA driver",
            "nvidia-smi is not installed: install the NVIDIA "
            "driver on the node (nvidia-smi ships with it)",
        ),
    )
)


def classify_failure(text: str) -> SmiFailure | None:
    """Which failure ``text`` (nvidia-smi's stdout + stderr) shows, if any known one."""
    for pattern, cause, meaning, hint in _FAILURES:
        m = pattern.search(text)
        if m:
            line = next((ln.strip() for ln in text.splitlines() if pattern.search(ln)), m.group(0))
            return SmiFailure(cause, meaning, hint, _clip(line))
    return None


# ------------------------------------------------------------------ nvidia-smi -q


_Q_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[^:]+?)\s*:\s?(?P<value>.*?)\s*$")
_Q_GPU = re.compile(r"^GPU ([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f])\s*$")
_Q_NUMBER = re.compile(r"^(-?\d+)(?:\s*\S+)?$")


def _q_sections(lines: list[str]) -> dict[str, str]:
    """Flatten one GPU block of ``-q`` into ``"Section/Sub/Key" → value`` by indentation."""
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for raw in lines:
        if not raw.strip():
            continue
        indent = len(raw) - len(raw.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        m = _Q_LINE.match(raw)
        if m and ":" in raw:
            path = "/".join([*(k for _, k in stack), m.group("key").strip()])
            out.setdefault(path, m.group("value"))
        else:
            stack.append((indent, raw.strip()))
    return out


def _q_value(block: Mapping[str, str], *paths: str) -> str | None:
    for path in paths:
        if path in block:
            v = block[path]
            return None if v in _NOT_AVAILABLE or v == "" else v
    return None


def _q_uncorrected(block: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Volatile uncorrected ECC count: every ``*Uncorrectable*`` counter of
    ``ECC Errors/Volatile`` (drivers >= 450) or ``Double Bit/Total`` (older). (value, error)"""
    keys = [k for k in block if k.startswith("ECC Errors/Volatile/") and "Uncorrectable" in k]
    if not keys:
        keys = [k for k in ("ECC Errors/Volatile/Double Bit/Total",) if k in block]
    total, seen = 0, False
    for k in keys:
        v = block[k]
        if v.startswith("["):
            return None, v
        m = _Q_NUMBER.match(v)
        if m:
            total += int(m.group(1))
            seen = True
    return (str(total) if seen else None), None


def _q_driver(top: Mapping[str, str]) -> str | None:
    """``Driver Version`` without the ``[Deprecated; ...]`` note drivers >= 610 append."""
    v = _q_value(top, "Driver Version")
    if v is None:
        return None
    return re.sub(r"\s*\[[^\]]*\]$", "", v) or None


def parse_nvidia_smi_q(text: str) -> list[GpuInfo]:
    """Read ``nvidia-smi -q`` (whole, or any ``-d`` subset) into the same :class:`GpuInfo`
    the health query gives, so a site's saved ``-q`` reports go through the same rule.
    Sections the report leaves out stay ``None`` (unmeasured). Text without a GPU block
    raises :class:`ValueError`."""
    lines = [ln.rstrip("\r") for ln in text.splitlines()]
    top: dict[str, str] = {}
    blocks: list[tuple[str, list[str]]] = []
    for ln in lines:
        m = _Q_GPU.match(ln.strip()) if not ln.startswith((" ", "\t")) else None
        if m:
            blocks.append((m.group(1), []))
        elif blocks:
            blocks[-1][1].append(ln)
        else:
            qm = _Q_LINE.match(ln)
            if qm and ":" in ln:
                top[qm.group("key").strip()] = qm.group("value")
    if not blocks:
        raise ValueError(f"no GPU block in nvidia-smi -q output: {_clip(text.strip())!r}")
    gpus: list[GpuInfo] = []
    for i, (bus, body) in enumerate(blocks):
        b = _q_sections(body)
        ecc, ecc_error = _q_uncorrected(b)
        row: dict[str, str | None] = {
            "index": str(i),
            "uuid": _q_value(b, "GPU UUID"),
            "name": _q_value(b, "Product Name"),
            "pci.bus_id": _q_value(b, "PCI/Bus Id") or bus,
            "driver_version": _q_value(top, "KMD Version") or _q_driver(top),
            "memory.total": _q_value(b, "FB Memory Usage/Total"),
            "temperature.gpu": _q_value(b, "Temperature/GPU Current Temp"),
            "ecc.errors.uncorrected.volatile.total": ecc_error or ecc,
            "remapped_rows.pending": _q_value(b, "Remapped Rows/Pending"),
            "remapped_rows.failure": _q_value(b, "Remapped Rows/Remapping Failure Occurred"),
            "retired_pages.pending": _q_value(
                b, "Retired Pages/Pending Page Blacklist", "Retired Pages/Pending Page Retirement"
            ),
        }
        for key in ("memory.total", "temperature.gpu"):
            v = row[key]
            if v is not None and not v.startswith("["):
                m = _Q_NUMBER.match(v)
                row[key] = m.group(1) if m else v
        gpus.append(gpu_info_from_row(row, i))
    return gpus
