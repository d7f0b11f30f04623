"""Checks on staged Apptainer images, built on core/parse/apptainer.py. Pure, no Dagster.

Apptainer's exit codes lie in one place that matters: `exec --nv` on a host without a driver
exits 0 and binds nothing. GPUs are therefore counted inside the container (`nvidia-smi -L`),
never inferred from an exit status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from importlib import resources
from typing import Any

from mlops_assets.catalog.schema import BuildSource, Catalog, Container, PullSource
from mlops_assets.core.checks import Outcome, ProbeFailed, Scalar, Severity
from mlops_assets.core.parse import apptainer as apptainer_text
from mlops_assets.core.parse import nvidia_smi, versions
from mlops_assets.core.probes import node_step
from mlops_assets.core.transport.hostexec import Runner


def sif_valid(runner: Runner, path: str, apptainer: str = "apptainer") -> Outcome:
    """SIF magic at its offset, then `inspect --json` parses: a truncated image fails here,
    naming the file, before any job tries to exec it."""
    res = runner.run(
        [
            "dd",
            f"if={path}",
            "bs=1",
            f"skip={apptainer_text.SIF_MAGIC_OFFSET}",
            f"count={len(apptainer_text.SIF_MAGIC)}",
            "status=none",
        ]
    )
    if not res.ok:
        return Outcome(
            False,
            "missing",
            apptainer_text.SIF_MAGIC,
            "SIF header",
            f"{path} is missing: materialize the container asset (apptainer pull/build)",
            detail=res.tail(1),
        )
    magic = res.stdout.strip()
    if magic != apptainer_text.SIF_MAGIC:
        return Outcome(
            False,
            magic or "(empty)",
            apptainer_text.SIF_MAGIC,
            "SIF header",
            f"{path} is not a SIF image: re-materialize it",
            detail=path,
        )
    ins = runner.run([apptainer, "inspect", "--json", path], timeout_s=120)
    if not ins.ok:
        return Outcome(
            False,
            "inspect failed",
            "inspect --json parses",
            "SIF header + metadata",
            f"{path} is damaged: re-materialize it",
            detail=f"{path}: {apptainer_text.fatal_message(ins.stderr + ins.stdout)}",
        )
    try:
        labels = apptainer_text.parse_labels(ins.stdout)
    except ValueError as exc:
        return Outcome(
            False,
            "inspect unparsable",
            "inspect --json parses",
            "SIF header + metadata",
            f"{path}: re-materialize it",
            detail=str(exc),
        )
    return Outcome(
        True,
        apptainer_text.SIF_MAGIC,
        apptainer_text.SIF_MAGIC,
        "SIF header + metadata",
        "",
        detail=f"{len(labels)} labels",
        extra={
            "apptainer_version_built": labels.get("org.label-schema.usage.apptainer.version", "")
        },
    )


def packages_outcome(found: Mapping[str, str], expected: Mapping[str, str]) -> Outcome:
    bad = apptainer_text.version_shortfalls(found, expected, versions.at_least)
    return Outcome(
        not bad,
        ", ".join(f"{n} {found.get(n, 'missing')}" for n in expected),
        ", ".join(f"{k}>={v}" for k, v in expected.items()),
        "packages in the image",
        "rebuild the image with the required framework versions",
        detail="; ".join(bad),
        extra={"torch_cuda": found["torch.cuda"]} if "torch.cuda" in found else {},
    )


def image_packages(
    runner: Runner, path: str, expected: Mapping[str, str], apptainer: str = "apptainer"
) -> Outcome:
    """The frameworks inside the image, read by the image's own Python."""
    res = runner.run(apptainer_text.versions_argv(path, list(expected), apptainer), timeout_s=300)
    if not res.ok:
        return Outcome(
            False,
            "unmeasured",
            ", ".join(f"{k}>={v}" for k, v in expected.items()),
            "packages in the image",
            "the image does not run: check apptainer and the SIF file",
            detail=f"{path}: {apptainer_text.fatal_message(res.stderr + res.stdout)}",
        )
    return packages_outcome(apptainer_text.parse_versions(res.stdout), expected)


NV_PROBE = (
    'echo "== outside"; nvidia-smi -L 2>&1; echo "== inside"; '
    'apptainer exec --nv "$1" nvidia-smi -L 2>&1; echo "== exit $?"'
)


def parse_nv_probe(text: str) -> tuple[int, int, str]:
    """(GPUs outside, GPUs inside, inside's own words) from NV_PROBE's output."""
    outside, _, rest = text.partition("== inside")
    inside = rest.rsplit("== exit", 1)[0]
    words = next(
        (
            ln.strip()
            for ln in inside.splitlines()
            if ln.strip() and not ln.startswith(("INFO:", "WARNING:"))
        ),
        "",
    )
    return (
        len(nvidia_smi.parse_nvidia_smi_list(outside, strict=False)),
        len(nvidia_smi.parse_nvidia_smi_list(inside, strict=False)),
        words,
    )


