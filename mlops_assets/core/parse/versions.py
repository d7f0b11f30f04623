"""Read version numbers out of tool output and compare them with minimums.

Platform checks gate on versions (Apptainer with working ``--nv``, SLURM with JSON
output, the NVIDIA driver a CUDA build needs, the Kubernetes server KServe supports).
Tools print them in many shapes: ``apptainer version 1.3.4-1.el9``, ``slurm 24.11.1``,
``v1.29.3+k3s1``, ``v1.27.8-eks-8cb36c9``, ``580.159.04``. Text with no version in it
raises :class:`ValueError`, so a failed command is never read as "version 0".

Ordering compares the numeric release only, except that a pre-release (``rc``, ``alpha``,
``beta``, ``dev``, ``pre``) sorts before its release. Distro revisions (``-1.el9``) and
build tags (``+k3s1``, ``-eks-8cb36c9``) do not affect ordering.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["Version", "at_least", "parse_version"]

_VERSION = re.compile(
    r"(?<![\w.])v?(?P<release>\d+(?:\.\d+)+)(?P<suffix>(?:[-+~][0-9A-Za-z][0-9A-Za-z.+~-]*)?)"
)
_BARE = re.compile(r"^\s*v?(?P<release>\d+)\s*$")
_PRERELEASE = re.compile(r"^[-~.]?(?:rc|alpha|beta|a|b|dev|pre|preview)\d*(?:[.-]|$)", re.I)


@functools.total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A parsed version: numeric release, suffix and the token as printed (``580.159.04``)."""

    release: tuple[int, ...]
    suffix: str = ""
    raw: str = ""

    @property
    def prerelease(self) -> bool:
        """``1.4.0-rc.1`` style: sorts before ``1.4.0``."""
        return bool(self.suffix) and bool(_PRERELEASE.match(self.suffix))

    @property
    def major(self) -> int:
        """First release component."""
        return self.release[0]

    @property
    def minor(self) -> int:
        """Second release component (0 if absent)."""
        return self.release[1] if len(self.release) > 1 else 0

    def _key(self) -> tuple[tuple[int, ...], int]:
        rel = list(self.release)
        while len(rel) > 1 and rel[-1] == 0:
            rel.pop()
        return tuple(rel), 0 if self.prerelease else 1

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: Version) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.raw or ".".join(str(p) for p in self.release) + self.suffix


def parse_version(text: str | Version) -> Version:
    """Find the first version (at least ``major.minor``) in a tool's output.

    A bare integer is accepted only when it is the whole text (``"2"`` as a minimum).
    """
    if isinstance(text, Version):
        return text
    if not isinstance(text, str):
        raise ValueError(f"version text must be a string, got {type(text).__name__}")
    m = _VERSION.search(text)
    if m:
        release = tuple(int(p) for p in m.group("release").split("."))
        token = m.group(0)
        return Version(release=release, suffix=m.group("suffix"), raw=token.removeprefix("v"))
    b = _BARE.match(text)
    if b:
        return Version(release=(int(b.group("release")),), raw=b.group("release"))
    shown = text if len(text) <= 120 else text[:120] + "..."
    raise ValueError(f"no version number in {shown!r}")


def at_least(found: str | Version, minimum: str | Version) -> bool:
    """True when ``found`` is the same as or newer than ``minimum`` (both parsed)."""
    return parse_version(found) >= parse_version(minimum)
