"""Apptainer's command line: what to run to pull or build an image, and how to read what it
prints. Standard library only: it is shipped to the HPC side as `mlops_apptainer.py` beside
payloads/container_image.py, and core/probes/containers.py builds the checks on it."""

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
        raise ValueError(
            f"definition file needs values for {', '.join(missing)}: add them to the container's "
            "source.args in the catalog"
        )
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
        fetch = [
            apptainer,
            "build",
            "--force",
            *(["--fakeroot"] if fakeroot else []),
            tmp_image,
            definition_path,
        ]
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


# `apptainer --version` and the products that went before it. Apptainer ships a `singularity`
# link that still prints `apptainer version`; SingularityCE prints `singularity-ce version`,
# SingularityPRO `SingularityPRO version`; legacy Singularity 3.0-3.7 printed `singularity
# version`, and 2.x only the bare number (`2.6.1-dist`).
_PRODUCT_VERSION = re.compile(
    r"^\s*(apptainer|singularity-ce|singularitypro|singularity-pro|singularity)"
    r"\s+version\s+v?(\d+\.\d+(?:\.\d+)?\S*)",
    re.IGNORECASE | re.MULTILINE,
)
_BARE_VERSION = re.compile(r"^\s*v?(\d+\.\d+(?:\.\d+)?(?:[-+.]\S*)?)\s*$", re.MULTILINE)
PRODUCTS = {
    "apptainer": "Apptainer",
    "singularity-ce": "SingularityCE",
    "singularitypro": "SingularityPRO",
    "singularity-pro": "SingularityPRO",
    "singularity": "Singularity",
}
APPTAINER = "Apptainer"


def parse_product_version(text: str) -> tuple[str, str]:
    """(product, version) from `apptainer --version` or `singularity --version`: the jobs call
    `apptainer`, so which product answered matters as much as the number."""
    m = _PRODUCT_VERSION.search(text)
    if m:
        return PRODUCTS[m.group(1).lower()], m.group(2)
    bare = _BARE_VERSION.search(text)
    if bare and bare.group(1).startswith("2."):  # Singularity 2.x: `2.6.1-dist`
        return "Singularity", bare.group(1)
    raise ValueError(f"no version in {text.strip()[:80]!r}: is this apptainer --version output?")


def product_label(product: str, version: str) -> str:
    """`Apptainer 1.4.5`, `Singularity 3.7.0 (legacy Singularity)`, `SingularityCE 4.1.0`."""
    return f"{product} {version}" + (" (legacy Singularity)" if product == "Singularity" else "")


def parse_version(text: str) -> str:
    """`apptainer version 1.4.5`, `apptainer version 1.3.4-1.el9`,
    `singularity-ce version 4.1.0`."""
    return parse_product_version(text)[1]


def parse_labels(inspect_json: str) -> dict[str, str]:
    """Labels from `inspect --json`, in every shape it has had: Apptainer and Singularity >= 3.2
    `{"data": {"attributes": {"labels": {...}}}}` (null when none); Singularity 3.0/3.1
    `{"attributes": {"labels": ...}}` without `data`, the labels even as a JSON string; 2.x put
    `type` inside `data`. Any other shape is an error, never an empty set of labels."""
    try:
        doc = json.loads(inspect_json)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"apptainer inspect --json printed no JSON ({exc.msg} at {exc.pos})"
        ) from None
    holder = doc.get("data", doc) if isinstance(doc, dict) else None
    attributes = holder.get("attributes") if isinstance(holder, dict) else None
    if not isinstance(attributes, dict):
        keys = sorted(doc)[:5] if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(
            "apptainer inspect --json: no attributes in its "
            f"answer (keys {keys}): unknown output shape"
        )
    labels = attributes.get("labels")
    if isinstance(labels, str):  # Singularity 3.0/3.1 printed the labels file as a string
        try:
            labels = json.loads(labels) if labels.strip() else {}
        except json.JSONDecodeError:
            raise ValueError(
                "apptainer inspect --json: attributes.labels is a string but not JSON"
            ) from None
    labels = labels or {}
    if not isinstance(labels, dict):
        raise ValueError("apptainer inspect --json: attributes.labels is not a mapping")
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
    found: Mapping[str, str],
    expected: Mapping[str, str],
    at_least: Callable[[str, str], bool] = release_at_least,
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


