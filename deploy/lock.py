"""uv.lock is the one source of exact versions and hashes; this script turns it into what pip
installs (hashed requirements), so no install resolves anything against what the index
publishes that day. Standard library only: setup.sh runs it with a bare python3 before the
venv has anything in it.

  python3 deploy/lock.py pins pip uv            hashed lines for single packages (the bootstrap)
  .venv/bin/python deploy/lock.py requirements --extras dev,sandbox
                                                hashed requirements of those extras + [install]
  .venv/bin/python deploy/lock.py requirements --only-group payloads
                                                hashed requirements of one group alone
  .venv/bin/python deploy/lock.py constraints   rewrite deploy/docker/constraints.txt
  .venv/bin/python deploy/lock.py update [--upgrade]
                                                re-resolve (needs the index), then constraints

`pins` reads uv.lock itself; the others run the uv that the lock pins (installed in the venv by
setup.sh), offline except `update`.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "uv.lock"
CONSTRAINTS = REPO / "deploy" / "docker" / "constraints.txt"
# the dependency group that setup.sh and the image install before anything else
INSTALL_GROUP = "install"
# what no orchestrator-side set may contain (the hpc extra's weight)
HEAVY = ("torch", "torchvision", "triton", "nvidia-cublas", "nvidia-cudnn-cu13")
CONSTRAINTS_HEADER = (
    "# Generated from uv.lock by `python deploy/lock.py constraints`; do not edit. The "
    "orchestrator\n# set: pyproject's [project].dependencies and their closure, no extras (no "
    "dev, sandbox, or\n# hpc: no torch/CUDA), with the lock's hashes. The image installs exactly "
    "this\n# (pip install --require-hashes --no-deps -r).\n"
)


class LockError(RuntimeError):
    """uv.lock cannot answer the question asked (missing, forked, or uv is absent)."""


def normalize(name: str) -> str:
    """PEP 503 name, as uv.lock spells package names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(names: list[str], lock: Path = LOCK) -> str:
    """Hashed `name==version` lines, read from uv.lock directly (no uv needed): how setup.sh
    installs pip and uv before uv exists. Refuses a package the lock holds at several versions
    (a fork by marker) since a single line could not say which one applies."""
    packages = tomllib.loads(lock.read_text())["package"]
    out = []
    for name in names:
        found = [p for p in packages if p["name"] == normalize(name)]
        if len(found) != 1:
            raise LockError(f"{name}: {len(found)} entries in {lock.name}, expected exactly 1")
        pkg = found[0]
        hashes = sorted(
            {f["hash"] for f in pkg.get("wheels", [])}
            | ({pkg["sdist"]["hash"]} if "sdist" in pkg else set())
        )
        if not hashes:
            raise LockError(f"{name}: no hashes in {lock.name} (not a registry package?)")
        out.append(
            " \\\n".join([f"{pkg['name']}=={pkg['version']}", *(f"    --hash={h}" for h in hashes)])
        )
    return "\n".join(out) + "\n"


