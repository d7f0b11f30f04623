"""Probes of the HPC side: run read-only commands through a Runner and judge the answer
against the catalog. No Dagster imports; the runner is injected, so tests can use a real
local or SSH runner."""

from __future__ import annotations

import time

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.checks import (
    Outcome,
    ProbeFailed,
    Scalar,
    Severity,
    at_least,
    at_most,
    missing_items,
)
from mlops_assets.core.parse import apptainer, nvidia_smi, storage, versions
from mlops_assets.core.parse.slurm import nodes as slurm_nodes
from mlops_assets.core.parse.slurm import states as slurm_states
from mlops_assets.core.probes import node_step
from mlops_assets.core.transport.hostexec import Runner, must

GRES_HINT = (
    "job pending on GRES: make gres.conf and slurm.conf agree on the GPU count, then "
    "`scontrol update nodename=<node> state=resume`"
)


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
        raise ProbeFailed(
            f"scontrol ping: {res.stdout.strip()}", "slurmctld is down: start it and check its log"
        )
    return at_most(
        round(latency, 3),
        catalog.hpc.slurm.max_controller_latency_s,
        "s",
        "slurmctld answers slowly: check its load and the network to the controller",
    )


def slurm_config(runner: Runner) -> dict[str, str]:
    res = must(runner, ["scontrol", "show", "config"], "check that slurmctld answers")
    return node_step.parsed("scontrol show config", slurm_nodes.parse_scontrol_config, res.stdout)


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


def sinfo_nodes(runner: Runner) -> list[slurm_nodes.SlurmNode]:
    """One sinfo shared by every probe of a run (node_step keeps it)."""
    return node_step.sinfo_nodes(runner)


def scontrol_nodes(runner: Runner) -> list[slurm_nodes.SlurmNode]:
    """Nodes with exact Gres/GresUsed (node_step reads them for fleet steps too)."""
    return node_step.scontrol_nodes(runner)


def scontrol_partitions(runner: Runner) -> list[slurm_nodes.SlurmPartition]:
    res = must(runner, ["scontrol", "show", "partition"], "check that slurmctld answers")
    return node_step.parsed(
        "scontrol show partition", slurm_nodes.parse_scontrol_partitions, res.stdout
    )


def gpu_nodes(runner: Runner, catalog: Catalog) -> list[slurm_nodes.SlurmNode]:
    gpu_parts = {p.name for p in catalog.hpc.slurm.partitions if p.gpu}
    return [n for n in sinfo_nodes(runner) if gpu_parts & set(n.partitions)]


def partitions_up(runner: Runner, catalog: Catalog) -> Outcome:
    up = {p.name for p in scontrol_partitions(runner) if p.up}
    required = [p.name for p in catalog.hpc.slurm.partitions]
    out = missing_items(
        up, required, "partitions up", "`scontrol update partitionname=<p> state=up`"
    )
    return out


def _reason(node: slurm_nodes.SlurmNode) -> str:
    return node.reason.text if node.reason else ""


