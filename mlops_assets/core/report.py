"""Render check evaluations as a terminal table, JSON or JUnit XML, and decide the exit
status, as NHC and ReFrame users script them from cron and CI. No Dagster imports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlops_assets.core.checks import Evaluation, Severity

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: as a shell reports a command stopped by SIGINT (128 + 2)
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Report:
    command: str
    profile: str
    catalog: str
    evaluations: Sequence[Evaluation]
    started: datetime
    run_id: str | None = None
    # --fail-on-warn: a WARN failure also fails the run (exit 1, a JUnit <failure>)
    fail_on_warn: bool = False
    # stopped by an interrupt before every check ran: exit 130, whatever the verdicts so far
    interrupted: bool = False

    @property
    def error_failures(self) -> list[Evaluation]:
        return [e for e in self.evaluations if not e.passed and e.severity == Severity.ERROR]

    @property
    def warn_failures(self) -> list[Evaluation]:
        return [e for e in self.evaluations if not e.passed and e.severity == Severity.WARN]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.counted_failures else EXIT_OK

    @property
    def counted_failures(self) -> list[Evaluation]:
        """The failures that decide the exit status (and are JUnit failures): ERROR ones,
        and WARN ones too under fail_on_warn."""
        return [
            e
            for e in self.evaluations
            if not e.passed and (e.severity == Severity.ERROR or self.fail_on_warn)
        ]

    def summary(self) -> dict[str, int]:
        return {
            "total": len(self.evaluations),
            "passed": sum(e.passed for e in self.evaluations),
            "failed_error": len(self.error_failures),
            "failed_warn": len(self.warn_failures),
        }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 28 else text[:25] + "..."


def _verdict(e: Evaluation) -> str:
    return "PASS" if e.passed else ("FAIL" if e.severity == Severity.ERROR else "WARN")


def render_table(report: Report) -> str:
    headers = ["STATUS", "ASSET", "CHECK", "MEASURED", "THRESHOLD", "UNIT", "SECONDS"]
    rows = []
    for e in sorted(
        report.evaluations, key=lambda e: (e.passed, e.severity != Severity.ERROR, e.asset, e.check)
    ):
        status = _verdict(e)
        unit = e.unit if len(e.unit) <= 34 else e.unit[:31] + "..."
        rows.append(
            [
                status,
                e.asset,
                e.check,
                _fmt(e.measured),
                _fmt(e.threshold),
                unit,
                f"{e.duration_s:.2f}",
            ]
        )
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    by_key = {(e.asset, e.check): e for e in report.evaluations}
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        e = by_key[(row[1], row[2])]
        if not e.passed:
            if e.detail:
                lines.append(f"      seen: {e.detail}")
            if e.nodes:
                lines.append(f"      nodes: {', '.join(e.nodes)}")
            lines.append(f"      next: {e.hint}")
    s = report.summary()
    lines.append("")
    lines.append(
        f"Summary ({report.command}, profile {report.profile}): {s['passed']} of {s['total']} "
        f"checks passed; {s['failed_error']} ERROR and {s['failed_warn']} WARN failures."
        + (" Interrupted: what was not run is not judged." if report.interrupted else "")
    )
    return "\n".join(lines)


def render_json(report: Report) -> str:
    doc = {
        "command": report.command,
        "profile": report.profile,
        "catalog": report.catalog,
        "started": report.started.isoformat(),
        "run_id": report.run_id,
        "summary": report.summary(),
        "exit_code": report.exit_code,
        "interrupted": report.interrupted,
        "results": [e.as_dict() for e in report.evaluations],
    }
    return json.dumps(doc, indent=2, default=str)


def render_junit(report: Report) -> str:
    """One testcase per check. A failure element only for what the exit status counts: a
    WARN is a passed testcase (as exit 0 says) whose verdict is a property and whose
    measurement and hint are in system-out, so CI shows it without failing the build."""
    s = report.summary()
    counted = {id(e) for e in report.counted_failures}
    suite = ET.Element(
        "testsuite",
        name=f"mlops-assets {report.command} ({report.profile})",
        tests=str(s["total"]),
        failures=str(len(counted)),
        errors="0",
        skipped="0",
        time=f"{sum(e.duration_s for e in report.evaluations):.3f}",
        timestamp=report.started.astimezone(UTC).isoformat(timespec="seconds"),
    )
    for e in report.evaluations:
        case = ET.SubElement(
            suite, "testcase", classname=e.asset, name=e.check, time=f"{e.duration_s:.3f}"
        )
        props = ET.SubElement(case, "properties")
        ET.SubElement(props, "property", name="verdict", value=_verdict(e))
        for key in ("severity", "measured", "threshold", "unit"):
            ET.SubElement(props, "property", name=key, value=str(e.as_dict()[key]))
        if e.passed:
            continue
        text = "\n".join(
            x
            for x in (
                f"measured {e.measured} {e.unit}, threshold {e.threshold}",
                e.detail,
                ", ".join(e.nodes),
            )
            if x
        )
        if id(e) in counted:
            fail = ET.SubElement(case, "failure", type=str(e.severity), message=e.hint)
            fail.text = text
        else:
            out = ET.SubElement(case, "system-out")
            out.text = f"{_verdict(e)}: {text}\nnext: {e.hint}"
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )


RENDERERS = {"table": render_table, "json": render_json, "junit": render_junit}


def render(report: Report, fmt: str) -> str:
    return RENDERERS[fmt](report)
