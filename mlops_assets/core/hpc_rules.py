"""Probes of the HPC side: run read-only commands through a Runner and judge the answer
against the catalog. No Dagster imports; the runner is injected, so tests can use a real
local or SSH runner."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core import versions
from mlops_assets.core.checks import (
    Outcome,
    ProbeFailed,
    Severity,
    at_least,
    at_most,
    missing_items,
)
from mlops_assets.core.hostexec import CommandResult, Runner
from mlops_assets.core.nvidia_smi import NVIDIA_SMI_QUERY, parse_query_gpu
from mlops_assets.core.slurm import (
    SINFO_NODE_FORMAT,
    SlurmNode,
    SlurmPartition,
    parse_gres_mismatch,
    parse_scontrol_config,
    parse_scontrol_nodes,
    parse_scontrol_partitions,
    parse_sinfo_nodes,
)

T = TypeVar("T")

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
    """cgroup.conf (a config file, not a command's output): `Key=Value` per line, `#` comments."""
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


def _parsed(what: str, parse: Callable[[str], T], text: str) -> T:
    """A command's answer through its one parser; unreadable output is a failed probe that says so."""
    try:
        return parse(text)
    except ValueError as exc:
        raise ProbeFailed(f"unexpected {what} output: {exc}", f"check the SLURM version and `{what}` by hand") from None


def slurm_config(runner: Runner) -> dict[str, str]:
    res = must(runner, ["scontrol", "show", "config"], "check that slurmctld answers")
    return _parsed("scontrol show config", parse_scontrol_config, res.stdout)


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


def sinfo_nodes(runner: Runner) -> list[SlurmNode]:
    res = must(runner, ["sinfo", "-h", "-N", "-o", SINFO_NODE_FORMAT], "check that slurmctld answers")
    return _parsed("sinfo", parse_sinfo_nodes, res.stdout)


def scontrol_nodes(runner: Runner) -> list[SlurmNode]:
    """Nodes with exact Gres/GresUsed and the Reason with its author and time (`[slurm@...]`).
    The multi-line layout keeps each free-text value (Reason, Comment) on its own line."""
    res = must(runner, ["scontrol", "show", "node"], "check that slurmctld answers")
    return _parsed("scontrol show node", parse_scontrol_nodes, res.stdout)


def scontrol_partitions(runner: Runner) -> list[SlurmPartition]:
    res = must(runner, ["scontrol", "show", "partition"], "check that slurmctld answers")
    return _parsed("scontrol show partition", parse_scontrol_partitions, res.stdout)


def gpu_nodes(runner: Runner, catalog: Catalog) -> list[SlurmNode]:
    gpu_parts = {p.name for p in catalog.hpc.slurm.partitions if p.gpu}
    return [n for n in sinfo_nodes(runner) if gpu_parts & set(n.partitions)]


def partitions_up(runner: Runner, catalog: Catalog) -> Outcome:
    up = {p.name for p in scontrol_partitions(runner) if p.up}
    required = [p.name for p in catalog.hpc.slurm.partitions]
    out = missing_items(up, required, "partitions up", "`scontrol update partitionname=<p> state=up`")
    return out


def _reason(node: SlurmNode) -> str:
    return node.reason.text if node.reason else ""


def gres_matches_catalog(runner: Runner, catalog: Catalog) -> Outcome:
    want = catalog.hpc.slurm.gpus_per_node
    gpu_parts = {p.name for p in catalog.hpc.slurm.partitions if p.gpu}
    nodes = [n for n in scontrol_nodes(runner) if gpu_parts & set(n.partitions)]
    if not nodes:
        raise ProbeFailed("no nodes in the GPU partitions", "check hpc.slurm.partitions against `sinfo`")
    bad = [
        n for n in nodes
        if n.gpus < want or (parse_gres_mismatch(n.reason) is not None and not n.state.available)
    ]
    return Outcome(
        passed=not bad,
        measured=len(nodes) - len(bad),
        threshold=len(nodes),
        unit=f"nodes with gpu GRES >= {want}",
        hint=GRES_HINT,
        nodes=tuple(n.name for n in bad),
        detail="; ".join(f"{n.name}: gpu={n.gpus}, {n.state}{', ' + _reason(n) if _reason(n) else ''}" for n in bad),
    )


def unavailable_share(runner: Runner, catalog: Catalog) -> Outcome:
    """Share of each partition's nodes out of service (busy nodes are in service), judged
    against the catalog's levels: ERROR above ``max_unavailable_fraction``, WARN above
    ``warn_unavailable_fraction``. The worst partition is reported."""
    nodes = sinfo_nodes(runner)
    # (rank: 2 ERROR / 1 WARN / 0 within, margin over the crossed level, share, partition, level)
    worst: tuple[int, float, float, str, float] = (0, -2.0, 0.0, "", 1.0)
    down: dict[str, str] = {}
    for part in catalog.hpc.slurm.partitions:
        mine = [n for n in nodes if part.name in n.partitions]
        if not mine:
            continue
        gone = [n for n in mine if not n.state.healthy]
        down.update({n.name: f"{n.state}{' (' + _reason(n) + ')' if _reason(n) else ''}" for n in gone})
        share = len(gone) / len(mine)
        error, warn = part.max_unavailable_fraction, part.warn_unavailable_fraction
        if share > error:
            verdict = (2, share - error, share, part.name, error)
        elif warn is not None and share > warn:
            verdict = (1, share - warn, share, part.name, warn)
        else:
            level = warn if warn is not None else error
            verdict = (0, share - level, share, part.name, level)
        worst = max(worst, verdict)
    rank, _, share, name, limit = worst
    return Outcome(
        passed=rank == 0,
        measured=round(share, 3),
        threshold=limit,
        unit=f"share of unavailable nodes{' in ' + name if name else ''}",
        hint="resume or repair drained/down nodes (`sinfo -R` lists the reasons)",
        nodes=tuple(sorted(down)),
        detail="; ".join(f"{k}: {v}" for k, v in sorted(down.items())),
        severity=Severity.ERROR if rank == 2 else Severity.WARN,
    )


def total_gpus(runner: Runner, catalog: Catalog) -> Outcome:
    usable = [n for n in gpu_nodes(runner, catalog) if n.state.healthy]  # busy GPUs still count
    return at_least(
        sum(n.gpus for n in usable),
        catalog.hpc.gpus.min_count,
        "schedulable GPUs",
        "multi-GPU tests need at least this many GPUs in service: resume drained GPU nodes",
        nodes=tuple(n.name for n in usable),
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


def free_space(runner: Runner, catalog: Catalog, warn: bool = False) -> Outcome:
    b = catalog.hpc.beegfs
    res = must(runner, ["df", "-P", "-B1", b.root], "check the BeeGFS mount")
    lines = res.stdout.strip().splitlines()
    try:
        avail = int(lines[-1].split()[3])
    except (IndexError, ValueError):
        raise ProbeFailed(f"unexpected df output: {res.stdout[:120]!r}", "check df on the login node") from None
    return at_least(
        round(avail / 1e9, 2),
        b.min_free_gb if not warn else (b.warn_free_gb or b.min_free_gb),
        "GB free",
        f"free space on {b.root}: remove old checkpoints under jobs/ and models/ or grow the filesystem",
    )


def free_space_warn(runner: Runner, catalog: Catalog) -> Outcome:
    return free_space(runner, catalog, warn=True)


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


PROBE_BYTES = 16 * 1024 * 1024


def _as_training_user(runner: Runner, catalog: Catalog, argv: list[str]) -> list[str]:
    """The login user is the training user on most sites; otherwise go through sudo -n."""
    user = catalog.hpc.beegfs.training_user
    if catalog.hpc.access.mode == "ssh" and catalog.hpc.access.login.user == user:
        return argv
    return ["sudo", "-n", "-u", user, "--", *argv]


def layout_writable(runner: Runner, catalog: Catalog) -> Outcome:
    """Create, read back and delete a probe file in each directory, as the training user;
    the first directory also times a 16 MiB write (metadata, not a threshold)."""
    user = catalog.hpc.beegfs.training_user
    dirs = directories(catalog)
    failed: list[str] = []
    throughput = None
    for i, path in enumerate(dirs.values()):
        probe = f"{path}/.mlops-write-probe"
        count = PROBE_BYTES // (1024 * 1024) if i == 0 else 1
        write = runner.run(_as_training_user(runner, catalog, [
            "dd", "if=/dev/zero", f"of={probe}", "bs=1M", f"count={count}", "conv=fsync", "status=none",
        ]))
        read = runner.run(_as_training_user(runner, catalog, ["stat", "-c", "%s", probe])) if write.ok else write
        runner.run(_as_training_user(runner, catalog, ["rm", "-f", probe]))
        if not (write.ok and read.ok and read.stdout.strip() == str(count * 1024 * 1024)):
            failed.append(path)
        elif i == 0 and write.duration_s > 0:
            throughput = round(PROBE_BYTES / 1e6 / write.duration_s, 1)
    return Outcome(
        passed=not failed,
        measured=len(dirs) - len(failed),
        threshold=len(dirs),
        unit=f"directories writable by {user}",
        hint=f"BeeGFS permissions or space: `chown -R {user} <dir>` and check quota so the training user can write",
        detail=("not writable: " + ", ".join(failed)) if failed else "",
        extra={"write_MBps": throughput} if throughput is not None else {},
    )


def beegfs_targets(runner: Runner, catalog: Catalog) -> Outcome:
    """beegfs-ctl --listtargets --state: every target Online and Good, where BeeGFS tools exist."""
    res = runner.run(["beegfs-ctl", "--listtargets", "--nodetype=storage", "--state"])
    if res.returncode == 127:
        return Outcome(True, "no beegfs-ctl", "all Online/Good", "targets", "",
                       detail=f"beegfs-ctl is not installed on {runner.where}; target states not checked")
    if not res.ok:
        raise ProbeFailed(f"beegfs-ctl failed: {res.tail(2)}", "check the BeeGFS management service")
    targets = parse_beegfs_targets(res.stdout)
    bad = [f"{t}: {r}/{c}" for t, r, c in targets if (r, c) != ("Online", "Good")]
    return Outcome(
        bool(targets) and not bad, len(targets) - len(bad), len(targets), "targets Online/Good",
        "a BeeGFS target is offline or needs resync: beegfs-ctl --listtargets --state; check beegfs-storage",
        detail="; ".join(bad),
    )


def parse_beegfs_targets(text: str) -> list[tuple[str, str, str]]:
    """Rows of `TargetID  Reachability  Consistency  NodeID` after the dashed header."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].isdigit():
            rows.append((parts[0], parts[1], parts[2]))
    return rows


def apptainer_on_compute(runner: Runner, catalog: Catalog) -> Outcome:
    """The login node is not where jobs run: ask a compute node too."""
    partition = catalog.smoke.partition
    res = runner.run(["srun", "-p", partition, "-N", "1", "-n", "1", "--time=00:01:00", "--quiet", "apptainer", "--version"], timeout_s=120)
    minimum = catalog.hpc.apptainer.min_version
    if not res.ok:
        return Outcome(False, "not installed", minimum, "version on a compute node",
                       f"install Apptainer >= {minimum} on every compute node", detail=res.tail(2))
    found = version_text(res.stdout)
    return Outcome(versions.at_least(found, minimum), found, minimum, "version on a compute node", f"upgrade Apptainer to >= {minimum}")


NO_DRIVER = "no NVIDIA driver"


def _smi_on_node(runner: Runner, catalog: Catalog, node: SlurmNode, partition: str) -> tuple[str, list[str]]:
    """(measured fact, problems) for one node, from nvidia-smi inside a job holding all its GPUs."""
    argv = [
        "srun", "-p", partition, "-w", node.name, "-N", "1", "-n", "1", f"--gres=gpu:{node.gpus}",
        "--time=00:02:00", "--quiet", catalog.hpc.gpus.nvidia_smi,
        f"--query-gpu={NVIDIA_SMI_QUERY}", "--format=csv,noheader,nounits",
    ]
    res = runner.run(argv, timeout_s=180)
    if not res.ok:
        text = (res.stderr + res.stdout).lower()
        if "no such file" in text or "not found" in text or "couldn't find" in text or "failed to initialize nvml" in text:
            return NO_DRIVER, [f"{node.name}: {NO_DRIVER} ({res.tail(1)})"]
        return f"srun exit {res.returncode}", [f"{node.name}: {res.tail(2)}"]
    try:
        gpus = parse_query_gpu(res.stdout)
    except ValueError as exc:
        return "unparsable", [f"{node.name}: {exc}"]
    problems = []
    if len(gpus) != node.gpus:
        problems.append(f"{node.name}: {len(gpus)} GPUs visible, GRES says {node.gpus}")
    minimum = catalog.hpc.gpus.min_driver_version
    for g in gpus:
        if minimum and g.driver_version and not versions.at_least(g.driver_version, minimum):
            problems.append(f"{node.name} GPU{g.index}: driver {g.driver_version} < {minimum}")
        problems += [f"{node.name} GPU{g.index}: {p}" for p in g.problems()]
    names = sorted({g.name or "?" for g in gpus})
    drivers = sorted({g.driver_version or "?" for g in gpus})
    return f"{len(gpus)}x {'/'.join(names)} driver {'/'.join(drivers)}", problems


def gpu_partition(catalog: Catalog) -> str:
    """Where GPU probes run: the first partition the catalog marks gpu, else the smoke one."""
    return next((p.name for p in catalog.hpc.slurm.partitions if p.gpu), catalog.smoke.partition)


def nvidia_smi_per_node(runner: Runner, catalog: Catalog) -> Outcome:
    """On every GPU node in service: GPU count equals GRES, driver >= minimum, no ECC or
    row-remap trouble. A busy node is probed too: its step queues until the node's GPUs free
    up (within the probe's timeout), as a validation run beside running jobs needs."""
    partition = gpu_partition(catalog)
    nodes = [n for n in gpu_nodes(runner, catalog) if n.state.healthy and n.gpus > 0]
    if not nodes:
        raise ProbeFailed("no GPU node in service to probe", "resume a GPU node first")
    facts, problems, bad = [], [], []
    for node in nodes:
        fact, trouble = _smi_on_node(runner, catalog, node, partition)
        facts.append(fact)
        if trouble:
            bad.append(node.name)
            problems += trouble
    fake = " (the catalog declares these GPUs fake)" if catalog.hpc.gpus.fake else ""
    return Outcome(
        passed=not bad,
        measured=facts[0] if len(set(facts)) == 1 else "; ".join(facts),
        threshold="GPU count == GRES, healthy",
        unit="nvidia-smi inside a job on each GPU node",
        hint="no GPU inside a job: install/repair the NVIDIA driver, check gres.conf File= lines and cgroup ConstrainDevices" + fake,
        nodes=tuple(bad),
        detail="; ".join(problems),
    )
