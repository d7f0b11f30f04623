"""Probes of the HPC side: run read-only commands through a Runner and judge the answer
against the catalog. No Dagster imports; the runner is injected, so tests can use a real
local or SSH runner."""

from __future__ import annotations

import time
from collections.abc import Sequence

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core import versions
from mlops_assets.core.checks import Outcome, ProbeFailed, at_least, at_most, missing_items
from mlops_assets.core.hostexec import CommandResult, Runner
from mlops_assets.core.nvidia_smi import NVIDIA_SMI_QUERY, parse_query_gpu
from mlops_assets.core.slurm import gpu_count, parse_gres_mismatch, parse_node_state

GRES_HINT = (
    "job pending on GRES: make gres.conf and slurm.conf agree on the GPU count, then "
    "`scontrol update nodename=<node> state=resume`"
)


def must(runner: Runner, argv: Sequence[str], hint: str, timeout_s: float | None = None) -> CommandResult:
    res = runner.run(argv, timeout_s=timeout_s)
    if res.returncode == 127:
        raise ProbeFailed(f"{argv[0]} is not installed on {runner.where}", hint)
    if not res.ok:
        raise ProbeFailed(f"`{' '.join(argv)}` exited {res.returncode} on {runner.where}: {res.tail(3)}", hint)
    return res