def gres_matches_catalog(runner: Runner, catalog: Catalog) -> Outcome:
    want = catalog.hpc.slurm.gpus_per_node
    gpu_parts = {p.name for p in catalog.hpc.slurm.partitions if p.gpu}
    nodes = [n for n in scontrol_nodes(runner) if gpu_parts & set(n.partitions)]
    if not nodes:
        raise ProbeFailed(
            "no nodes in the GPU partitions", "check hpc.slurm.partitions against `sinfo`"
        )
    bad = [
        n
        for n in nodes
        if n.gpus < want
        or (slurm_states.parse_gres_mismatch(n.reason) is not None and not n.state.available)
    ]
    return Outcome(
        passed=not bad,
        measured=len(nodes) - len(bad),
        threshold=len(nodes),
        unit=f"nodes with gpu GRES >= {want}",
        hint=GRES_HINT,
        nodes=tuple(n.name for n in bad),
        detail="; ".join(
            f"{n.name}: gpu={n.gpus}, {n.state}{', ' + _reason(n) if _reason(n) else ''}"
            for n in bad
        ),
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
        down.update(
            {n.name: f"{n.state}{' (' + _reason(n) + ')' if _reason(n) else ''}" for n in gone}
        )
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
    return missing_items(
        found, wanted, "SLURM client commands", "install slurm-client on the login node"
    )


def version_text(text: str) -> str:
    try:
        return ".".join(map(str, versions.parse_version(text).release))
    except ValueError:
        raise ProbeFailed(
            f"no version number in {text.strip()[:80]!r}", "check the tool's --version output"
        ) from None


def apptainer_outcome(version_output: str, minimum: str, unit: str = "version") -> Outcome:
    """Judge `apptainer --version` (or `singularity --version`): only Apptainer counts, because
    every job and probe calls `apptainer`; another product is named, never compared by number
    (Singularity 3.7 is not newer than Apptainer 1.1)."""
    try:
        product, found = apptainer.parse_product_version(version_output)
    except ValueError:
        raise ProbeFailed(
            f"no version number in {version_output.strip()[:80]!r}",
            "check the tool's --version output",
        ) from None
    label = apptainer.product_label(product, found)
    if product != apptainer.APPTAINER:
        return Outcome(
            False,
            label,
            f"Apptainer >= {minimum}",
            unit,
            f"install Apptainer >= {minimum}: jobs and probes call `apptainer`, "
            f"which {product} does not provide",
            detail=(
                f"{product} {found} found{label[len(product) + len(found) + 1 :]}, "
                f"Apptainer >= {minimum} needed"
            ),
        )
    return Outcome(
        versions.at_least(found, minimum),
        version_text(found),
        minimum,
        unit,
        f"upgrade Apptainer to >= {minimum}",
        detail=version_output.strip()[:200],
    )


def apptainer_version(runner: Runner, catalog: Catalog) -> Outcome:
    minimum = catalog.hpc.apptainer.min_version
    res = runner.run(["apptainer", "--version"])
    if res.returncode == 127:  # no apptainer: say what is there instead, if anything
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
    return apptainer_outcome(res.stdout, minimum)


def mount_matches(runner: Runner, catalog: Catalog) -> Outcome:
    """The BeeGFS root is its own mount of the catalog's type, and writable: a missing mount
    silently falls back to the root disk, a read-only one fails every staging write."""
    b = catalog.hpc.beegfs
    res = runner.run(["findmnt", "-n", "-o", storage.FINDMNT_COLUMNS, "-T", b.root])
    if res.returncode == 127:
        raise ProbeFailed(f"findmnt is not installed on {runner.where}", "install util-linux")
    if not res.ok:
        return Outcome(
            False,
            "missing",
            f"{b.fs_type} at {b.root}",
            "mount",
            f"{b.root} does not exist: mount BeeGFS there on every node",
            detail=res.tail(2),
        )
    try:
        mount = storage.parse_findmnt(res.stdout)
    except ValueError as exc:
        raise ProbeFailed(
            f"unexpected findmnt output: {exc}", "check findmnt (util-linux) on the login node"
        ) from None
    ok = mount.target == b.root and mount.fstype == b.fs_type and not mount.read_only
    problem = (
        f"{b.root} is served by {mount.target} ({mount.fstype})"
        if mount.target != b.root or mount.fstype != b.fs_type
        else f"{b.root} is mounted read-only ({','.join(mount.options)})"
    )
    return Outcome(
        passed=ok,
        measured=f"{mount.fstype} at {mount.target}" + (" (ro)" if mount.read_only else ""),
        threshold=f"{b.fs_type} at {b.root}",
        unit="mount",
        hint=(
            f"remount {b.root} read-write (check the client log: BeeGFS remounts ro after errors)"
            if mount.read_only and mount.target == b.root
            else f"mount BeeGFS at {b.root} on every node "
            "(beegfs-client; check beegfs-ctl --listtargets --state)"
        ),
        detail="" if ok else problem,
    )


def free_space(runner: Runner, catalog: Catalog, warn: bool = False) -> Outcome:
    b = catalog.hpc.beegfs
    res = must(runner, ["df", "-P", "-B1", b.root], "check the BeeGFS mount")
    try:
        entry = storage.parse_df(res.stdout)[-1]
    except ValueError as exc:
        raise ProbeFailed(f"unexpected df output: {exc}", "check df on the login node") from None
    return at_least(
        round(entry.avail_bytes / 1e9, 2),
        b.min_free_gb if not warn else (b.warn_free_gb or b.min_free_gb),
        "GB free",
        f"free space on {b.root}: remove old checkpoints under jobs/ and models/ "
        "or grow the filesystem",
    )


def free_space_warn(runner: Runner, catalog: Catalog) -> Outcome:
    return free_space(runner, catalog, warn=True)


def layout_complete(runner: Runner, catalog: Catalog) -> Outcome:
    paths = catalog.hpc.beegfs.role_directories()
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
    dirs = catalog.hpc.beegfs.role_directories()
    failed: list[str] = []
    throughput = None
    for i, path in enumerate(dirs.values()):
        probe = f"{path}/.mlops-write-probe"
        count = PROBE_BYTES // (1024 * 1024) if i == 0 else 1
        write = runner.run(
            _as_training_user(
                runner,
                catalog,
                [
                    "dd",
                    "if=/dev/zero",
                    f"of={probe}",
                    "bs=1M",
                    f"count={count}",
                    "conv=fsync",
                    "status=none",
                ],
            )
        )
        read = (
            runner.run(_as_training_user(runner, catalog, ["stat", "-c", "%s", probe]))
            if write.ok
            else write
        )
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
        hint=f"BeeGFS permissions or space: `chown -R {user} <dir>` "
        "and check quota so the training user can write",
        detail=("not writable: " + ", ".join(failed)) if failed else "",
        extra={"write_MBps": throughput} if throughput is not None else {},
    )