def inside_start_failure(text: str) -> str | None:
    """Apptainer's message when `exec --nv` did not start the container at all (NV_PROBE's
    inside part, or a bare `apptainer exec --nv ... nvidia-smi -L` output); None when it ran."""
    inside = text.partition("== inside")[2] or text
    inside = inside.rsplit("== exit", 1)[0]
    return (
        None
        if nvidia_smi.parse_nvidia_smi_list(inside, strict=False)
        else apptainer_text.start_failure(inside)
    )


def judge_nv_probe(stdout: str, gpus: int, image: str, *, fake: bool = False) -> Outcome:
    """NV_PROBE's output from a step holding ``gpus`` GPUs: counts outside and inside
    `exec --nv` must match and be non-zero; a container that never started is named as
    such, never as "no GPU"."""
    outside, inside, words = parse_nv_probe(stdout)
    note = " (the catalog declares these GPUs fake)" if fake else ""
    unit = f"GPUs visible inside apptainer exec --nv (outside: {outside})"
    failed = inside_start_failure(stdout)
    if failed is not None:  # nothing ran inside: no GPU count exists to compare
        return Outcome(
            False,
            "container did not start",
            gpus,
            unit,
            apptainer_text.start_failure_hint(failed) + note,
            detail=f"{image}: the container did not start: {failed[:300]}",
            extra={"gpus_outside": outside},
        )
    return Outcome(
        passed=inside == outside == gpus,
        measured=inside,
        threshold=gpus,
        unit=unit,
        hint=(
            "no GPU inside the container: check the NVIDIA driver and libnvidia-container on the "
            "node, and nvliblist.conf of Apptainer"
            if inside == 0
            else "the container sees other GPUs than the job was given: check cgroup "
            "ConstrainDevices"
        )
        + note,
        detail=f"{image}: inside said {words[:200]!r}" if inside != gpus else image,
        extra={"gpus_outside": outside},
    )


def nv_exposes_gpus(
    runner: Runner,
    image: str,
    partition: str,
    gpus: int,
    *,
    fake: bool = False,
    timeout_s: float = 300,
) -> Outcome:
    """In one SLURM step holding `gpus` GPUs: nvidia-smi outside, then inside `exec --nv`; the
    counts must match and be non-zero. The step's exit code is not trusted (see module doc).
    The step goes to a node with `gpus` free GPUs now; when every node is busy nothing is
    waited for: the check judged nothing, a WARN naming the busy nodes."""
    free, busy = node_step.split_free(runner, partition, gpus=gpus, gpu_nodes=True)
    if not free:
        return Outcome(
            False,
            "not probed",
            gpus,
            "GPUs visible inside apptainer exec --nv",
            node_step.BUSY_HINT,
            detail=f"no node of {partition} has {gpus} free GPU(s) now; "
            + node_step.busy_note(busy),
            severity=Severity.WARN,
        )
    step = node_step.run_step(
        runner,
        partition,
        ["sh", "-c", NV_PROBE, "sh", image],
        node=free[0].name,
        gpus=gpus,
        wait_s=node_step.FLEET_WAIT_S,
        run_s=int(timeout_s),
    )
    if not step.ran:
        raise ProbeFailed(
            f"the --nv probe job did not run on partition {partition}: {step.why_not}",
            node_step.OUT_OF_SERVICE_HINT,
        )
    text = step.result.stdout + step.result.stderr
    if "== inside" not in text:
        raise ProbeFailed(
            f"srun --gres=gpu:{gpus} on {partition} did not run the probe: "
            + apptainer_text.fatal_message(text)[:300],
            "check the partition and that a GPU node is available",
        )
    return judge_nv_probe(step.result.stdout, gpus, image, fake=fake)


