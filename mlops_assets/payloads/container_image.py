"""Pull or build one Apptainer image into BeeGFS `containers/`, atomically.

Runs ON THE HPC SIDE (login node, or a SLURM job on the catalog's build partition) with the
HPC Python: dagster-pipes plus the shipped stage_common.py and mlops_apptainer.py
(core/parse/apptainer.py). Every command is an argv list: nothing reaches a shell.

1. `apptainer --version`; the source digest (pull URI, or rendered definition + the base
   image's sha256); if the provenance record beside the image has the same digest and the
   image is there with the recorded size and mtime, nothing is done (0 bytes written).
2. pull/build to `.<file>.tmp-<pid>` in the same directory (build: `--fakeroot` as the
   training user; APPTAINER_CACHEDIR/TMPDIR from the catalog), output logged as it comes.
3. `inspect --json` (labels) and the image's own python3 reports the framework versions; a
   missing or too old framework fails the run here, before the image is published.
4. sha256, then rename over the old image, then the provenance record (temp + rename). A
   failure anywhere before the rename leaves the previous image as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from stage_common import Log, StagingError, manifest, run_payload, target_lock

try:  # shipped next to the payload on the HPC side
    import mlops_apptainer as cli
except ImportError:  # running from the package
    from mlops_assets.core.parse import apptainer as cli

LOG_EVERY_S = 5.0


def _run(argv: list[str], log: Log, env: dict[str, str], timeout_s: float, what: str) -> str:
    """Runs argv, logging its output lines at most every LOG_EVERY_S (long pulls show life),
    and returns the whole output; a non-zero exit raises StagingError with Apptainer's FATAL."""
    log(f"{what}: {cli.shell_line(argv)}")
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: list[str] = []
    last = started
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        now = time.monotonic()
        if now - last >= LOG_EVERY_S or line.startswith(("FATAL", "ERROR")):
            log(f"{what} ({now - started:.0f}s): {line.strip()[:300]}")
            last = now
        if now - started > timeout_s:
            proc.kill()
            raise StagingError(
                f"{what} took longer than {timeout_s:.0f}s and was "
                "stopped; the previous image is untouched"
            )
    code = proc.wait()
    text = "\n".join(lines)
    if code != 0:
        raise _failed(what, code, text)
    return text


def _output(argv: list[str], log: Log, env: dict[str, str], timeout_s: float, what: str) -> str:
    """A short command whose stdout is data (JSON, version lines): Apptainer's INFO/WARNING
    chatter on stderr stays out of it."""
    log(f"{what}: {cli.shell_line(argv[:6])}{' ...' if len(argv) > 6 else ''}")
    try:
        res = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise StagingError(
            f"{what} took longer than {timeout_s:.0f}s; the previous image is untouched"
        ) from None
    if res.returncode != 0:
        raise _failed(what, res.returncode, res.stderr + res.stdout)
    return res.stdout


def _failed(what: str, code: int, output: str) -> StagingError:
    """Apptainer's own FATAL line, with what to do about it."""
    message = cli.fatal_message(output)
    return StagingError(
        f"{what} failed (exit {code}): {message}. Hint: {cli.hint_for_failure(message)}"
    )


def _local_source_state(kind: str, source: str) -> str:
    """A local OCI layout or archive can change under the same URI: its index (or size and
    mtime) joins the digest. Registry tags are taken as given: pin by @sha256 to be exact."""
    if kind != "pull" or "://" in source:
        return ""
    path = Path(source.split(":", 1)[1])
    try:
        if path.is_dir():
            return "#" + hashlib.sha256((path / "index.json").read_bytes()).hexdigest()
        st = path.stat()
        return f"#{st.st_size}:{st.st_mtime_ns}"
    except OSError as exc:
        raise StagingError(
            f"the image source {source} cannot be read "
            f"({exc.strerror}): check the catalog's pull path"
        ) from None


def _unchanged(target: Path, record: dict[str, Any]) -> bool:
    """Size and mtime as published: anything that rewrote the image (or damaged it in place)
    makes the next materialization fetch it again, without hashing gigabytes every time."""
    try:
        st = target.stat()
    except OSError:
        return False
    return st.st_size == record.get("size_bytes") and st.st_mtime_ns == record.get("mtime_ns")