def beegfs_targets(runner: Runner, catalog: Catalog) -> Outcome:
    """beegfs-ctl --listtargets --state for metadata and storage: every target Online and Good.
    Where the catalog's filesystem is not BeeGFS there are no targets; where it is and the tool
    is missing, the states are unknown, which fails rather than passes."""
    fs_type = catalog.hpc.beegfs.fs_type
    targets: list[tuple[str, storage.BeegfsTarget]] = []
    for nodetype in ("meta", "storage"):
        res = runner.run(["beegfs-ctl", "--listtargets", f"--nodetype={nodetype}", "--state"])
        if res.returncode == 127:
            if fs_type != "beegfs":
                return Outcome(
                    True,
                    f"not BeeGFS ({fs_type})",
                    "all Online/Good",
                    "targets",
                    "",
                    detail=f"the catalog's filesystem is {fs_type}: no BeeGFS targets to check",
                )
            return Outcome(
                False,
                "unmeasured",
                "all Online/Good",
                "targets",
                "install beegfs-utils (beegfs-ctl) on the login node so target states can be read",
                detail=f"beegfs-ctl is not installed on {runner.where}: "
                "metadata and storage target states unknown",
            )
        if not res.ok:
            raise ProbeFailed(
                f"beegfs-ctl --listtargets --nodetype={nodetype} failed: {res.tail(2)}",
                "check the BeeGFS management service",
            )
        try:
            targets += [(nodetype, t) for t in storage.parse_beegfs_targets(res.stdout)]
        except ValueError as exc:
            raise ProbeFailed(
                f"beegfs-ctl --listtargets --nodetype={nodetype}: {exc}",
                "check the BeeGFS version and beegfs-ctl",
            ) from None
    bad = [f"{kind} target {t.target_id}: {t.trouble}" for kind, t in targets if not t.good]
    return Outcome(
        bool(targets) and not bad,
        len(targets) - len(bad),
        len(targets),
        "metadata and storage targets Online/Good",
        "a BeeGFS target is offline or needs resync: beegfs-ctl --listtargets --state; "
        "check beegfs-storage/beegfs-meta",
        detail="; ".join(bad) or ("" if targets else "beegfs-ctl listed no targets"),
    )