def nv_exposes_gpus_per_node(
    runner: Runner, image: str, partition: str, *, fake: bool = False, timeout_s: int = 300
) -> Outcome:
    """NV_PROBE on every GPU node of the partition that is free now, each holding all its
    GPUs, in one labelled step (node_step.run_on_nodes). The worst node's figure is reported
    and every failing node named; busy nodes are named as not probed, never waited for."""
    fleet = node_step.run_on_nodes(
        runner,
        partition,
        ["sh", "-c", NV_PROBE, "sh", image],
        all_gpus=True,
        with_gpus_only=True,
        run_s=timeout_s,
    )
    gres = {n.name: n.gpus for n in node_step.sinfo_nodes(runner)}
    busy = fleet.busy_note()
    extra: dict[str, Scalar] = {"nodes_probed": len(fleet.nodes), "srun_steps": fleet.steps}
    if fleet.busy:
        extra["not_probed_busy"] = ",".join(sorted(fleet.busy))
    per_node: list[tuple[str, Outcome]] = []
    for name in sorted(fleet.nodes):
        run = fleet.nodes[name]
        if run.why_not or "== inside" not in run.stdout:
            said = run.why_not or apptainer_text.fatal_message(run.stdout + run.stderr)[:300]
            per_node.append(
                (
                    name,
                    Outcome(
                        False,
                        "unmeasured",
                        gres.get(name, 0),
                        "GPUs visible inside apptainer exec --nv",
                        "the probe did not run to its end on the node: " + said,
                        detail=said,
                        severity=Severity.WARN,
                    ),
                )
            )
            continue
        per_node.append((name, judge_nv_probe(run.stdout, gres.get(name, 0), image, fake=fake)))
    # a judged failure outranks a node that could not be judged
    failing = sorted(
        ((n, o) for n, o in per_node if not o.passed), key=lambda no: no[1].severity is not None
    )
    if not per_node:
        return Outcome(
            False,
            "not probed",
            "GPU count == GRES",
            "GPUs visible inside apptainer exec --nv on each GPU node",
            node_step.BUSY_HINT,
            detail=f"every GPU node was busy, nothing was judged; {busy}",
            extra=extra,
            severity=Severity.WARN,
        )
    worst = (failing or per_node)[0][1]
    unjudged_only = all(o.severity is Severity.WARN for _, o in failing) and bool(failing)
    lines = [f"{n}: {o.detail}" for n, o in failing] or [image]
    return replace(
        worst,
        nodes=tuple(n for n, _ in failing),
        detail="; ".join(lines + ([busy] if busy else [])),
        extra={**worst.extra, **extra},
        severity=Severity.WARN if unjudged_only else None,
        unit=worst.unit + f" on {len(per_node)} GPU node(s)",
    )


def sidecar(runner: Runner, image: str) -> dict[str, Any] | None:
    res = runner.run(["cat", "--", apptainer_text.sidecar_path(image)])
    if not res.ok:
        return None
    try:
        doc = json.loads(res.stdout)
    except json.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def matches_record(runner: Runner, image: str) -> Outcome:
    """sha256 of the image against the provenance record the payload wrote when it published it."""
    record = sidecar(runner, image)
    if record is None:
        return Outcome(
            False,
            "no record",
            "sha256 of the published image",
            "provenance record",
            f"{apptainer_text.sidecar_path(image)} is missing: re-materialize the container asset",
            detail=image,
        )
    res = runner.run(["sha256sum", "--", image], timeout_s=1800)
    if not res.ok:
        return Outcome(
            False,
            "unreadable",
            str(record.get("sha256", ""))[:12],
            "sha256 (first 12)",
            f"{image} cannot be read: re-materialize it",
            detail=res.tail(1),
        )
    found = res.stdout.split(" ", 1)[0]
    want = str(record.get("sha256", ""))
    return Outcome(
        found == want,
        found[:12],
        want[:12],
        "sha256 (first 12)",
        f"{image} changed after it was published: re-materialize it",
        detail="" if found == want else image,
    )


def definition_text(ct: Container) -> str:
    """The definition file shipped in the package, as the catalog names it."""
    assert isinstance(ct.source, BuildSource)
    return resources.files("mlops_assets").joinpath(ct.source.build).read_text()


def plan(catalog: Catalog, name: str) -> dict[str, Any]:
    """The payload's extras: everything it needs, nothing secret."""
    ct = catalog.containers[name]
    ap = catalog.hpc.apptainer
    env = {
        k: v for k, v in (("APPTAINER_CACHEDIR", ap.cachedir), ("APPTAINER_TMPDIR", ap.tmpdir)) if v
    }
    extras: dict[str, Any] = {
        "target": catalog.container_path(name),
        "expect_python_packages": ct.expected_packages,
        "timeout_s": ct.job.time_limit_min * 60,
        "fakeroot": ct.fakeroot,
        "env": env,
    }
    if isinstance(ct.source, PullSource):
        return {**extras, "kind": "pull", "source": ct.source.pull}
    values = dict(ct.source.args)
    if ct.source.bootstrap_from:
        extras["base_image"] = values["base_image"] = catalog.container_path(
            ct.source.bootstrap_from
        )
    rendered = apptainer_text.render_definition(definition_text(ct), values)
    return {**extras, "kind": "build", "source": ct.source.build, "definition": rendered}
