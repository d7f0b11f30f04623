"""Dagster Pipes to the HPC side: the payloads in mlops_assets/payloads run next to the data
(a subprocess when the orchestrator sits on the HPC side, the SSH login node otherwise) and
report back through a message file on the shared filesystem.

- `ship_payloads` copies the payload scripts (and core/manifest.py as `mlops_manifest.py`) to
  BeeGFS `scripts/mlops_payloads/`, only those whose sha256 differs, each by temp file + rename.
- `RunnerFileMessageReader` is PipesFileMessageReader over a Runner: the payload's default
  message writer appends JSON lines to a file on BeeGFS; the orchestrator tails it with
  `tail -c +OFFSET` through the same runner (local or SSH), so progress arrives while the
  payload runs.
- `HpcPipesClient.run` opens the Pipes session, passes the bootstrap env (context injected
  through the environment) plus the catalog's `hpc.env`, runs `hpc.python payload.py`, and
  returns `PipesClientCompletedInvocation`; a failing payload raises `dg.Failure` with the
  payload's own last error lines.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.transport.hostexec import CommandResult, Runner, SshRunner

PAYLOAD_DIR = "mlops_payloads"
# shipped name -> (package, resource name)
PAYLOAD_FILES: dict[str, tuple[str, str]] = {
    "mlops_manifest.py": ("mlops_assets.core", "manifest.py"),
    "stage_common.py": ("mlops_assets.payloads", "stage_common.py"),
    "stage_hub.py": ("mlops_assets.payloads", "stage_hub.py"),
    "stage_torchvision.py": ("mlops_assets.payloads", "stage_torchvision.py"),
    "sync_s3.py": ("mlops_assets.payloads", "sync_s3.py"),
    "load_check.py": ("mlops_assets.payloads", "load_check.py"),
    "stage_files.py": ("mlops_assets.payloads", "stage_files.py"),
    "mlops_apptainer.py": ("mlops_assets.core.parse", "apptainer.py"),
    "container_image.py": ("mlops_assets.payloads", "container_image.py"),
}
POLL_S = 1.0
READ_CHUNK = 128 * 1024


def _local_payload(name: str, files: Mapping[str, tuple[str, str]] | None = None) -> Path:
    package, resource = (files or PAYLOAD_FILES)[name]
    return Path(str(resources.files(package).joinpath(resource)))


def _check(res: CommandResult, what: str, hint: str) -> CommandResult:
    if not res.ok:
        raise dg.Failure(
            description=f"{what} failed (exit {res.returncode}): {res.tail(5)}",
            metadata={"hint": hint},
        )
    return res


def ship_payloads(
    runner: Runner, scripts_dir: str, files: Mapping[str, tuple[str, str]] | None = None
) -> str:
    """Copy the payloads to `<scripts_dir>/mlops_payloads/` where they differ. Returns the dir.
    `files` (shipped name -> (package, resource)) defaults to the staging payloads."""
    files = files or PAYLOAD_FILES
    dest = f"{scripts_dir.rstrip('/')}/{PAYLOAD_DIR}"
    remote = {f"{dest}/{n}": "" for n in files}
    # one round trip (a fixed cost of every Pipes session): make the dir, hash what is there
    res = _check(
        runner.run(
            [
                "sh",
                "-c",
                'mkdir -p -- "$1" || exit; shift; '
                'for f in "$@"; do [ -f "$f" ] && sha256sum "$f"; done; true',
                "sh",
                dest,
                *remote,
            ]
        ),
        f"mkdir {dest}",
        "the scripts directory must be writable (materialize beegfs_layout)",
    )
    for line in res.stdout.splitlines():
        digest, _, path = line.partition("  ")
        remote[path.strip()] = digest
    for name in files:
        local = _local_payload(name, files)
        target = f"{dest}/{name}"
        if remote.get(target) == hashlib.sha256(local.read_bytes()).hexdigest():
            continue
        tmp = f"{dest}/.{name}.{uuid.uuid4().hex[:8]}.tmp"
        if isinstance(runner, SshRunner):
            runner.put(str(local), tmp)
        else:
            shutil.copyfile(local, tmp)
        _check(
            runner.run(["mv", "-f", "--", tmp, target]),
            f"installing {target}",
            "check the scripts directory on BeeGFS",
        )
    return dest


@contextmanager
def private_file(runner: Runner, parent: str, name: str, data: bytes) -> Iterator[str]:
    """A file on the HPC side that only the runner's user can read, removed afterwards (also
    when the payload fails): `<parent>/.private-<random>/<name>`, directory mode 700, file
    mode 600 from its creation. The bytes go over SFTP (`SshRunner.put_private`) or straight
    into the file (`LocalRunner.put_private`): never through a command line, which `ps` shows
    to every user of the login node, nor through the environment of a process (the Pipes
    bootstrap travels as `env K=V` on the SSH command line). The shared filesystem is used so
    that a payload on any node the runner reaches can read it."""
    directory = f"{parent.rstrip('/')}/.private-{uuid.uuid4().hex}"
    _check(
        runner.run(["mkdir", "-p", "-m", "700", "--", directory]),
        f"mkdir {directory}",
        "the jobs directory on BeeGFS must be writable",
    )
    try:
        path = f"{directory}/{name}"
        put = getattr(runner, "put_private", None)
        if put is None:
            raise dg.Failure(
                f"{type(runner).__name__} cannot write a private file; credentials are not passed on a command line"
            )
        put(data, path)
        yield path
    finally:
        runner.run(["rm", "-rf", "--", directory])


class RunnerFileMessageReader(dg.PipesMessageReader):
    """Tails a Pipes message file on the shared filesystem through a Runner."""

    def __init__(
        self, runner: Runner, path: str, poll_s: float = POLL_S, *, fresh: bool = True
    ) -> None:
        """`fresh=False` re-attaches: tail an existing message file from its start, never
        truncate it."""
        self.runner = runner
        self.path = path
        self.poll_s = poll_s
        self.fresh = fresh
        self.offset = 0
        self.at_end = False
        self.errors: list[str] = []

    @property
    def expected_writer_count(self) -> int:
        """One payload writes each message file. Dagster's PipesMessageHandler reads this
        property of every reader; the base class marks it preview in 1.13 and warns on each
        read, so the reader states it itself rather than silencing warnings process-wide."""
        return 1

    def _read_new(self, handler: dg.PipesMessageHandler) -> int:
        res = self.runner.run(
            [
                "sh",
                "-c",
                'tail -c +"$1" -- "$2" | head -c "$3"',
                "sh",
                str(self.offset + 1),
                self.path,
                str(READ_CHUNK),
            ],
            timeout_s=60,
        )
        if not res.ok:
            self.errors.append(res.tail(2))
            return 0
        text = res.stdout
        self.at_end = len(text.encode()) < READ_CHUNK  # a short read reached the file's end
        end = text.rfind("\n")
        if end < 0:
            return 0
        complete = text[: end + 1]
        for line in complete.splitlines():
            if line.strip():
                handler.handle_message(json.loads(line))
        consumed = len(complete.encode())
        self.offset += consumed
        return consumed

    def _loop(self, handler: dg.PipesMessageHandler, done: threading.Event) -> None:
        try:
            while not done.wait(self.poll_s):
                self._read_new(handler)
            # drain after the payload ended: its file is complete, so a short read was the last
            # one (one SSH round trip saved per Pipes session against reading until empty)
            while self._read_new(handler) > 0 and not self.at_end:
                pass
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            handler.report_pipes_framework_exception(
                f"{type(self).__name__} reader thread", sys.exc_info()
            )

    @contextmanager
    def read_messages(self, handler: dg.PipesMessageHandler) -> Iterator[dict[str, Any]]:
        if self.fresh:
            parent = self.path.rsplit("/", 1)[0]
            _check(
                self.runner.run(
                    ["sh", "-c", 'mkdir -p -- "$1" && : > "$2"', "sh", parent, self.path]
                ),
                f"creating the Pipes message file {self.path}",
                "the jobs directory on BeeGFS must be writable",
            )
        done = threading.Event()
        thread = threading.Thread(target=self._loop, args=(handler, done), daemon=True)
        thread.start()
        try:
            yield {"path": self.path, "include_stdio_in_messages": False}
        finally:
            done.set()
            thread.join(timeout=120)
            if self.fresh:
                self.runner.run(["rm", "-f", "--", self.path])

    def no_messages_debug_text(self) -> str:
        return f"Attempted to read messages from {self.path} on {self.runner.where}."


class HpcPipesClient(dg.PipesClient):
    """Runs one payload on the HPC side per call; see the module docstring."""

    def __init__(
        self,
        runner: Runner,
        *,
        python: str,
        scripts_dir: str,
        messages_dir: str,
        env: Mapping[str, str] | None = None,
        timeout_s: float = 3600,
    ) -> None:
        self.runner = runner
        self.python = python
        self.scripts_dir = scripts_dir
        self.messages_dir = messages_dir.rstrip("/")
        self.env = dict(env or {})
        self.timeout_s = timeout_s

    def run(  # type: ignore[override]
        self,
        *,
        context: dg.AssetExecutionContext,
        payload: str,
        extras: dict[str, Any] | None = None,
    ) -> dg.PipesClientCompletedInvocation:
        if payload not in PAYLOAD_FILES or not payload.startswith(
            ("stage_", "sync_", "container_")
        ):
            raise ValueError(f"unknown payload {payload!r}")
        where = ship_payloads(self.runner, self.scripts_dir)
        msg_path = f"{self.messages_dir}/{context.run_id}-{uuid.uuid4().hex[:12]}.jsonl"
        reader = RunnerFileMessageReader(self.runner, msg_path)
        with dg.open_pipes_session(
            context=context,
            context_injector=dg.PipesEnvContextInjector(),
            message_reader=reader,
            extras=extras,
        ) as session:
            env = {**self.env, **session.get_bootstrap_env_vars()}
            context.log.info(f"running {payload} on {self.runner.where} with {self.python}")
            res = self.runner.run(
                [self.python, f"{where}/{payload}"], env=env, timeout_s=self.timeout_s
            )
            if not res.ok:
                raise dg.Failure(
                    description=f"{payload} on {self.runner.where} failed (exit {res.returncode}): {_last_error(res)}",
                    metadata={"stderr_tail": dg.MetadataValue.text(res.tail(15))},
                )
        return dg.PipesClientCompletedInvocation(session)


def _last_error(res: CommandResult) -> str:
    """The payload's own message: the last `SomethingError: ...` line of its traceback."""
    lines = [ln.strip() for ln in (res.stderr or res.stdout).strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Failed")) and " " not in head:
            return line[:800]
    return lines[-1][:800] if lines else "no output"


# What the payloads need besides the Pipes bootstrap: the catalog's job environment (HF_HOME,
# HF_ENDPOINT, ...) and quiet, telemetry-free huggingface_hub.
PAYLOAD_ENV = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "PYTHONUNBUFFERED": "1",
}