@functools.cache
def uv_bin() -> str:
    """The uv that the lock pins (the venv's, from the [install] group), else one on PATH of
    that same version: export's marker spelling changes between uv releases, so another uv
    would make constraints.txt differ for no reason."""
    here = Path(sys.executable).with_name("uv")
    found = str(here) if here.is_file() else shutil.which("uv")
    if found is None:
        raise LockError("no uv next to this python or on PATH: run `bash deploy/setup.sh` first")
    want = tomllib.loads(LOCK.read_text())["package"]
    (pinned,) = [p["version"] for p in want if p["name"] == "uv"]
    have = subprocess.run(
        [found, "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    if have[1:2] != [pinned]:
        raise LockError(
            f"{found} is uv {' '.join(have[1:2]) or '?'}, the "
            f"lock pins {pinned}: run `bash deploy/setup.sh`"
        )
    return found


def _uv(*args: str, offline: bool = True, project: Path = REPO) -> str:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    if offline:
        env["UV_OFFLINE"] = "1"
    else:
        # uv ships its own CA roots; a proxy's CA (or a company's) lives in the system store
        env.setdefault("UV_SYSTEM_CERTS", "1")
    proc = subprocess.run(
        [uv_bin(), *args, "--project", str(project)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        raise LockError(f"uv {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def export(
    extras: list[str], *, install_group: bool, hashes: bool = True, only_group: str | None = None
) -> str:
    """The lock's requirements for these extras (none: the orchestrator set), or for one
    dependency group alone, universal over the lock's environments (pip evaluates the
    markers). Offline and frozen: never re-resolves."""
    args = [
        "export",
        "--frozen",
        "--format",
        "requirements-txt",
        "--no-emit-project",
        "--no-header",
        "--no-annotate",
    ]
    if only_group is not None:
        args += ["--only-group", only_group]
    else:
        args += ["--no-default-groups"] + (["--group", INSTALL_GROUP] if install_group else [])
    for extra in extras:
        args += ["--extra", extra]
    if not hashes:
        args.append("--no-hashes")
    return _uv(*args)


def constraints_text() -> str:
    """What deploy/docker/constraints.txt must hold: the orchestrator set, hashed."""
    body = export([], install_group=False)
    for line in body.splitlines():
        name = line.split("==")[0].strip()
        if name in HEAVY:
            raise LockError(
                f"the orchestrator set pulls {name}: the image must stay torch/CUDA-free"
            )
    return CONSTRAINTS_HEADER + body


def check(project: Path = REPO) -> None:
    """Raise unless uv.lock still satisfies pyproject.toml (uv lock --check, offline: a lock
    that needs re-resolving fails here instead of asking the index)."""
    _uv("lock", "--check", "--python", sys.executable, project=project)


def _follow_uv() -> None:
    """After a re-lock that moved uv itself: install the newly pinned uv into this venv, by
    hash, so the export that follows is the new uv's."""
    uv_bin.cache_clear()
    try:
        uv_bin()
    except LockError:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--require-virtualenv",
                "--require-hashes",
                "--no-deps",
                "-r",
                "/dev/stdin",
            ],
            input=pins(["uv"]),
            text=True,
            check=True,
        )
        uv_bin.cache_clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pins", help="hashed requirement lines of single packages, from uv.lock")
    p.add_argument("names", nargs="+")
    r = sub.add_parser("requirements", help="hashed requirements: [install] group + these extras")
    r.add_argument(
        "--extras", default="", help="comma-separated extras (empty: the orchestrator set)"
    )
    r.add_argument(
        "--only-group", help="this dependency group alone (no project dependencies, no extras)"
    )
    sub.add_parser("constraints", help=f"rewrite {CONSTRAINTS.relative_to(REPO)}")
    sub.add_parser("check", help="uv lock --check, offline")
    u = sub.add_parser(
        "update", help="re-resolve uv.lock against the index, then rewrite constraints"
    )
    u.add_argument(
        "--upgrade", action="store_true", help="take the newest versions pyproject allows"
    )
    args = parser.parse_args(argv)
    try:
        if args.cmd == "pins":
            sys.stdout.write(pins(args.names))
        elif args.cmd == "requirements":
            extras = [e.strip() for e in args.extras.split(",") if e.strip()]
            sys.stdout.write(export(extras, install_group=True, only_group=args.only_group))
        elif args.cmd == "check":
            check()
        else:
            if args.cmd == "update":
                _uv(
                    "lock",
                    "--python",
                    sys.executable,
                    *(["--upgrade"] if args.upgrade else []),
                    offline=False,
                )
                _follow_uv()
            text = constraints_text()
            CONSTRAINTS.write_text(text)
            count = sum(1 for line in text.splitlines() if line[:1].isalnum())
            print(f"{CONSTRAINTS.relative_to(REPO)}: {count} pins from {LOCK.name}")
    except LockError as exc:
        print(f"lock.py: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
