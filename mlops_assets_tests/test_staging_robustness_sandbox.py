"""Staging under faults, for real on the sandbox: the staging payload SIGKILLed on the HPC
side mid-download, two materializations of the same asset at once, and a full filesystem.

Each test stages MNIST into its own BeeGFS path through a catalog copy whose mirror is a
throttled proxy run here (in front of the sandbox's hub mirror), so a download lasts long
enough to be interrupted and the shared staged copy is never touched. The disk-full test
uses its own small loop-mounted ext4 as the BeeGFS root."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_assets.core import manifest

pytestmark = pytest.mark.sandbox

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "mlops_assets" / "catalog" / "platform.yaml"
MIRROR = "http://127.0.0.1:8088"
KEY = "dataset_mnist"


class Throttle(http.server.ThreadingHTTPServer):
    """Forwards GETs (with Range) to the hub mirror at `rate` bytes/s and records, per file,
    the client's port and the bytes sent, so a test can find and kill the downloader."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Proxy)
        self.rate = 400_000
        self.sent: dict[str, int] = {}
        self.clients: dict[str, int] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/torchvision/mnist/"


class _Proxy(http.server.BaseHTTPRequestHandler):
    server: Throttle

    def do_GET(self) -> None:
        headers = {"Range": self.headers["Range"]} if self.headers.get("Range") else {}
        name = self.path.rsplit("/", 1)[-1]
        try:
            resp = urllib.request.urlopen(
                urllib.request.Request(MIRROR + self.path, headers=headers), timeout=10
            )
        except urllib.error.HTTPError as exc:
            self.send_response(exc.code)
            self.end_headers()
            return
        with resp:
            self.send_response(resp.status)
            for h in ("Content-Length", "Content-Range", "Content-Type", "Accept-Ranges"):
                if resp.headers.get(h):
                    self.send_header(h, resp.headers[h])
            self.end_headers()
            self.server.clients[name] = self.client_address[1]
            while block := resp.read(16384):
                try:
                    self.wfile.write(block)
                except (BrokenPipeError, ConnectionResetError):
                    return
                self.server.sent[name] = self.server.sent.get(name, 0) + len(block)
                time.sleep(len(block) / self.server.rate)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture()
def proxy() -> Iterator[Throttle]:
    srv = Throttle()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _catalog(tmp: Path, mirror: str, path: str, root: str | None = None) -> Path:
    """The shipped catalog with the sandbox's MNIST from `mirror` into `path` (and another
    BeeGFS root if given)."""
    text = SHIPPED.read_text()
    text = text.replace(
        'mirrors: ["http://10.77.0.1:8088/torchvision/mnist/"]', f'mirrors: ["{mirror}"]'
    )
    text = text.replace("    path: datasets/mnist\n", f"    path: {path}\n")
    if root:
        text = text.replace("/mnt/sandbox-beegfs", root)
    out = tmp / "platform.yaml"
    out.write_text(text)
    return out


