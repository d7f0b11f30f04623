"""What every part of the catalog schema builds on: the strict base model (unknown keys
are typos), the constrained string types (a relative path and a pinned revision carry their
validators, so each model that uses one checks it alike), and Freshness. No Dagster imports."""

import re
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

_NAME = r"^[a-z][a-z0-9_]{0,62}$"
_SHA40 = re.compile(r"^[0-9a-f]{40}$")
_VERSION = r"^v?\d+(\.\d+){0,3}$"

Name = Annotated[str, Field(pattern=_NAME, description="lower_snake_case identifier")]
Version = Annotated[str, Field(pattern=_VERSION, description="dotted version such as 1.27")]
RepoId = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9][\w.-]*/[\w.-]+$", description="hub repo, org/name")
]


def _relative(value: str) -> str:
    parts = value.split("/")
    if value.startswith("/") or ".." in parts or any(p in ("", ".") for p in parts):
        raise ValueError(f"{value!r} must be a relative path without '..', '.' or '//'")
    return value


def _pinned_revision(value: str) -> str:
    if not _SHA40.match(value):
        raise ValueError(
            f"revision {value!r} is not pinned: use the 40-hex commit sha, not a branch"
        )
    return value


#: Relative, without '..', '.' or '//': every catalog path under the BeeGFS root is one.
RelPath = Annotated[
    str,
    Field(min_length=1, description="path relative to the BeeGFS root"),
    AfterValidator(_relative),
]
#: A hub revision pinned to its 40-hex commit sha (a branch would move under the staged copy).
PinnedRevision = Annotated[str, AfterValidator(_pinned_revision)]


class _Strict(BaseModel):
    """Unknown keys are typos until proven otherwise."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Freshness(_Strict):
    fail_after_hours: float = Field(gt=0)
    warn_after_hours: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _warn_before_fail(self) -> Self:
        if self.warn_after_hours is not None and self.warn_after_hours >= self.fail_after_hours:
            raise ValueError("warn_after_hours must be smaller than fail_after_hours")
        return self