def parse_key_values(text: str) -> dict[str, str]:
    """`scontrol show config` and cgroup.conf: `Key = Value` or `Key=Value` per line."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" not in line:
            continue
        key, _, value = line.partition("=")
        if key.strip():
            out[key.strip()] = value.strip()
    return out


def controller_latency(runner: Runner, catalog: Catalog) -> Outcome:
    start = time.monotonic()
    res = must(runner, ["scontrol", "ping"], "start slurmctld on the controller and check munge")
    latency = time.monotonic() - start
    if "UP" not in res.stdout:
        raise ProbeFailed(f"scontrol ping: {res.stdout.strip()}", "slurmctld is down: start it and check its log")
    return at_most(
        round(latency, 3),
        catalog.hpc.slurm.max_controller_latency_s,
        "s",
        "slurmctld answers slowly: check its load and the network to the controller",
    )


def slurm_config(runner: Runner) -> dict[str, str]:
    res = must(runner, ["scontrol", "show", "config"], "check that slurmctld answers")
    return parse_key_values(res.stdout)


def cgroup_constrains_devices(runner: Runner, catalog: Catalog) -> Outcome:
    cfg = slurm_config(runner)
    conf = cfg.get("SLURM_CONF", "/etc/slurm/slurm.conf")
    cgroup_path = conf.rsplit("/", 1)[0] + "/cgroup.conf"
    res = runner.run(["cat", cgroup_path])
    value = parse_key_values(res.stdout).get("ConstrainDevices", "no") if res.ok else "missing"
    return Outcome(
        passed=value.lower() == "yes",
        measured=value,
        threshold="yes",
        unit="ConstrainDevices",
        hint=f"set ConstrainDevices=yes in {cgroup_path} so jobs see only their GPUs",
        detail=f"{cgroup_path}: ConstrainDevices={value}; TaskPlugin={cfg.get('TaskPlugin', '?')}",
    )


def accounting_enabled(runner: Runner, catalog: Catalog) -> Outcome:
    cfg = slurm_config(runner)
    storage = cfg.get("AccountingStorageType", "accounting_storage/none")
    res = runner.run(["sacct", "-n", "-X", "-P", "-S", "now-1hours", "-o", "JobID"])
    ok = storage != "accounting_storage/none" and res.ok
    return Outcome(
        passed=ok,
        measured=storage if res.ok else f"{storage}; sacct exit {res.returncode}",
        threshold="slurmdbd accounting and sacct answering",
        unit="AccountingStorageType",
        hint="set AccountingStorageType=accounting_storage/slurmdbd and start slurmdbd",
        detail="" if ok else res.tail(2),
    )


SINFO_FORMAT = "%N|%P|%G|%T|%E"  # fields in the order sinfo_nodes() reads them


def sinfo_nodes(runner: Runner) -> list[dict[str, str]]:
    res = must(runner, ["sinfo", "-h", "-N", "-o", SINFO_FORMAT], "check that slurmctld answers")
    rows = []
    for line in res.stdout.splitlines():
        parts = line.split("|")
        if len(parts) != 5:
            continue
        node, partition, gres, state, reason = parts
        rows.append(
            {"node": node, "partition": partition.rstrip("*"), "gres": gres, "state": state, "reason": reason}
        )
    return rows


def partitions_up(runner: Runner, catalog: Catalog) -> Outcome:
    res = must(runner, ["sinfo", "-h", "-o", "%P|%a"], "check that slurmctld answers")
    up = {p.rstrip("*") for p, _, a in (ln.partition("|") for ln in res.stdout.splitlines()) if a.strip() == "up"}
    required = [p.name for p in catalog.hpc.slurm.partitions]
    out = missing_items(up, required, "partitions up", "`scontrol update partitionname=<p> state=up`")
    return out


def _unavailable(state: str) -> bool:
    try:
        return not parse_node_state(state).available
    except ValueError:
        return True


def gres_matches_catalog(runner: Runner, catalog: Catalog) -> Outcome:
    want = catalog.hpc.slurm.gpus_per_node
    gpu_parts = {p.name for p in catalog.hpc.slurm.partitions if p.gpu}
    bad: list[str] = []
    seen = 0
    for row in sinfo_nodes(runner):
        if row["partition"] not in gpu_parts:
            continue
        seen += 1
        count = gpu_count(row["gres"])
        mismatch = parse_gres_mismatch(row["reason"]) is not None
        if count < want or (mismatch and _unavailable(row["state"])):
            bad.append(f"{row['node']} ({row['gres']}, {row['state']}{', ' + row['reason'] if row['reason'] else ''})")
    if not seen:
        raise ProbeFailed(f"no nodes in GPU partitions {sorted(gpu_parts)}", "check hpc.slurm.partitions")
    return Outcome(
        passed=not bad,
        measured=seen - len(bad),
        threshold=seen,
        unit=f"nodes with gpu GRES >= {want}",
        hint=GRES_HINT,
        nodes=tuple(sorted({b.split(' ')[0] for b in bad})),
        detail="; ".join(bad),
    )


def unavailable_share(runner: Runner, catalog: Catalog) -> Outcome:
    rows = sinfo_nodes(runner)
    worst: tuple[float, str, float] = (0.0, "", 1.0)
    nodes: set[str] = set()
    for part in catalog.hpc.slurm.partitions:
        mine = [r for r in rows if r["partition"] == part.name]
        if not mine:
            continue
        down = [r["node"] for r in mine if _unavailable(r["state"])]
        nodes.update(down)
        share = len(down) / len(mine)
        if share - part.max_unavailable_fraction > worst[0] - worst[2]:
            worst = (share, part.name, part.max_unavailable_fraction)
    share, name, limit = worst
    return at_most(
        round(share, 3),
        limit,
        f"share of unavailable nodes{' in ' + name if name else ''}",
        "resume or repair drained/down nodes (`sinfo -R` lists the reasons)",
        nodes=tuple(sorted(nodes)),
    )


def total_gpus(runner: Runner, catalog: Catalog) -> Outcome:
    gpu_parts = {p.name for p in catalog.hpc.slurm.partitions if p.gpu}
    per_node: dict[str, int] = {}
    for row in sinfo_nodes(runner):
        if row["partition"] in gpu_parts and not _unavailable(row["state"]):
            per_node[row["node"]] = gpu_count(row["gres"])
    return at_least(
        sum(per_node.values()),
        catalog.hpc.gpus.min_count,
        "schedulable GPUs",
        "multi-GPU tests need at least this many GPUs in service: resume drained GPU nodes",
        nodes=tuple(sorted(per_node)),
    )


def client_commands(runner: Runner, catalog: Catalog) -> Outcome:
    wanted = catalog.hpc.slurm.client_commands
    res = runner.run(["which", *wanted])
    found = {line.rsplit("/", 1)[-1] for line in res.stdout.split()}
    return missing_items(found, wanted, "SLURM client commands", "install slurm-client on the login node")


def version_text(text: str) -> str:
    try:
        return ".".join(map(str, versions.parse_version(text).release))
    except ValueError:
        raise ProbeFailed(f"no version number in {text.strip()[:80]!r}", "check the tool's --version output") from None


def apptainer_version(runner: Runner, catalog: Catalog) -> Outcome:
    minimum = catalog.hpc.apptainer.min_version
    res = runner.run(["apptainer", "--version"])
    if res.returncode == 127:
        res = runner.run(["singularity", "--version"])
    if not res.ok:
        return Outcome(
            False,
            "not installed",
            minimum,
            "version",
            f"install Apptainer >= {minimum} on every compute node",
            detail=res.tail(2),
        )
    found = version_text(res.stdout)
    return Outcome(
        versions.at_least(found, minimum),
        found,
        minimum,
        "version",
        f"upgrade Apptainer to >= {minimum}",
        detail=res.stdout.strip(),
    )


def mount_matches(runner: Runner, catalog: Catalog) -> Outcome:
    b = catalog.hpc.beegfs
    res = runner.run(["findmnt", "-n", "-o", "TARGET,FSTYPE", "-T", b.root])
    if res.returncode == 127:
        raise ProbeFailed(f"findmnt is not installed on {runner.where}", "install util-linux")
    if not res.ok:
        return Outcome(False, "missing", f"{b.fs_type} at {b.root}", "mount",
                       f"{b.root} does not exist: mount BeeGFS there on every node", detail=res.tail(2))
    target, _, fstype = res.stdout.strip().partition(" ")
    fstype = fstype.strip()
    ok = target == b.root and fstype == b.fs_type
    return Outcome(
        passed=ok,
        measured=f"{fstype} at {target}",
        threshold=f"{b.fs_type} at {b.root}",
        unit="mount",
        hint=f"mount BeeGFS at {b.root} on every node (beegfs-client; check beegfs-ctl --listtargets --state)",
        detail="" if ok else f"{b.root} is served by {target} ({fstype})",
    )


def free_space(runner: Runner, catalog: Catalog) -> Outcome:
    b = catalog.hpc.beegfs
    res = must(runner, ["df", "-P", "-B1", b.root], "check the BeeGFS mount")
    lines = res.stdout.strip().splitlines()
    try:
        avail = int(lines[-1].split()[3])
    except (IndexError, ValueError):
        raise ProbeFailed(f"unexpected df output: {res.stdout[:120]!r}", "check df on the login node") from None
    return at_least(
        round(avail / 1e9, 2),
        b.min_free_gb,
        "GB free",
        f"free space on {b.root}: remove old checkpoints under jobs/ and models/ or grow the filesystem",
    )


def directories(catalog: Catalog) -> dict[str, str]:
    b = catalog.hpc.beegfs
    return {name: f"{b.root.rstrip('/')}/{rel}" for name, rel in b.directories.model_dump().items()}


def layout_complete(runner: Runner, catalog: Catalog) -> Outcome:
    paths = directories(catalog)
    res = runner.run(["stat", "-c", "%n", *paths.values()])
    present = {line.strip() for line in res.stdout.splitlines()}
    return missing_items(
        present, list(paths.values()), "directories", "materialize beegfs_layout to create them"
    )


def layout_writable(runner: Runner, catalog: Catalog) -> Outcome:
    user = catalog.hpc.beegfs.training_user
    failed = []
    for path in directories(catalog).values():
        res = runner.run(["mktemp", "-p", path, ".mlops-write-probe.XXXXXX"])
        if res.ok:
            runner.run(["rm", "-f", res.stdout.strip()])
        else:
            failed.append(path)
    return Outcome(
        passed=not failed,
        measured=len(directories(catalog)) - len(failed),
        threshold=len(directories(catalog)),
        unit=f"directories writable by {user}",
        hint=f"BeeGFS permissions: `chown -R {user} <dir>` so the training user can write",
        detail=("not writable: " + ", ".join(failed)) if failed else "",
    )


def nvidia_smi_in_job(runner: Runner, catalog: Catalog) -> Outcome:
    """nvidia-smi inside a 1-GPU job on a GPU partition: driver, device files and GRES binding."""
    part = next((p.name for p in catalog.hpc.slurm.partitions if p.gpu), catalog.smoke.partition)
    argv = [
        "srun", "-p", part, "-N", "1", "-n", "1", "--gres=gpu:1", "--time=00:02:00", "--quiet",
        catalog.hpc.gpus.nvidia_smi, f"--query-gpu={NVIDIA_SMI_QUERY}", "--format=csv,noheader,nounits",
    ]
    res = runner.run(argv, timeout_s=180)
    if not res.ok:
        return Outcome(
            False, f"exit {res.returncode}", "exit 0", "nvidia-smi in a --gres=gpu:1 job",
            "no GPU inside a job: check the NVIDIA driver on the node, gres.conf File= lines and cgroup ConstrainDevices",
            detail=res.tail(3),
        )
    try:
        gpus = parse_query_gpu(res.stdout)
    except ValueError as exc:
        raise ProbeFailed(f"unexpected nvidia-smi output: {exc}", "check the driver on the GPU nodes") from None
    bad = [g for g in gpus if (g.remapped_rows_pending or g.remapped_rows_failure or (g.ecc_uncorrected_volatile or 0) > 0)]
    return Outcome(
        len(gpus) == 1 and not bad,
        len(gpus),
        1,
        "GPUs visible to a 1-GPU job",
        "a job must see exactly its GPU, without pending row remaps or uncorrected ECC errors (reset or drain the GPU)",
        detail="; ".join(f"{g.name} {g.uuid} driver {g.driver_version}" for g in gpus),
    )
