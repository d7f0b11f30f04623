"""What a check is and what it says: pass/fail, severity, the measured value against its
threshold with a unit, the nodes concerned, and a hint for what to do next.

Pure: no Dagster imports, so the same specs drive the Dagster checks, the CLI report and tests.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Concatenate, Generic, TypeVar

Scalar = float | int | str | bool | None


class Severity(StrEnum):
    ERROR = "ERROR"
    WARN = "WARN"


@dataclass(frozen=True)
class Outcome:
    """What a probe measured. ``severity``, when set, replaces the spec's for this result:
    a check with a warn and an error level says which one was crossed."""

    passed: bool
    measured: Scalar
    threshold: Scalar
    unit: str = ""
    hint: str = ""
    nodes: tuple[str, ...] = ()
    detail: str = ""
    extra: dict[str, Scalar] = field(default_factory=dict)
    #: This failure's severity where the probe knows better than the check's spec: a figure
    #: that cannot be judged is a WARN that says so, even on an ERROR check. None: the spec's.
    severity: Severity | None = None


class ProbeFailed(Exception):
    """A probe could not measure (host unreachable, command missing, bad answer). The check
    fails with this message and hint instead of a traceback."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


#: What a probe is given: the Dagster layer's ProbeContext (checking.py); a test may pass its own.
Ctx = TypeVar("Ctx")


@dataclass(frozen=True)
class CheckSpec(Generic[Ctx]):
    """One check on one asset. `probe` gets a context object holding the catalog and the
    clients named in `requires`; generic in that context so that a domain typing its specs
    `CheckSpec[ProbeContext]` has every probe, lambdas included, checked against it."""

    asset: str
    name: str
    severity: Severity
    description: str
    probe: Callable[[Ctx], Outcome]
    requires: tuple[str, ...] = ()
    blocking: bool = False
    light: bool = True
    hint: str = ""
    # Assets the probe reads (a bucket, an image): in a run that materializes them, the check
    # runs after them, so a first run judges what it made instead of "not made yet".
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Evaluation:
    """A check's result as every report format shows it."""

    asset: str
    check: str
    passed: bool
    severity: Severity
    measured: Scalar
    threshold: Scalar
    unit: str
    hint: str
    duration_s: float
    nodes: tuple[str, ...] = ()
    detail: str = ""
    extra: dict[str, Scalar] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "check": self.check,
            "passed": self.passed,
            "severity": str(self.severity),
            "measured": self.measured,
            "threshold": self.threshold,
            "unit": self.unit,
            "hint": self.hint,
            "duration_s": round(self.duration_s, 3),
            "nodes": list(self.nodes),
            "detail": self.detail,
            **({"extra": dict(self.extra)} if self.extra else {}),
        }


def at_least(measured: float, threshold: float, unit: str, hint: str, **kw: Any) -> Outcome:
    return Outcome(measured >= threshold, measured, threshold, unit, hint, **kw)


def at_most(measured: float, threshold: float, unit: str, hint: str, **kw: Any) -> Outcome:
    return Outcome(measured <= threshold, measured, threshold, unit, hint, **kw)


def none_failed(
    total: int, failed: Sequence[str], unit: str, hint: str, *, label: str, **kw: Any
) -> Outcome:
    """Pass when none of `total` items failed. Measured is how many are good, so a partial
    failure reads as "3 of 4"; the detail names each failed item after `label`."""
    detail = f"{label}: {', '.join(failed)}" if failed else ""
    return Outcome(not failed, total - len(failed), total, unit, hint, detail=detail, **kw)


def missing_items(present: Iterable[str], required: Iterable[str], what: str, hint: str) -> Outcome:
    """Pass when every required item is present; the measured value names what is missing."""
    have = set(present)
    missing = [r for r in required if r not in have]
    return Outcome(
        passed=not missing,
        measured=", ".join(missing) if missing else "all present",
        threshold=", ".join(required),
        unit=what,
        hint=hint,
        detail=f"missing {what}: {', '.join(missing)}" if missing else "",
    )


def bound(probe: Callable[Concatenate[Ctx, ...], Outcome], *args: Any) -> Callable[[Ctx], Outcome]:
    """A probe taking (ctx, *args) as the one-argument probe a CheckSpec holds; the context's
    type carries over, so the probe's own annotation is checked."""
    return lambda ctx: probe(ctx, *args)


_MAX_DETAIL = 500


def redact(text: str, secrets: Iterable[str]) -> str:
    """Secrets never reach metadata, logs or errors, even inside a library's message."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "****")
    text = re.sub(r"(://[^:/@\s]+:)[^@/\s]+@", r"\1****@", text)
    return text


def run_check(spec: CheckSpec[Ctx], ctx: Ctx, secrets: Iterable[str] = ()) -> Evaluation:
    """Run one probe; a probe that raises becomes a failed check with its message and hint."""
    start = time.monotonic()
    secrets = list(secrets)
    try:
        outcome = spec.probe(ctx)
    except ProbeFailed as exc:
        outcome = Outcome(False, "unmeasured", None, "", exc.hint or spec.hint, detail=str(exc))
    except Exception as exc:  # a broken probe must not hide the other checks
        outcome = Outcome(
            False,
            "unmeasured",
            None,
            "",
            spec.hint,
            detail=f"{type(exc).__name__}: {exc}",
        )
    duration = time.monotonic() - start
    detail = redact(outcome.detail, secrets)[:_MAX_DETAIL]
    return Evaluation(
        asset=spec.asset,
        check=spec.name,
        passed=outcome.passed,
        severity=outcome.severity or spec.severity,
        measured=outcome.measured,
        threshold=outcome.threshold,
        unit=outcome.unit,
        hint=redact(outcome.hint or spec.hint, secrets),
        duration_s=duration,
        nodes=outcome.nodes,
        detail=detail,
        extra=dict(outcome.extra),
    )
