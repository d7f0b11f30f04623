"""What goes to the HPC side before a payload runs, and how it gets there.

Why one table: every placement (login node, data mover, build partition, smoke jobs) runs its
payload from the same BeeGFS folder, `scripts/mlops_payloads/`, so a file listed twice with two
sources would make the placements overwrite each other. Each row names the package resource a
file comes from and the kits (placements) that carry it; a payload a Pipes client may run is an
`entry`, the rest are helpers the payloads import or scripts the checks run
(`mlops_manifest.py verify`, `load_check.py`). The smoke kit carries the orchestrator's own
`dagster_pipes` (stdlib only), so a container without dagster-pipes still speaks the protocol.
Shipping compares sha256 first and installs by temp file + rename: an unchanged re-run sends 0
bytes, and a job that starts mid-copy never reads half a file.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import dagster as dg

from mlops_assets.core.transport.hostexec import CommandResult, Runner, SshRunner

PAYLOAD_DIR = "mlops_payloads"

#: The kits, one per placement.
LOGIN, DATA_MOVER, BUILD, SMOKE = "login", "data_mover", "build", "smoke"
KITS = (LOGIN, DATA_MOVER, BUILD, SMOKE)


@dataclass(frozen=True)
class Shipped:
    """One shipped file: its package resource, the kits that carry it, and whether a Pipes
    client may run it (`entry`)."""

    package: str
    resource: str
    kits: frozenset[str]
    entry: bool = False

    def local(self) -> Path:
        """The file in the installed package."""
        return Path(str(resources.files(self.package).joinpath(self.resource)))


def _row(package: str, resource: str, *kits: str, entry: bool = False) -> Shipped:
    return Shipped(package, resource, frozenset(kits), entry)


_P, _CORE = "mlops_assets.payloads", "mlops_assets.core"
_STAGING = (LOGIN, DATA_MOVER)

#: shipped name -> where it comes from and which kits carry it: the one shipping table.
SHIPPED: dict[str, Shipped] = {
    "mlops_manifest.py": _row(_CORE, "manifest.py", LOGIN, DATA_MOVER, BUILD),
    "stage_common.py": _row(_P, "stage_common.py", LOGIN, DATA_MOVER, BUILD),
    "stage_hub.py": _row(_P, "stage_hub.py", *_STAGING, entry=True),
    "stage_torchvision.py": _row(_P, "stage_torchvision.py", *_STAGING, entry=True),
    "sync_s3.py": _row(_P, "sync_s3.py", *_STAGING, entry=True),
    "stage_files.py": _row(_P, "stage_files.py", *_STAGING, entry=True),
    "load_check.py": _row(_P, "load_check.py", LOGIN),
    "mlops_apptainer.py": _row(f"{_CORE}.parse", "apptainer.py", LOGIN, BUILD),
    "container_image.py": _row(_P, "container_image.py", LOGIN, BUILD, entry=True),
    "smoke_common.py": _row(_P, "smoke_common.py", SMOKE),
    "gpu_smoke.py": _row(_P, "gpu_smoke.py", SMOKE, entry=True),
    "nccl_allreduce.py": _row(_P, "nccl_allreduce.py", SMOKE, entry=True),
    "mnist_train.py": _row(_P, "mnist_train.py", SMOKE, entry=True),
    "mnist_ddp.py": _row(_P, "mnist_ddp.py", SMOKE, entry=True),
    "cifar_ddp.py": _row(_P, "cifar_ddp.py", SMOKE, entry=True),
    "sft_train.py": _row(_P, "sft_train.py", SMOKE, entry=True),
    "slurm_probe.py": _row(_P, "slurm_probe.py", SMOKE, entry=True),
    "mlops_smoke_rules.py": _row(_CORE, "smoke_rules.py", SMOKE),
    "mlops_ddp_rules.py": _row(_CORE, "ddp_rules.py", SMOKE),
    "mlops_nvidia_smi.py": _row(f"{_CORE}.parse", "nvidia_smi.py", SMOKE),
    "mlops_nodelist.py": _row(f"{_CORE}.parse", "nodelist.py", SMOKE),
    "dagster_pipes.py": _row("dagster_pipes", "__init__.py", SMOKE),
}


def kit(name: str) -> dict[str, Shipped]:
    """The files one placement ships, in table order."""
    if name not in KITS:
        raise ValueError(f"unknown kit {name!r} (one of {', '.join(KITS)})")
    return {n: s for n, s in SHIPPED.items() if name in s.kits}


def check_entry(kit_name: str, payload: str) -> None:
    """A payload a client of `kit_name` may run; anything else is a programming error."""
    row = SHIPPED.get(payload)
    if row is None or not row.entry or kit_name not in row.kits:
        runnable = ", ".join(n for n, s in kit(kit_name).items() if s.entry)
        raise ValueError(f"{payload!r} is not a {kit_name} payload (one of {runnable})")


def or_fail(res: CommandResult, what: str, hint: str) -> CommandResult:
    """`res`, or a dg.Failure naming what failed, its exit status, its output and the fix."""
    if not res.ok:
        raise dg.Failure(
            description=f"{what} failed (exit {res.returncode}): {res.tail(5)}",
            metadata={"hint": hint},
        )
    return res


def ship_payloads(runner: Runner, scripts_dir: str, kit_name: str = LOGIN) -> str:
    """Copy one kit to `<scripts_dir>/mlops_payloads/` where it differs. Returns the folder."""
    files = kit(kit_name)
    dest = f"{scripts_dir.rstrip('/')}/{PAYLOAD_DIR}"
    remote = {f"{dest}/{n}": "" for n in files}
    # one round trip (a fixed cost of every Pipes session): make the dir, hash what is there
    script = (
        'mkdir -p -- "$1" || exit; shift; '
        'for f in "$@"; do [ -f "$f" ] && sha256sum "$f"; done; true'
    )
    res = or_fail(
        runner.run(["sh", "-c", script, "sh", dest, *remote]),
        f"mkdir {dest}",
        "the scripts directory must be writable (materialize beegfs_layout)",
    )
    for line in res.stdout.splitlines():
        digest, _, path = line.partition("  ")
        remote[path.strip()] = digest
    for name, row in files.items():
        local = row.local()
        target = f"{dest}/{name}"
        if remote.get(target) == hashlib.sha256(local.read_bytes()).hexdigest():
            continue
        tmp = f"{dest}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
        if isinstance(runner, SshRunner):
            runner.put(str(local), tmp)
        else:
            shutil.copyfile(local, tmp)
        or_fail(
            runner.run(["mv", "-f", "--", tmp, target]),
            f"installing {target}",
            "check the scripts directory on BeeGFS",
        )
    return dest


#: entries a payload imports (its own code too): cifar_ddp.py trains through mnist_ddp.py's
#: ranks, which take the model from mnist_train.py and the exact check from nccl_allreduce.py
USES: dict[str, tuple[str, ...]] = {
    "mnist_ddp.py": ("mnist_train.py", "nccl_allreduce.py"),
    "cifar_ddp.py": ("mnist_ddp.py", "mnist_train.py", "nccl_allreduce.py"),
}


def code_digest(payload: str) -> str:
    """sha256 of what a payload runs: the payload, the entries it imports (`USES`) and the
    helpers of its kits (name and sha256 of each, sorted; the vendored dagster_pipes left
    out: transport, not training code). Recorded by the smoke assets so a trained model can
    name the code that made it."""
    row = SHIPPED[payload]
    names = {payload, *USES.get(payload, ())} | {
        n
        for n, s in SHIPPED.items()
        if not s.entry and s.kits & row.kits and n != "dagster_pipes.py"
    }
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(
            f"{name}\0{hashlib.sha256(SHIPPED[name].local().read_bytes()).hexdigest()}\n".encode()
        )
    return h.hexdigest()
