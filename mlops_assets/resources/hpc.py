"""The HPC side as one Dagster resource: how to reach it, which Python runs payloads there, where
its BeeGFS directories are, what environment jobs get, and a Pipes client per placement.

Why one resource: those facts used to be re-derived from the catalog by every asset, probe and
client factory (hpc.python alone in eight places), and each client was built by hand with its
timeout patched on afterwards. Now `HpcSide.from_catalog` is the one place that reads them; an
asset asks for a placement (`login_client`, `staging_client`, `build_client`, `smoke_client`)
and gets a client whose `run` is the same everywhere; a probe takes the same resource through
ProbeContext. The config is plain values (strings, dicts, one nested job), so the UI shows what
a run used and a test can build one without a catalog. One SSH connection per run is shared by
every client and probe (`runner()`), closed when the run's execution ends. Import direction is
shipping -> hpc_pipes -> slurm_pipes -> hpc: no cycle, nothing imported lazily to hide one.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from mlops_assets.catalog.schema import Catalog, SmokeJob, SshLogin
from mlops_assets.core import slurm_jobs as sj
from mlops_assets.core.transport.hostexec import LocalRunner, Runner, SshRunner, SshSettings
from mlops_assets.resources.clients import S3Resource
from mlops_assets.resources.hpc_pipes import LoginPipesClient, PayloadClient, private_file
from mlops_assets.resources.shipping import BUILD, DATA_MOVER, LOGIN, SMOKE, ship_payloads
from mlops_assets.resources.slurm_pipes import SlurmPipesClient

#: A login-node payload may run this long unless its asset says otherwise (`timeout_s`).
LOGIN_TIMEOUT_S = 3600.0


class SlurmJob(dg.Config):
    """A placement's SLURM job: the partition and the job's size."""

    partition: str
    gpus: int = 0
    cpus: int = 1
    mem_mb: int = 1024
    time_limit_min: int = 10

    def resources(self) -> sj.Resources:
        return sj.Resources(
            gpus=self.gpus, cpus=self.cpus, mem_mb=self.mem_mb, time_limit_min=self.time_limit_min
        )


def job_resources(
    job: SmokeJob, nodelist: str | None = None, reservation: str | None = None
) -> sj.Resources:
    """A catalog job size (smoke.jobs.*, containers.*.job) as what a SLURM client asks for;
    `reservation`: the quarantine loop's re-test of a node it holds."""
    return sj.Resources(**job.model_dump(), nodelist=nodelist, reservation=reservation)


