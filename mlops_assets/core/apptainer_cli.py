"""Apptainer's command line: what to run to pull or build an image, and how to read what it
prints. Standard library only: it is shipped to the HPC side as `mlops_apptainer.py` beside
payloads/container_image.py, and core/containers.py builds the checks on it."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

SIF_MAGIC = "SIF_MAGIC"
SIF_MAGIC_OFFSET = 32
SIDECAR_SUFFIX = ".mlops.json"
_TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_FATAL = re.compile(r"^(?:\x1b\[[0-9;]*m)?FATAL:\s*(.+)$", re.MULTILINE)

# Python run inside the image: the expected packages' versions, and torch's CUDA build.
VERSIONS_SCRIPT = (
    "import importlib.metadata as m, sys\n"
    "for n in sys.argv[1:]:\n"
    "    try: print(n, m.version(n))\n"
    "    except m.PackageNotFoundError: print(n, 'missing')\n"
    "try:\n"
    "    import torch; print('torch.cuda', torch.version.cuda or 'cpu')\n"
    "except ImportError: pass\n"
)


def sidecar_path(image: str) -> str:
    """Where the image's provenance record lives: beside it, hidden, `.<file>.mlops.json`."""
    head, _, name = image.rpartition("/")
    return f"{head}/.{name}{SIDECAR_SUFFIX}" if head else f".{name}{SIDECAR_SUFFIX}"


def render_definition(text: str, values: Mapping[str, str]) -> str:
    """Fill `{{ name }}` placeholders (Apptainer >= 1.2 build-arg syntax), here rather than with
    --build-arg so that the digest covers exactly what was built, on any Apptainer >= 1.1."""
    missing = sorted({m.group(1) for m in _TEMPLATE.finditer(text)} - set(values))
    if missing:
        raise ValueError(f"definition file needs values for {', '.join(missing)}: add them to the container's source.args in the catalog")
    for key, value in values.items():
        if "\n" in value or "\r" in value:
            raise ValueError(f"definition argument {key!r} contains a newline: one line only")
    return _TEMPLATE.sub(lambda m: values[m.group(1)], text)


def source_digest(kind: str, source: str, definition: str = "", base_sha256: str = "") -> str:
    """What decides whether a re-materialization is a no-op: the pull URI (a pinned tag or
    digest), or the rendered definition plus the sha256 of the image it bootstraps from."""
    h = hashlib.sha256()
    for part in (kind, source, definition, base_sha256):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class ImageCommand:
    """One pull or build, as argv lists (never a shell string)."""

    fetch: list[str]
    inspect: list[str]
    versions: list[str]


def image_commands(
    kind: str,
    source: str,
    tmp_image: str,
    *,
    definition_path: str = "",
    fakeroot: bool = True,
    packages: Sequence[str] = (),
    apptainer: str = "apptainer",
) -> ImageCommand:
    if kind == "pull":
        fetch = [apptainer, "pull", "--force", tmp_image, source]
    elif kind == "build":
        if not definition_path:
            raise ValueError("a build needs the definition file's path on the HPC side")
        fetch = [apptainer, "build", "--force", *(["--fakeroot"] if fakeroot else []), tmp_image, definition_path]
    else:
        raise ValueError(f"unknown container source kind {kind!r}: pull or build")
    return ImageCommand(
        fetch=fetch,
        inspect=[apptainer, "inspect", "--json", tmp_image],
        versions=versions_argv(tmp_image, packages, apptainer),
    )


def versions_argv(image: str, packages: Sequence[str], apptainer: str = "apptainer") -> list[str]:
    """The image's own python3 prints the packages' versions (and torch's CUDA build)."""
    return [apptainer, "exec", "--cleanenv", image, "python3", "-c", VERSIONS_SCRIPT, *packages]


def shell_line(argv: Sequence[str]) -> str:
    """For logs and SLURM scripts: every argument quoted."""
    return " ".join(shlex.quote(a) for a in argv)


# ----------------------------------------------------------------------------- parsing


def parse_version(text: str) -> str:
    """`apptainer version 1.4.5`, `apptainer version 1.3.4-1.el9`, `singularity-ce version 4.1.0`."""
    m = re.search(r"version\s+(\d+\.\d+(?:\.\d+)?\S*)", text)
    if not m:
        raise ValueError(f"no version in {text.strip()[:80]!r}: is this apptainer --version output?")
    return m.group(1)


def parse_labels(inspect_json: str) -> dict[str, str]:
    """Labels from `apptainer inspect --json` (data.attributes.labels; null when none)."""
    try:
        doc = json.loads(inspect_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"apptainer inspect --json printed no JSON ({exc.msg} at {exc.pos})") from None
    labels = (((doc or {}).get("data") or {}).get("attributes") or {}).get("labels") or {}
    if not isinstance(labels, dict):
        raise ValueError("apptainer inspect --json: data.attributes.labels is not a mapping")
    return {str(k): str(v) for k, v in labels.items()}


def parse_versions(stdout: str) -> dict[str, str]:
    """`name version` lines from VERSIONS_SCRIPT; `missing` for an absent package."""
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        name, sep, ver = line.strip().partition(" ")
        if sep and name and not name.endswith(":"):  # not INFO:/WARNING: chatter
            out[name] = ver.strip()
    return out


def release_at_least(found: str, minimum: str) -> bool:
    """Numeric release comparison for framework versions (`2.4.0a0+f70bd71` >= `2.0`)."""

    def release(v: str) -> tuple[int, ...]:
        m = re.match(r"\d+(?:\.\d+)*", v.strip())
        return tuple(int(x) for x in m.group(0).split(".")) if m else ()

    return bool(release(found)) and release(found) >= release(minimum)


def version_shortfalls(
    found: Mapping[str, str], expected: Mapping[str, str], at_least: Callable[[str, str], bool] = release_at_least
) -> list[str]:
    """`name found < minimum` for each expected package that is missing or too old."""
    return [
        f"{n} {found.get(n, 'missing')} < {v}"
        for n, v in expected.items()
        if found.get(n, "missing") == "missing" or not at_least(found[n], v)
    ]


def fatal_message(text: str) -> str:
    """The first `FATAL:` line Apptainer printed (it exits 255 with one), else the last line."""
    m = _FATAL.search(text)
    if m:
        return m.group(1).strip()
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "no output"


def hint_for_failure(message: str) -> str:
    low = message.lower()
    if "no space left" in low:
        return "the containers directory or APPTAINER_TMPDIR is full: free space or point hpc.apptainer.tmpdir at larger scratch"
    if any(s in low for s in ("connection refused", "no such host", "i/o timeout", "dial tcp", "network is unreachable", "tls handshake")):
        return "the registry is unreachable from the HPC side: check network.internet_targets.container_registry, proxies, or pull on a node with access"
    if "unauthorized" in low or "authentication required" in low or "denied" in low:
        return "the registry refused the credentials: apptainer registry login (or APPTAINER_DOCKER_USERNAME/PASSWORD) for the training user"
    if "fakeroot" in low or "subuid" in low or "newuidmap" in low:
        return "--fakeroot needs /etc/subuid and /etc/subgid entries for the training user and the uidmap package"
    if "manifest unknown" in low or "not found" in low or "no such file" in low:
        return "the image reference does not exist: check the container's source in the catalog"
    return "read the apptainer output in the run log; the previous image is untouched"

