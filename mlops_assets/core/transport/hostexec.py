"""Run commands on the HPC side: here (subprocess) or on the login node (fabric over SSH).

Every argument is quoted with shlex, host keys are verified against a known_hosts file,
output is capped, and only transient connection failures are retried. fabric/paramiko are
imported only when an SSH connection is opened.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import threading
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from mlops_assets.core.checks import ProbeFailed

MAX_OUTPUT_BYTES = 256 * 1024
MAX_CHANNELS = 4


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    duration_s: float
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def tail(self, lines: int = 20) -> str:
        text = (self.stderr or self.stdout).strip().splitlines()
        return "\n".join(text[-lines:])


class HostError(ProbeFailed):
    """The host could not run the command at all (unreachable, refused, bad key). Carries
    a hint naming the setting to fix."""


class Runner(Protocol):
    where: str

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult: ...

    def get(self, remote: str, local: str) -> None:
        """Copy one file of the HPC side to `local` (binary, whole)."""
        ...

    def close(self) -> None: ...


def must(
    runner: Runner, argv: Sequence[str], hint: str, timeout_s: float | None = None
) -> CommandResult:
    """Run a probe's command; a missing program or a failed run is a failed probe that says
    which, with the hint."""
    res = runner.run(argv, timeout_s=timeout_s)
    if res.returncode == 127:
        raise ProbeFailed(f"{argv[0]} is not installed on {runner.where}", hint)
    if not res.ok:
        raise ProbeFailed(
            f"`{' '.join(argv)}` exited {res.returncode} on {runner.where}: {res.tail(3)}", hint
        )
    return res


def sha256_of(runner: Runner, paths: Sequence[str], timeout_s: float = 300) -> dict[str, str]:
    """sha256 of each of `paths` on the runner's host; a file that is missing or unreadable
    is absent from the answer (the caller names it). A host that cannot run it raises."""
    res = runner.run(["sha256sum", "--", *paths], timeout_s=timeout_s)
    if res.returncode == 127:
        raise ProbeFailed(f"sha256sum is not installed on {runner.where}", "install coreutils")
    out: dict[str, str] = {}
    for line in res.stdout.splitlines():
        digest, sep, path = line.partition("  ")
        if sep and len(digest) == 64:
            out[path] = digest
    return out


def _cap(text: str) -> tuple[str, bool]:
    if len(text) <= MAX_OUTPUT_BYTES:
        return text, False
    return "[... output truncated ...]\n" + text[-MAX_OUTPUT_BYTES:], True


def command_line(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """The one place a command becomes a shell string: every piece is quoted."""
    if not argv:
        raise ValueError("empty command")
    prefix = ""
    if env:
        for key in env:
            if not key.replace("_", "a").isalnum() or key[0].isdigit():
                raise ValueError(f"invalid environment variable name {key!r}")
        prefix = "env " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " "
    return prefix + shlex.join(argv)


class TimedRunner(Runner):
    """What every runner shares (LocalRunner, SshRunner, the fleet stand-in): Runner's one
    `run`, which times the command and caps its output (MAX_OUTPUT_BYTES), so a caller sees
    the same result from each; a subclass only executes it."""

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        start = time.monotonic()
        code, stdout, stderr = self._execute(argv, timeout_s, env)
        out, t1 = _cap(stdout)
        err, t2 = _cap(stderr)
        return CommandResult(tuple(argv), code, out, err, time.monotonic() - start, t1 or t2)

    @abstractmethod
    def _execute(
        self, argv: Sequence[str], timeout_s: float | None, env: Mapping[str, str] | None
    ) -> tuple[int, str, str]:
        """Run `argv` (env added to the host's) to its end: exit status, stdout, stderr; 127
        for a missing program, 124 for a timeout (`timeout_s`, else the runner's default)."""


class LocalRunner(TimedRunner):
    """The orchestrator sits on the HPC side: no shell at all."""

    def __init__(self, default_timeout_s: float = 60) -> None:
        self.where = socket.gethostname()
        self.default_timeout_s = default_timeout_s

    def _execute(
        self, argv: Sequence[str], timeout_s: float | None, env: Mapping[str, str] | None
    ) -> tuple[int, str, str]:
        full_env = {**os.environ, **(env or {})}
        try:
            proc = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                timeout=timeout_s or self.default_timeout_s,
                env=full_env,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except FileNotFoundError:
            return 127, "", f"{argv[0]}: command not found"
        except subprocess.TimeoutExpired as exc:
            out = (
                exc.stdout.decode(errors="replace")
                if isinstance(exc.stdout, bytes)
                else (exc.stdout or "")
            )
            return 124, out, f"timed out after {exc.timeout}s"
        return proc.returncode, proc.stdout, proc.stderr

    def get(self, remote: str, local: str) -> None:
        """Copy a file of the HPC side (here: this machine) to `local`."""
        shutil.copyfile(remote, local)

    def put_private(self, data: bytes, remote: str) -> None:
        """A new file only this user can read (O_EXCL, mode 600 from creation): for
        credentials a payload reads, which must never be on a command line."""
        fd = os.open(remote, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class SshSettings:
    host: str
    port: int
    user: str
    key_path: str
    known_hosts: str
    connect_timeout_s: float = 10
    command_timeout_s: float = 60
    retries: int = 2
    backoff_s: float = 0.5


class SshRunner(TimedRunner):
    """One connection per run, reused for every command; host keys verified, never added."""

    def __init__(self, settings: SshSettings) -> None:
        self.settings = settings
        self.where = f"{settings.user}@{settings.host}:{settings.port}"
        self._conn: Any = None
        self._lock = threading.Lock()
        # fabric keeps one SFTP client per connection, and two threads transferring through it
        # at once can hang both (two checks shipping the same new payload did): one at a time.
        self._sftp_lock = threading.Lock()
        # sshd allows 10 sessions per connection by default; stay well below.
        self._channels = threading.BoundedSemaphore(MAX_CHANNELS)

    def _connect(self) -> Any:
        with self._lock:
            return self._open()

    def _open(self) -> Any:
        if self._conn is not None and self._conn.is_connected:
            return self._conn
        import paramiko
        from fabric import Connection

        s = self.settings
        key = Path(s.key_path).expanduser()
        known = Path(s.known_hosts).expanduser()
        if not key.is_file():
            raise HostError(
                f"SSH key {key} does not exist",
                "set hpc.access.login.key_path to a private key file",
            )
        if not known.is_file():
            raise HostError(
                f"known_hosts file {known} does not exist",
                "set hpc.access.login.known_hosts to a file holding the login node's host key "
                "(ssh-keyscan it once and check the fingerprint)",
            )
        attempt = 0
        while True:
            conn = Connection(
                host=s.host,
                user=s.user,
                port=s.port,
                connect_timeout=s.connect_timeout_s,
                connect_kwargs={
                    "key_filename": str(key),
                    "look_for_keys": False,
                    "allow_agent": False,
                    "banner_timeout": s.connect_timeout_s,
                    "auth_timeout": s.connect_timeout_s,
                },
            )
            # fabric defaults to AutoAddPolicy: replace it, and trust only our known_hosts.
            conn.client = paramiko.SSHClient()
            conn.client.load_host_keys(str(known))
            conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
            try:
                conn.open()
                self._conn = conn
                return conn
            except paramiko.BadHostKeyException as exc:
                raise HostError(
                    f"host key of {s.host}:{s.port} does not match {known} (got "
                    f"{exc.key.get_name()})",
                    "the login node's key changed: verify it out of band, then update known_hosts",
                ) from None
            except paramiko.AuthenticationException:
                raise HostError(
                    f"{s.user}@{s.host}:{s.port} refused the key {key}",
                    "check hpc.access.login.user and that the "
                    "public key is in the user's authorized_keys",
                ) from None
            except paramiko.SSHException as exc:
                if "not found in known_hosts" in str(exc):
                    raise HostError(
                        f"{s.host}:{s.port} is not in {known}",
                        "add the login node's host key to "
                        "known_hosts after checking its fingerprint",
                    ) from None
                if attempt >= s.retries:
                    raise HostError(
                        f"SSH to {s.host}:{s.port} failed: {exc}", "check that sshd answers"
                    ) from None
            except (TimeoutError, OSError) as exc:
                if attempt >= s.retries:
                    raise HostError(
                        f"cannot reach {s.host}:{s.port}: {exc}",
                        "check hpc.access.login.host/port, the network route and that sshd runs",
                    ) from None
            attempt += 1
            time.sleep(s.backoff_s * (2 ** (attempt - 1)))

    def _execute(
        self, argv: Sequence[str], timeout_s: float | None, env: Mapping[str, str] | None
    ) -> tuple[int, str, str]:
        line = command_line(argv, env)
        attempt = 0
        while True:
            conn = self._connect()
            try:
                with self._channels:
                    res = conn.run(
                        line,
                        hide=True,
                        warn=True,
                        timeout=timeout_s or self.settings.command_timeout_s,
                        in_stream=False,
                    )
                return res.exited, res.stdout, res.stderr
            except Exception as exc:  # invoke's CommandTimedOut, paramiko and socket errors
                name = type(exc).__name__
                if "Timed" in name or isinstance(exc, TimeoutError):
                    return 124, "", f"timed out on {self.where}"
                # A refused channel (sshd MaxSessions) is transient; a dead transport is not
                # ours to keep.
                if attempt >= self.settings.retries + 2:
                    raise HostError(
                        f"SSH command failed on {self.where}: {name}",
                        "check the login node (sshd log, MaxSessions)",
                    ) from None
                if name != "ChannelException" and self._conn is conn and not conn.is_connected:
                    self.close()
                attempt += 1
                time.sleep(self.settings.backoff_s * attempt)

    def put(self, local: str, remote: str) -> None:
        conn = self._connect()
        with self._sftp_lock:
            conn.put(local, remote)

    def get(self, remote: str, local: str) -> None:
        """Copy a file of the HPC side here over SFTP (binary, no output cap)."""
        conn = self._connect()
        with self._sftp_lock:
            conn.get(remote, local)

    def put_private(self, data: bytes, remote: str) -> None:
        """Write `data` to a new remote file only the login user can read, over SFTP (so
        it is on no command line and in no process environment): created exclusively, made
        mode 600 while still empty, then written."""
        conn = self._connect()
        with self._sftp_lock:
            sftp = conn.sftp()
            with sftp.open(remote, "wx") as fh:
                fh.chmod(0o600)
                fh.write(data)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