class HpcSide(dg.ConfigurableResource):
    """The HPC side: `local` (subprocess, the orchestrator sits there) or `ssh` (the login
    node), its payload Python, BeeGFS directories by role, the job environment, and where the
    data mover and the smoke jobs run. See the module docstring."""

    mode: str = "ssh"
    host: str = "127.0.0.1"
    port: int = 22
    user: str = "admin"
    key_path: str = "~/.ssh/id_ed25519"
    known_hosts: str = "~/.ssh/known_hosts"
    connect_timeout_s: float = 10
    command_timeout_s: float = 60
    python: str = "python3"
    env: dict[str, str] = {}
    directories: dict[str, str] = {}
    beegfs_root: str = "/mnt/beegfs"
    data_mover: SlurmJob | None = None
    smoke_partition: str = ""
    smoke_container: str | None = None

    _runner: Runner | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_catalog(cls, catalog: Catalog) -> HpcSide:
        """Everything the HPC side needs from the catalog, read here and nowhere else."""
        hpc = catalog.hpc
        login = hpc.access.login
        mover = hpc.data_mover
        return cls(
            mode=hpc.access.mode,
            **login.model_dump(),
            python=hpc.python,
            env=dict(hpc.env),
            directories=hpc.beegfs.role_directories(),
            beegfs_root=hpc.beegfs.root,
            data_mover=(
                SlurmJob(partition=mover.partition, **mover.job.model_dump())
                if mover is not None
                else None
            ),
            smoke_partition=catalog.smoke.partition,
            smoke_container=(
                catalog.container_path(catalog.smoke.container) if catalog.smoke.container else None
            ),
        )

    # ------------------------------------------------------------------ reaching it

    def runner(self) -> Runner:
        """The run's one connection (made on first use), shared by every client and probe."""
        with self._lock:
            if self._runner is None:
                self._runner = self._make_runner()
            return self._runner

    def _make_runner(self) -> Runner:
        if self.mode == "local":
            return LocalRunner(self.command_timeout_s)
        # the login's settings are the catalog's SshLogin fields, copied here by from_catalog
        login = {name: getattr(self, name) for name in SshLogin.model_fields}
        return SshRunner(SshSettings(**login))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    def directory(self, role: str) -> str:
        """A BeeGFS directory by role (datasets, scripts, jobs, ...); an unknown role raises
        KeyError naming the roles this resource knows."""
        if role not in self.directories:
            raise KeyError(
                f"no BeeGFS directory role {role!r} (one of {', '.join(self.directories)})"
            )
        return self.directories[role]

    def ship(self, kit: str = LOGIN) -> str:
        """Ship one kit of payloads (shipping.SHIPPED) where it differs; returns the folder the
        checks run `mlops_manifest.py` and `load_check.py` from."""
        return ship_payloads(self.runner(), self.directory("scripts"), kit)

    # ------------------------------------------------------------------ placements

    def login_client(self, *, timeout_s: float = LOGIN_TIMEOUT_S) -> LoginPipesClient:
        """Payloads as processes on the login node (here, in `local` mode)."""
        return LoginPipesClient(
            self.runner(),
            python=self.python,
            scripts_dir=self.directory("scripts"),
            messages_dir=f"{self.directory('jobs')}/pipes",
            env=self.env,
            timeout_s=timeout_s,
        )

    def staging_client(self, *, timeout_s: float = LOGIN_TIMEOUT_S) -> PayloadClient:
        """Where downloads and uploads run: SLURM jobs on the data-mover partition when the
        catalog names one (`hpc.data_mover`), else the login node with `timeout_s`."""
        if self.data_mover is None:
            return self.login_client(timeout_s=timeout_s)
        return self._slurm(
            self.data_mover.partition, self.data_mover.resources(), "data-mover", DATA_MOVER
        )

    def build_client(self, partition: str, job: sj.Resources) -> SlurmPipesClient:
        """Container builds as SLURM jobs on `partition`, with the HPC Python (the image
        being built cannot run its own build)."""
        return self._slurm(partition, job, "containers", BUILD)

    def smoke_client(
        self, job: sj.Resources, *, reattach: bool = False, container: str | None = None
    ) -> SlurmPipesClient:
        """The smoke jobs: the smoke partition, inside `container` (an image path: the SFT
        smoke's Oumi image) or else the smoke container (BeeGFS bound) when the catalog names
        one; `job.nodelist` pins a node."""
        container = container or self.smoke_container
        return self._slurm(
            self.smoke_partition,
            job,
            "smoke",
            SMOKE,
            container=container,
            binds=[self.beegfs_root] if container else [],
            reattach=reattach,
        )

    def _slurm(
        self, partition: str, job: sj.Resources, jobs_subdir: str, kit: str, **options: Any
    ) -> SlurmPipesClient:
        return SlurmPipesClient(
            self.runner(),
            partition=partition,
            job=job,
            python=self.python,
            scripts_dir=self.directory("scripts"),
            jobs_dir=f"{self.directory('jobs')}/{jobs_subdir}",
            env=self.env,
            kit=kit,
            **options,
        )

    # ------------------------------------------------------------------ composite runs

    def sync_to_s3(
        self, context: dg.AssetExecutionContext, s3: S3Resource, extras: dict[str, Any]
    ) -> dg.MaterializeResult:
        """sync_s3.py where staging runs. The S3 keys reach it in a 0600 file in a 0700
        directory on the HPC side (private_file: written over SFTP, removed after the run and
        by the payload as soon as it has read them), because everything else a payload gets is
        visible to others: the SSH command line with the Pipes bootstrap (`ps`), the Pipes
        extras (recorded in the event log) and the run's metadata."""
        keys = json.dumps(
            {"access_key_id": s3.access_key_id, "secret_access_key": s3.secret_access_key}
        ).encode()
        jobs = f"{self.directory('jobs')}/pipes"
        with private_file(self.runner(), jobs, "s3.json", keys) as path:
            done = self.staging_client().run(
                context=context, payload="sync_s3.py", extras={**extras, "credentials_file": path}
            )
        return done.get_materialize_result()
