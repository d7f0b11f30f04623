"""HPC infrastructure: SLURM, GPU nodes, BeeGFS and Apptainer, observed through the login
node and checked against the catalog."""

from __future__ import annotations

import dagster as dg

from mlops_assets.catalog.schema import Catalog
from mlops_assets.checking import ProbeContext, ProbeSpec, asset_checks, externals, on_hpc
from mlops_assets.core.checks import CheckSpec, Outcome, ProbeFailed, Severity
from mlops_assets.core.probes import hpc as r
from mlops_assets.platform import active

GROUP = "hpc"


def _nv_image(catalog: Catalog) -> str:
    """The image the smoke jobs use, else the first one."""
    return catalog.smoke.container or next(iter(catalog.containers))


def _nv_exposes_node_gpus(ctx: ProbeContext) -> Outcome:
    """--nv with every GPU of each free GPU node (one step for all), in the image the smoke
    jobs use (else the first one)."""
    from mlops_assets.core.probes.containers import nv_exposes_gpus_per_node

    cat, runner = ctx.catalog, ctx.hpc.runner()
    name = _nv_image(cat)
    image = cat.container_path(name)
    if not runner.run(["test", "-f", image]).ok:
        raise ProbeFailed(
            f"{image} is not staged: --nv needs an image to exec",
            f"materialize {cat.container_key(name)} first",
        )
    return nv_exposes_gpus_per_node(runner, image, r.gpu_partition(cat), fake=cat.hpc.gpus.fake)


def specs(catalog: Catalog) -> list[ProbeSpec]:
    E, W = Severity.ERROR, Severity.WARN
    cgroup = E if catalog.hpc.slurm.require_cgroup_constrain_devices else W
    accounting = E if catalog.hpc.slurm.require_accounting else W
    hpc = ("hpc",)
    return [
        CheckSpec(
            "slurm",
            "slurm_controller_responds",
            E,
            "Nothing runs if slurmctld is down.",
            on_hpc(r.controller_latency),
            hpc,
            blocking=True,
        ),
        CheckSpec(
            "slurm",
            "slurm_partitions_up",
            E,
            "Jobs queue forever on a partition that is down.",
            on_hpc(r.partitions_up),
            hpc,
            blocking=True,
        ),
        CheckSpec(
            "slurm",
            "slurm_gres_matches_catalog",
            E,
            "A GRES mismatch drains the node and leaves GPU jobs pending.",
            on_hpc(r.gres_matches_catalog),
            hpc,
            hint=r.GRES_HINT,
        ),
        CheckSpec(
            "slurm",
            "slurm_unavailable_nodes_within_limit",
            E,
            "Too many drained nodes means capacity is gone before anyone notices: ERROR above "
            "the partition's max_unavailable_fraction, WARN above its warn_unavailable_fraction.",
            on_hpc(r.unavailable_share),
            hpc,
        ),
        CheckSpec(
            "slurm",
            "slurm_cgroup_constrains_devices",
            cgroup,
            "Without ConstrainDevices a job sees GPUs it was not given.",
            on_hpc(r.cgroup_constrains_devices),
            hpc,
        ),
        CheckSpec(
            "slurm",
            "slurm_accounting_enabled",
            accounting,
            "sacct is how smoke jobs prove their final state.",
            on_hpc(r.accounting_enabled),
            hpc,
        ),
        CheckSpec(
            "slurm",
            "slurm_client_commands_present",
            E,
            "The orchestrator drives SLURM through these commands.",
            on_hpc(r.client_commands),
            hpc,
        ),
        CheckSpec(
            "gpu_nodes",
            "gpu_count_at_least_minimum",
            E,
            "Multi-GPU validation needs this many schedulable GPUs.",
            on_hpc(r.total_gpus),
            hpc,
        ),
        CheckSpec(
            "gpu_nodes",
            "gpu_nvidia_smi_matches_gres_per_node",
            W if catalog.hpc.gpus.fake else E,
            "Proves driver, device files and GRES binding from inside a job on each node.",
            on_hpc(r.nvidia_smi_per_node),
            hpc,
            light=False,
        ),
        CheckSpec(
            "beegfs",
            "beegfs_mounted",
            E,
            "Everything is staged on the shared filesystem.",
            on_hpc(r.mount_matches),
            hpc,
            blocking=True,
        ),
        CheckSpec(
            "beegfs",
            "beegfs_free_space",
            E,
            "Staging and checkpoints fail mid-write on a full disk.",
            on_hpc(r.free_space),
            hpc,
            blocking=True,
        ),
        CheckSpec(
            "beegfs",
            "beegfs_free_space_warning",
            W,
            "Early warning before the hard threshold.",
            on_hpc(r.free_space_warn),
            hpc,
        ),
        CheckSpec(
            "beegfs",
            "beegfs_targets_online_good",
            E,
            "A lost storage target corrupts reads long before df notices.",
            on_hpc(r.beegfs_targets),
            hpc,
        ),
        CheckSpec(
            "apptainer",
            "apptainer_version_at_least_minimum",
            E,
            "Older Apptainer lacks the --nv behaviour the jobs rely on.",
            on_hpc(r.apptainer_version),
            hpc,
        ),
        CheckSpec(
            "apptainer",
            "apptainer_on_compute_node",
            E,
            "Jobs exec containers on compute nodes, not on the login node.",
            on_hpc(r.apptainer_on_compute),
            hpc,
            light=False,
        ),
        CheckSpec(
            "apptainer",
            "apptainer_nv_exposes_allocated_gpus",
            W if catalog.hpc.gpus.fake else E,
            "GPU count inside `exec --nv` equals the count the job holds; counted inside, since "
            "--nv exits 0 without a driver.",
            _nv_exposes_node_gpus,
            hpc,
            light=False,
            needs=(catalog.container_key(_nv_image(catalog)),),
        ),
    ]


def build(catalog: Catalog) -> dg.Definitions:
    nodes = ", ".join(p.name for p in catalog.hpc.slurm.partitions if p.gpu)
    # (key, kinds, description[, deps])
    assets = externals(
        GROUP,
        ("slurm", ["slurm"], "The SLURM controller, partitions, GRES, cgroups and accounting."),
        ("gpu_nodes", ["nvidia", "slurm"], f"GPU nodes of partitions: {nodes}.", ["slurm"]),
        ("beegfs", ["beegfs"], f"The shared filesystem at {catalog.hpc.beegfs.root}."),
        ("apptainer", ["apptainer"], "The container runtime on the compute nodes."),
    )
    return dg.Definitions(
        assets=assets, asset_checks=asset_checks(specs(catalog), name="hpc_checks")
    )


defs = build(active().catalog)