def _cli(catalog: Path, home: Path, command: str, *keys: str) -> subprocess.Popen[str]:
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLOPS_CATALOG": str(catalog), "DAGSTER_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "mlops_assets.cli", command, "--select", *keys, "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def _rows(
    proc: subprocess.Popen[str], timeout: float = 300
) -> tuple[int, dict[tuple[str, str], dict[str, Any]], str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    try:
        doc = json.loads(out)
    except ValueError:
        raise AssertionError(
            f"no JSON report (exit {proc.returncode}):\n{out[-2000:]}\n{err[-3000:]}"
        ) from None
    return proc.returncode, {(r["asset"], r["check"]): r for r in doc["results"]}, err


def _wait(cond: Any, what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _pid_of_client(port: int) -> int:
    """The process that owns the TCP connection from `port` (the payload, as the login user)."""
    res = subprocess.run(
        ["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = res.stdout.split("pid=", 1)[1].split(",", 1)[0]
    return int(pid)


def _metadata(home: Path) -> dict[str, Any]:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as inst:
        ev = inst.get_latest_materialization_event(dg.AssetKey(KEY))
        assert ev is not None and ev.asset_materialization is not None
        return {k: v.value for k, v in ev.asset_materialization.metadata.items()}


def _verified(target: Path) -> bool:
    man = manifest.read_manifest(target / manifest.MANIFEST_NAME)
    return man is not None and manifest.verify_tree(target, man).ok


@pytest.fixture()
def fresh_path(sandbox: Path) -> Iterator[tuple[str, Path]]:
    rel = f"datasets/robustness-{uuid.uuid4().hex[:8]}"
    target = Path("/mnt/sandbox-beegfs") / rel
    try:
        yield rel, target
    finally:
        for p in target.parent.glob(f"*{target.name}*"):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()


def test_payload_killed_mid_download_leaves_nothing_complete_and_the_next_run_resumes(
    proxy: Throttle, fresh_path: tuple[str, Path], tmp_path: Path
) -> None:
    rel, target = fresh_path
    catalog = _catalog(tmp_path, proxy.url, rel)
    run = _cli(catalog, tmp_path / "home", "materialize", KEY)
    big = "train-images-idx3-ubyte.gz"
    try:
        _wait(
            lambda: proxy.sent.get(big, 0) > 2_000_000, f"{big} two thirds through"
        )  # the payload writes 1 MiB blocks
    except AssertionError:
        run.kill()
        raise AssertionError(f"the run did not get there: {run.communicate()[1][-3000:]}") from None
    pid = _pid_of_client(proxy.clients[big])
    os.kill(pid, signal.SIGKILL)  # the payload on the HPC side (user mlops), mid-file
    code, rows, _ = _rows(run)
    assert code == 1 and not rows[(KEY, "materialized")]["passed"], rows
    # over SSH a signal death has no exit status: -1 (sshd sends exit-signal, not exit-status)
    assert (
        "stage_torchvision.py on" in rows[(KEY, "materialized")]["detail"]
        and "failed (exit" in rows[(KEY, "materialized")]["detail"]
    ), rows

    # nothing that looks staged: no target, no manifest; the partial file waits in .staging-
    assert not target.exists()
    part = target.with_name(f".staging-{target.name}") / "MNIST" / "raw" / f"{big}.part"
    assert part.is_file() and 0 < part.stat().st_size < 4000 * 784
    rows_v = _rows(_cli(catalog, tmp_path / "home", "validate", KEY))[1]
    assert (
        not rows_v[(KEY, f"{KEY}_manifest_verifies")]["passed"]
        and "no manifest" in rows_v[(KEY, f"{KEY}_manifest_verifies")]["detail"]
    )

    had = part.stat().st_size
    proxy.rate = 50_000_000
    before = dict(proxy.sent)
    code, rows, _err = _rows(_cli(catalog, tmp_path / "home", "materialize", KEY))
    assert (
        code == 0
        and rows[(KEY, f"{KEY}_manifest_verifies")]["passed"]
        and rows[(KEY, f"{KEY}_loads")]["passed"]
    ), rows
    assert _verified(target) and not part.parent.parent.parent.exists()
    # resumed with a Range request: only the rest of the killed file came again
    whole = len(urllib.request.urlopen(f"{MIRROR}/torchvision/mnist/{big}", timeout=10).read())
    assert proxy.sent[big] - before.get(big, 0) == whole - had
    print(
        f"killed at {had} of {whole} bytes of {big}; the "
        f"next run fetched the remaining {whole - had}"
    )


def test_two_runs_at_once_do_not_corrupt_the_copy(
    proxy: Throttle, fresh_path: tuple[str, Path], tmp_path: Path
) -> None:
    rel, target = fresh_path
    catalog = _catalog(tmp_path, proxy.url, rel)
    proxy.rate = 1_000_000  # ~4 s of download: the two runs overlap
    runs = [_cli(catalog, tmp_path / f"home{i}", "materialize", KEY) for i in range(2)]
    results = [_rows(r) for r in runs]
    for code, rows, _ in results:
        assert (
            code == 0
            and rows[(KEY, f"{KEY}_manifest_verifies")]["passed"]
            and rows[(KEY, f"{KEY}_loads")]["passed"]
        ), rows
    assert _verified(target)
    # the lock serialized them: every file came over the network once
    whole = sum(
        len(urllib.request.urlopen(f"{MIRROR}/torchvision/mnist/{n}", timeout=10).read())
        for n in proxy.sent
    )
    assert sum(proxy.sent.values()) == whole, proxy.sent
    moved = sorted(_metadata(tmp_path / f"home{i}")["bytes_transferred"] for i in range(2))
    assert moved == [0, whole], moved  # the second found the first's copy staged and verified
    assert not list(target.parent.glob(f".staging-{target.name}*")) and not list(
        target.parent.glob(f".old-{target.name}*")
    )


@pytest.fixture()
def small_fs(sandbox: Path, tmp_path: Path) -> Iterator[Path]:
    """A 40 MB ext4 loop mount owned by the training user, standing in for a nearly full BeeGFS."""
    image, mnt = tmp_path / "small.img", Path(f"/mnt/sandbox-beegfs-small-{uuid.uuid4().hex[:6]}")
    subprocess.run(["truncate", "-s", "40M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    mnt.mkdir()
    try:
        subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
        try:
            shutil.chown(mnt, "mlops", "mlops")
            yield mnt
        finally:
            subprocess.run(["umount", str(mnt)], check=False)
    finally:
        mnt.rmdir()


def test_disk_full_gives_a_clear_error_and_the_previous_copy_stays(
    small_fs: Path, tmp_path: Path
) -> None:
    catalog = _catalog(
        tmp_path, f"{MIRROR}/torchvision/mnist/", "datasets/mnist", root=str(small_fs)
    )
    home = tmp_path / "home"
    code, rows, _ = _rows(_cli(catalog, home, "materialize", "beegfs_layout", KEY))
    assert code == 0 and rows[(KEY, f"{KEY}_manifest_verifies")]["passed"], rows
    target = small_fs / "datasets" / "mnist"
    # force a re-stage (a damaged file), then leave too little room for the staging copy
    with open(target / "MNIST" / "raw" / "train-images-idx3-ubyte", "r+b") as fh:
        fh.write(b"\xff")
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file()}
    free = shutil.disk_usage(small_fs).free
    filler = small_fs / "jobs" / "filler"
    subprocess.run(["fallocate", "-l", str(free - 2_000_000), str(filler)], check=True)
    try:
        code, rows, _ = _rows(_cli(catalog, home, "materialize", KEY))
        row = rows[(KEY, "materialized")]
        assert (
            code == 1
            and "disk full while staging" in row["detail"]
            and "previous copy is untouched" in row["detail"]
        ), row
        assert {p: p.read_bytes() for p in target.rglob("*") if p.is_file()} == before
        assert not (
            small_fs / "datasets" / ".staging-mnist"
        ).exists()  # its partial copy is cleaned up
    finally:
        filler.unlink()
    code, rows, _ = _rows(_cli(catalog, home, "materialize", KEY))
    assert code == 0 and rows[(KEY, f"{KEY}_manifest_verifies")]["passed"] and _verified(target), (
        rows
    )


def test_orchestrator_killed_mid_download_leaves_nothing_unverified_and_the_next_run_finishes(
    proxy: Throttle, fresh_path: tuple[str, Path], tmp_path: Path
) -> None:
    """kill -9 of the CLI process (the orchestrator) while the payload downloads on the HPC
    side: whatever the orphaned payload does next, nothing unverified looks staged, and the
    next run (which waits on the orphan's lock if it still runs) ends with a verified copy."""
    rel, target = fresh_path
    catalog = _catalog(tmp_path, proxy.url, rel)
    run = _cli(catalog, tmp_path / "home", "materialize", KEY)
    big = "train-images-idx3-ubyte.gz"
    try:
        _wait(lambda: proxy.sent.get(big, 0) > 1_000_000, f"{big} under way")
    finally:
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=30)
    assert run.returncode == -signal.SIGKILL
    if target.exists():  # the orphaned payload may have finished: then it must have verified
        assert _verified(target)
    assert not (target / manifest.MANIFEST_NAME).exists() or _verified(target)

    proxy.rate = 50_000_000  # let an orphan still downloading finish or fail fast
    code, rows, err = _rows(_cli(catalog, tmp_path / "home", "materialize", KEY))
    assert code == 0 and rows[(KEY, f"{KEY}_manifest_verifies")]["passed"], (rows, err[-2000:])
    assert _verified(target)
    _wait(
        lambda: (
            subprocess.run(
                ["pgrep", "-u", "mlops", "-f", target.name], capture_output=True, check=False
            ).returncode
            == 1
        ),
        "no payload of this target left running",
        timeout=120,
    )