#: (words, hint) rules: the first rule with one of its words in the lower-cased message wins.
HintRules = tuple[tuple[tuple[str, ...], str], ...]


def first_hint(message: str, rules: HintRules, default: str) -> str:
    low = message.lower()
    return next((hint for words, hint in rules if any(w in low for w in words)), default)


#: Why a pull or build failed, by what Apptainer said.
PULL_HINTS: HintRules = (
    (
        ("no space left",),
        "the containers directory or APPTAINER_TMPDIR is full: free space or point "
        "hpc.apptainer.tmpdir at larger scratch",
    ),
    (
        (
            "connection refused",
            "no such host",
            "i/o timeout",
            "dial tcp",
            "network is unreachable",
            "tls handshake",
        ),
        "the registry is unreachable from the HPC side: check "
        "network.internet_targets.container_registry, proxies, or pull on a node with access",
    ),
    (
        ("unauthorized", "authentication required", "denied"),
        "the registry refused the credentials: apptainer registry login (or "
        "APPTAINER_DOCKER_USERNAME/PASSWORD) for the training user",
    ),
    (
        ("fakeroot", "subuid", "newuidmap"),
        "--fakeroot needs /etc/subuid and /etc/subgid entries "
        "for the training user and the uidmap package",
    ),
    (
        ("manifest unknown", "not found", "no such file"),
        "the image reference does not exist: check the container's source in the catalog",
    ),
)


def hint_for_failure(message: str) -> str:
    """The usual fix for a failed pull or build."""
    return first_hint(
        message,
        PULL_HINTS,
        "read the apptainer output in the run log; the previous image is untouched",
    )


# Apptainer's own log lines (`FATAL:   ...`, `ERROR  : ...`), possibly coloured.
_APPTAINER_ERROR = re.compile(
    r"^[ \t]*(?:\x1b\[[0-9;]*m)*(?:FATAL|ERROR)\s*:\s*(.+?)(?:\x1b\[0m)?\s*$", re.MULTILINE
)
# `FATAL: "nvidia-smi": executable file not found in $PATH`: the container started, the command
# is missing in it (with --nv: no nvidia-smi on the host to bind). Not a start failure.
_COMMAND_MISSING = "executable file not found in $path"


def start_failure(text: str) -> str | None:
    """Apptainer's own message when it did not start the container (a FATAL or ERROR line of
    its own, such as a capability set it may not have, a mount hook or a missing image), else
    None. A container that started and found no GPU is a different cause with a different fix."""
    for m in _APPTAINER_ERROR.finditer(text):
        message = m.group(1).strip()
        if _COMMAND_MISSING not in message.lower():
            return message
    # pasted or wrapped without its FATAL: prefix (log collectors, forum posts)
    bare = next(
        (
            ln.strip()
            for ln in text.splitlines()
            if ln.strip().startswith("container creation failed:")
        ),
        None,
    )
    return bare


#: Why a container did not start, by Apptainer's own message (seen on real sites).
START_HINTS: HintRules = (
    (
        ("capability set",),
        "Apptainer may not take the capabilities it asks for: the probe "
        "ran as root inside a restricted capability bounding set (a "
        "container or sandboxed login); run it as an unprivileged user",
    ),
    (
        ("fakeroot", "subuid", "user namespace", "/proc/self/ns/user"),
        "unprivileged user namespaces are unavailable: enable them "
        "(user.max_user_namespaces) or install apptainer-suid",
    ),
    (
        ("squashfuse", "bad superblock", "mount hook", "fuse"),
        "Apptainer could not mount the image: install squashfuse/fuse2fs or apptainer-suid, "
        "or re-materialize a damaged SIF",
    ),
    (
        ("nvidia-container-cli",),
        "--nvccli failed: check nvidia-container-cli on the node, or use plain --nv",
    ),
    (
        ("no such file", "not found", "failed to open image", "image format"),
        "the image is missing or damaged on the node: re-materialize the container asset",
    ),
)


def start_failure_hint(message: str) -> str:
    """The usual fix for the start failures seen on real sites."""
    return first_hint(
        message,
        START_HINTS,
        "Apptainer failed before running the command: read "
        "its message and apptainer.conf on the node",
    )