def _record(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def stage(extras: dict[str, Any], log: Log) -> dict[str, Any]:
    target = Path(extras["target"])
    kind, source = str(extras["kind"]), str(extras["source"])
    definition = str(extras.get("definition") or "")
    expected: dict[str, str] = dict(extras.get("expect_python_packages") or {})
    timeout_s = float(extras.get("timeout_s") or 7200)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES_")}
    env.update({str(k): str(v) for k, v in (extras.get("env") or {}).items()})
    for key in ("APPTAINER_CACHEDIR", "APPTAINER_TMPDIR"):
        if env.get(key):
            Path(env[key]).mkdir(parents=True, exist_ok=True)

    version = cli.parse_version(
        _output(["apptainer", "--version"], log, env, 60, "apptainer --version")
    )
    base_sha = ""
    if extras.get("base_image"):
        base = _record(Path(cli.sidecar_path(str(extras["base_image"]))))
        if base is None or not Path(str(extras["base_image"])).exists():
            raise StagingError(
                f"the base image {extras['base_image']} is not staged: materialize it first"
            )
        base_sha = str(base.get("sha256", ""))
    digest = cli.source_digest(
        kind, source + _local_source_state(kind, source), definition, base_sha
    )
    record_path = Path(cli.sidecar_path(str(target)))

    with target_lock(target.with_name(f".{target.name}.lock"), log):
        old = _record(record_path)
        if old and old.get("source_digest") == digest and _unchanged(target, old):
            log(f"{target} is current (source digest {digest[:12]}): nothing to do")
            return {**_metadata(old), "changed": False, "bytes_written": 0, "path": str(target)}

        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        def_path = target.with_name(f".{target.name}.def-{os.getpid()}")
        try:
            if kind == "build":
                def_path.write_text(definition)
            cmds = cli.image_commands(
                kind,
                source,
                str(tmp),
                definition_path=str(def_path),
                fakeroot=bool(extras.get("fakeroot", True)),
                packages=list(expected),
            )
            started = time.monotonic()
            _run(cmds.fetch, log, env, timeout_s, f"apptainer {kind}")
            seconds = time.monotonic() - started
            labels = cli.parse_labels(_output(cmds.inspect, log, env, 300, "apptainer inspect"))
            found = cli.parse_versions(
                _output(cmds.versions, log, env, 600, "framework versions inside")
            )
            bad = cli.version_shortfalls(found, expected)
            if bad:
                raise StagingError(
                    f"the new image lacks the expected frameworks ({'; '.join(bad)}); "
                    "it was not published and the previous image is untouched"
                )
            size = tmp.stat().st_size
            _, sha = manifest.hash_file(tmp)
            os.replace(tmp, target)
            mtime_ns = target.stat().st_mtime_ns
        finally:
            for p in (tmp, def_path):
                p.unlink(missing_ok=True)
        record = {
            "path": str(target),
            "kind": kind,
            "source": source,
            "source_digest": digest,
            "sha256": sha,
            "size_bytes": size,
            "mtime_ns": mtime_ns,
            "apptainer_version": version,
            "labels": labels,
            "frameworks": found,
            "fetch_seconds": round(seconds, 3),
        }
        tmp_record = record_path.with_name(record_path.name + f".tmp-{os.getpid()}")
        tmp_record.write_text(json.dumps(record, sort_keys=True, indent=1))
        os.replace(tmp_record, record_path)
        log(f"published {target} ({size} bytes, sha256 {sha[:12]}) with apptainer {version}")
        return {**_metadata(record), "changed": True, "bytes_written": size}


def _metadata(record: dict[str, Any]) -> dict[str, Any]:
    """Pipes metadata: nested mappings (labels, frameworks) travel as typed JSON values."""
    return {
        k: {"raw_value": v, "type": "json"} if isinstance(v, dict) else v for k, v in record.items()
    }


def main() -> None:
    run_payload(stage)


if __name__ == "__main__":
    main()