def client_for(catalog: Catalog, runner: Runner, *, data_mover: bool = True) -> HpcPipesClient:
    """The login node's client, or, where the catalog names a data-mover partition (and the
    caller allows it), one that runs the same payload as a SLURM job there."""
    b = catalog.hpc.beegfs
    if data_mover and catalog.hpc.data_mover is not None:
        from mlops_assets.resources.slurm_pipes import PartitionPayloadClient

        return PartitionPayloadClient.for_data_mover(catalog, runner)
    return HpcPipesClient(
        runner,
        python=catalog.hpc.python,
        scripts_dir=b.directory("scripts"),
        messages_dir=f"{b.directory('jobs')}/pipes",
        env={**catalog.hpc.env, **PAYLOAD_ENV},
    )


def run_s3_sync(
    context: dg.AssetExecutionContext, catalog: Catalog, extras: dict[str, Any]
) -> dg.MaterializeResult:
    """sync_s3.py on the HPC side through Pipes. The S3 keys reach it in a 0600 file in a
    0700 directory on the HPC side (private_file: written over SFTP, removed after the run
    and by the payload as soon as it has read them), because everything else a payload gets
    is visible to others: the SSH command line with the Pipes bootstrap (`ps`), the Pipes
    extras (recorded in the event log) and the run's metadata."""
    runner = context.resources.hpc.runner()
    s3 = context.resources.s3
    keys = json.dumps(
        {"access_key_id": s3.access_key_id, "secret_access_key": s3.secret_access_key}
    ).encode()
    with private_file(
        runner, f"{catalog.hpc.beegfs.directory('jobs')}/pipes", "s3.json", keys
    ) as path:
        done = client_for(catalog, runner).run(
            context=context, payload="sync_s3.py", extras={**extras, "credentials_file": path}
        )
    return done.get_materialize_result()
