"""Dagster Pipes on the HPC side: the payloads of mlops_assets/payloads run next to the data
and report back through a message file on the shared filesystem.

Why it is shaped so: a payload runs in one of four placements (login node, data mover, build
partition, smoke jobs) and the asset that starts it should not care which. So every placement
is a `PayloadClient` with the one `run(context=, payload=, extras=)`; what differs (partition,
job size, container, timeout, re-attaching) is fixed when `HpcSide` makes the client. The
clients compose Dagster's public Pipes pieces (`open_pipes_session`, a message reader) rather
than subclass `dg.PipesClient`, whose `run` takes free keyword arguments that each client
would re-type differently. Messages travel as JSON lines in a file on BeeGFS, tailed through
the same runner (`tail -c +OFFSET`), so progress arrives while the payload runs, over SSH or
in a SLURM job alike; nothing but the runner is needed to reach the HPC side.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import dagster as dg

from mlops_assets.core.transport.hostexec import CommandResult, Runner
from mlops_assets.resources.shipping import LOGIN, check_entry, or_fail, ship_payloads

POLL_S = 1.0
READ_CHUNK = 128 * 1024

# What the payloads need besides the Pipes bootstrap and the catalog's job environment (HF_HOME,
# HF_ENDPOINT, ...): quiet, telemetry-free huggingface_hub and unbuffered output.
PAYLOAD_ENV = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "PYTHONUNBUFFERED": "1",
}

#: What an asset hands a payload besides its environment; recorded in the run's event log, so
#: never a secret (those travel in a private_file).
Extras = dict[str, Any] | None


def payload_env(job_env: Mapping[str, str], bootstrap: Mapping[str, str]) -> dict[str, str]:
    """A payload's environment in every placement: the catalog's job environment, then
    PAYLOAD_ENV, then the Pipes bootstrap (a later one wins)."""
    return {**job_env, **PAYLOAD_ENV, **bootstrap}


def open_payload_session(
    context: dg.AssetExecutionContext,
    reader: dg.PipesMessageReader,
    extras: Extras,
) -> AbstractContextManager[dg.PipesSession]:
    """The Pipes session every placement opens: the bootstrap reaches the payload in its
    environment (payload_env), its messages come back through `reader`."""
    return dg.open_pipes_session(
        context=context,
        context_injector=dg.PipesEnvContextInjector(),
        message_reader=reader,
        extras=extras,
    )


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
    or_fail(
        runner.run(["mkdir", "-p", "-m", "700", "--", directory]),
        f"mkdir {directory}",
        "the jobs directory on BeeGFS must be writable",
    )
    try:
        path = f"{directory}/{name}"
        put = getattr(runner, "put_private", None)
        if put is None:
            raise dg.Failure(
                f"{type(runner).__name__} cannot write a private file; credentials are not "
                "passed on a command line"
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
            or_fail(
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


class PayloadClient(ABC):
    """One placement on the HPC side that runs a shipped payload through Dagster Pipes. `run` is
    defined here only, so every placement is called the same way and none can skip shipping:
    it ships the kit to `scripts_dir`, then the placement `_launch`es the payload its own way."""

    #: the shipping kit this placement carries (resources/shipping.py)
    kit: str

    def __init__(
        self, runner: Runner, *, python: str, scripts_dir: str, env: Mapping[str, str]
    ) -> None:
        """What every placement has: the runner, the HPC side's Python (the one a container
        does not replace), the folder the kits are shipped to, and the job environment."""
        self.runner = runner
        self.python = python
        self.scripts_dir = scripts_dir
        self.env = dict(env)

    def run(
        self,
        *,
        context: dg.AssetExecutionContext,
        payload: str,
        extras: Extras = None,
    ) -> dg.PipesClientCompletedInvocation:
        """Ship the kit, run `payload` with `extras` in this placement, and return what it
        reported; a failed payload raises dg.Failure with its own last error. `payload` must
        be one of this kit's entries; the kit is shipped where it differs."""
        check_entry(self.kit, payload)
        where = ship_payloads(self.runner, self.scripts_dir, self.kit)
        return self._launch(context, payload, where, extras)

    @abstractmethod
    def _launch(
        self, context: dg.AssetExecutionContext, payload: str, where: str, extras: Extras
    ) -> dg.PipesClientCompletedInvocation:
        """Run the shipped `payload` from the folder `where` in this placement (see `run`)."""


class LoginPipesClient(PayloadClient):
    """A payload as a process on the login node over SSH (a subprocess in `local` mode):
    `python payload.py` with the Pipes bootstrap and the job environment, bounded by
    `timeout_s`."""

    kit = LOGIN

    def __init__(
        self,
        runner: Runner,
        *,
        python: str,
        scripts_dir: str,
        messages_dir: str,
        env: Mapping[str, str],
        timeout_s: float,
    ) -> None:
        super().__init__(runner, python=python, scripts_dir=scripts_dir, env=env)
        self.messages_dir = messages_dir.rstrip("/")
        self.timeout_s = timeout_s

    def _launch(
        self, context: dg.AssetExecutionContext, payload: str, where: str, extras: Extras
    ) -> dg.PipesClientCompletedInvocation:
        msg_path = f"{self.messages_dir}/{context.run.run_id}-{uuid.uuid4().hex[:12]}.jsonl"
        reader = RunnerFileMessageReader(self.runner, msg_path)
        with open_payload_session(context, reader, extras) as session:
            env = payload_env(self.env, session.get_bootstrap_env_vars())
            context.log.info(f"running {payload} on {self.runner.where} with {self.python}")
            res = self.runner.run(
                [self.python, f"{where}/{payload}"], env=env, timeout_s=self.timeout_s
            )
            if not res.ok:
                raise dg.Failure(
                    description=f"{payload} on {self.runner.where} failed "
                    f"(exit {res.returncode}): {_last_error(res)}",
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