def apptainer_on_compute(runner: Runner, catalog: Catalog) -> Outcome:
    """The login node is not where jobs run: ask a compute node too. A step SLURM never
    started is the partition's fault and says so; only slurmstepd's execve error means the
    program is missing."""
    partition = catalog.smoke.partition
    minimum = catalog.hpc.apptainer.min_version
    free, busy = node_step.split_free(runner, partition)
    if not free:  # never queue behind running jobs: nothing was judged, which is a WARN
        return Outcome(
            False,
            "not probed",
            minimum,
            "version on a compute node",
            node_step.BUSY_HINT,
            detail=f"every node of {partition} is busy; " + node_step.busy_note(busy),
            severity=Severity.WARN,
        )
    step = node_step.run_step(
        runner,
        partition,
        ["apptainer", "--version"],
        node=free[0].name,
        wait_s=node_step.FLEET_WAIT_S,
        run_s=60,
    )
    if not step.ran:
        raise ProbeFailed(
            f"the probe job did not run on partition {partition}: {step.why_not}",
            node_step.OUT_OF_SERVICE_HINT,
        )
    if step.missing_program or not step.result.ok:
        return Outcome(
            False,
            "not installed" if step.missing_program else f"exit {step.result.returncode}",
            minimum,
            "version on a compute node",
            f"install Apptainer >= {minimum} on every compute node",
            detail=step.result.tail(2),
        )
    return apptainer_outcome(step.result.stdout, minimum, "version on a compute node")


_SMI_HINT = (
    "no GPU inside a job: install/repair the NVIDIA driver, "
    "check gres.conf File= lines and cgroup ConstrainDevices"
)


def judge_smi_output(
    where: str,
    returncode: int,
    stdout: str,
    stderr: str,
    *,
    expected_count: int | None,
    min_driver: str | None,
) -> tuple[nvidia_smi.Health, nvidia_smi.SmiFailure | None]:
    """The health rule on what ``nvidia-smi --query-gpu`` printed on one node: a known
    failure (driver/library mismatch, GPU fallen off the bus, module not loaded...) is named
    with its usual fix; otherwise the CSV goes through :func:`nvidia_smi.judge_gpu_health`."""
    text = stderr + stdout
    failure = nvidia_smi.classify_failure(text)
    if failure is not None:
        return nvidia_smi.Health(failure.meaning, [f"{where}: {failure.describe()}"], []), failure
    if returncode != 0:
        tail = " | ".join(ln.strip() for ln in text.strip().splitlines()[-2:])
        return nvidia_smi.Health(f"exit {returncode}", [f"{where}: {tail}"], []), None
    try:
        gpus = nvidia_smi.parse_query_gpu(stdout)
    except ValueError as exc:
        return nvidia_smi.Health("unparsable", [f"{where}: {exc}"], []), None
    return nvidia_smi.judge_gpu_health(
        gpus, where=where, expected_count=expected_count, min_driver=min_driver
    ), None


def gpu_partition(catalog: Catalog) -> str:
    """Where GPU probes run: the first partition the catalog marks gpu, else the smoke one."""
    return next((p.name for p in catalog.hpc.slurm.partitions if p.gpu), catalog.smoke.partition)


def _smi_health(
    run: node_step.NodeRun, gpus: int, catalog: Catalog
) -> tuple[nvidia_smi.Health, nvidia_smi.SmiFailure | None]:
    """One node's part of the fleet step, judged by :func:`judge_smi_output`."""
    if run.returncode in (124, 137):  # the wrapper's timeout ended it: nvidia-smi hung
        return nvidia_smi.Health(
            "nvidia-smi hung",
            [
                f"{run.node}: nvidia-smi {run.why_not}: a GPU fallen off the bus or a hung "
                "driver (look for Xid 79/48 in dmesg); drain the node and reset the GPU or reboot"
            ],
            [],
        ), None
    if run.why_not:
        return nvidia_smi.Health("not probed", [], [f"{run.node}: {run.why_not}"]), None
    return judge_smi_output(
        run.node,
        run.returncode if run.returncode is not None else -1,
        run.stdout,
        run.stderr,
        expected_count=gpus,
        min_driver=catalog.hpc.gpus.min_driver_version,
    )


def nvidia_smi_per_node(runner: Runner, catalog: Catalog) -> Outcome:
    """On every GPU node in service and free now: GPU count equals GRES, driver >= minimum,
    no ECC or row-remap trouble. One labelled srun step covers the nodes (holding each node's
    GPUs), so the wall time does not grow with their number. Busy nodes are not waited for:
    they are named as not probed (the node sensor probes them when they free up); when no
    node at all could be probed, nothing was judged, which is a WARN saying so."""
    partition = gpu_partition(catalog)
    command = [
        catalog.hpc.gpus.nvidia_smi,
        f"--query-gpu={nvidia_smi.NVIDIA_SMI_QUERY}",
        "--format=csv,noheader,nounits",
    ]
    fleet = node_step.run_on_nodes(runner, partition, command, all_gpus=True, with_gpus_only=True)
    if not fleet.nodes and not fleet.busy:
        raise ProbeFailed(f"no node of partition {partition} in service has a GPU GRES", GRES_HINT)
    gres = {n.name: n.gpus for n in node_step.sinfo_nodes(runner)}
    facts, problems, unjudged, bad, hints = [], [], [], [], []
    for name in sorted(fleet.nodes):
        health, failure = _smi_health(fleet.nodes[name], gres.get(name, 0), catalog)
        facts.append(health.fact)
        problems += health.problems
        unjudged += health.unjudged
        if health.problems or health.unjudged:
            bad.append(name)
        if failure is not None and failure.hint not in hints:
            hints.append(failure.hint)
    fake = " (the catalog declares these GPUs fake)" if catalog.hpc.gpus.fake else ""
    busy = fleet.busy_note()
    extra: dict[str, Scalar] = {"nodes_probed": len(fleet.nodes), "srun_steps": fleet.steps}
    if fleet.busy:
        extra["not_probed_busy"] = ",".join(sorted(fleet.busy))
    if not fleet.nodes:
        return Outcome(
            passed=False,
            measured="not probed",
            threshold="GPU count == GRES, healthy",
            unit="nvidia-smi inside a job on each GPU node",
            hint=node_step.BUSY_HINT + fake,
            detail=f"every GPU node was busy, nothing was judged; {busy}",
            extra=extra,
            severity=Severity.WARN,
        )
    if not problems and unjudged:
        hint = (
            "a figure the health rule needs is not reported by nvidia-smi: "
            "it is unjudged, not passed"
        )
    else:
        hint = "; ".join(hints) if hints else _SMI_HINT
    distinct = sorted(set(facts), key=facts.index)
    return Outcome(
        passed=not problems and not unjudged,
        measured=distinct[0] if len(distinct) == 1 else "; ".join(distinct),
        threshold="GPU count == GRES, healthy",
        unit="nvidia-smi inside a job on each GPU node",
        hint=hint + fake,
        nodes=tuple(bad),
        detail="; ".join(
            problems + [f"unjudged: {u}" for u in unjudged] + ([busy] if busy else [])
        ),
        extra=extra,
        severity=Severity.WARN if not problems and unjudged else None,
    )
