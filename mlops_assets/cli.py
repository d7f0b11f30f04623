"""`mlops-assets`: validate the catalog, run the checks, materialize, drive the sandbox.

Exit status: 0 when no ERROR-severity check failed, 1 when one did, 2 for usage or
configuration errors. Dagster is imported only by the commands that run it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops_assets.catalog.loader import CATALOG_ENV, PROFILE_ENV, CatalogError
from mlops_assets.defs import GROUPS

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
FORMATS = ("table", "json", "junit")
REPO_ROOT = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profile", help=f"catalog profile (default: ${PROFILE_ENV} or 'sandbox')")
    common.add_argument(
        "--catalog",
        metavar="PATH",
        help=f"platform.yaml to use (default: ${CATALOG_ENV} or the shipped one)",
    )

    p = argparse.ArgumentParser(
        prog="mlops-assets",
        description="Checks, stages and proves a hybrid SLURM + Kubernetes MLOps platform, through Dagster.",
        epilog="Exit status: 0 no ERROR check failed, 1 an ERROR check failed, 2 usage or configuration error.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cat = sub.add_parser("catalog", help="validate or show the platform catalog")
    cat_sub = cat.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    v = cat_sub.add_parser(
        "validate", parents=[common], help="check a catalog file; list every problem"
    )
    v.add_argument("path", nargs="?", help="catalog file (default: the active one)")
    v.add_argument("--all-profiles", action="store_true", help="validate every profile in the file")
    s = cat_sub.add_parser(
        "show", parents=[common], help="print the resolved catalog, secrets masked"
    )
    s.add_argument("--format", choices=("yaml", "json"), default="yaml")

    for name, text in (
        ("validate", "run the asset checks of the selection and report"),
        ("materialize", "materialize the selection in dependency order, run its checks, report"),
    ):
        c = sub.add_parser(name, parents=[common], help=text, description=text)
        c.add_argument(
            "--select",
            nargs="+",
            default=[],
            metavar="GROUP_OR_KEY",
            help=f"groups ({' '.join(GROUPS)}) or asset keys; comma or space separated; default: everything",
        )
        c.add_argument("--format", choices=FORMATS, default="table")
        c.add_argument(
            "--output", metavar="FILE", help="also write the report to FILE (format from --format)"
        )

    j = sub.add_parser(
        "judge",
        parents=[common],
        help="judge a site's own nccl-tests or nvidia-smi output by the catalog's rules",
        description="Judge output a site already has (nccl-tests all_reduce_perf, nvidia-smi -q or its "
        "--query-gpu CSV with a header) by the rules and GPU profiles the checks use. Exit 0 PASS/WARN, 1 FAIL, 2 unreadable.",
    )
    j.add_argument("kind", choices=("all-reduce-perf", "nvidia-smi-q", "nvidia-smi-csv"))
    j.add_argument("file", help="the saved output, or - for standard input")
    j.add_argument("--format", choices=("text", "json"), default="text")

    sb = sub.add_parser(
        "sandbox", help="bring the loopback sandbox platform up, report on it, or stop it"
    )
    sb.add_argument("action", choices=("up", "status", "down"))
    return p


def _apply_common(args: argparse.Namespace) -> None:
    if getattr(args, "profile", None):
        os.environ[PROFILE_ENV] = args.profile
    if getattr(args, "catalog", None):
        os.environ[CATALOG_ENV] = str(Path(args.catalog).expanduser().resolve())


def _catalog_validate(args: argparse.Namespace) -> int:
    from mlops_assets.catalog.loader import load_catalog
    from mlops_assets.platform import load_sandbox_env

    path = args.path or os.environ.get(CATALOG_ENV) or None
    first = load_catalog(path, args.profile)
    profiles = first.profiles if args.all_profiles else (first.profile,)
    for profile in profiles:
        if profile == "sandbox":
            load_sandbox_env()
        loaded = load_catalog(path, profile)
        c = loaded.catalog
        print(
            f"OK {loaded.path} (profile {profile}): {len(c.datasets)} datasets, {len(c.models)} models, "
            f"{len(c.containers)} containers, {len(c.cloud.buckets)} buckets, "
            f"{len(c.cloud.kubernetes.namespaces)} namespaces"
        )
    return EXIT_OK


def _catalog_show(args: argparse.Namespace) -> int:
    import json

    import yaml

    from mlops_assets.catalog.loader import mask_secrets
    from mlops_assets.platform import active

    loaded = active()
    data = mask_secrets(loaded.catalog.model_dump(mode="json"))
    print(f"# {loaded.path} (profile {loaded.profile})")
    print(
        json.dumps(data, indent=2)
        if args.format == "json"
        else yaml.safe_dump(data, sort_keys=False)
    )
    return EXIT_OK


def _run(args: argparse.Namespace, materialize: bool) -> int:
    from mlops_assets.core.report import Report, render
    from mlops_assets.platform import active

    loaded = active()  # CatalogError surfaces before Dagster starts
    from mlops_assets import headless
    from mlops_assets.definitions import defs

    definitions = defs()
    try:
        sel = headless.select(definitions, args.select)
    except headless.SelectionError as exc:
        print(f"mlops-assets: {exc}", file=sys.stderr)
        return EXIT_USAGE
    missing = _missing_secrets(loaded.catalog, sel)
    if missing:
        print(
            "mlops-assets: these environment variables are not set but the selection needs them: "
            + ", ".join(missing)
            + (
                ". For the sandbox run `mlops-assets sandbox up` first."
                if loaded.profile == "sandbox"
                else "."
            ),
            file=sys.stderr,
        )
        return EXIT_USAGE
    what = "materializing" if materialize else "checking"
    print(
        f"mlops-assets: {what} {len(sel.materializable) if materialize else 0} assets and "
        f"{len(sel.checks)} checks (profile {loaded.profile}) ...",
        file=sys.stderr,
    )
    started = datetime.now(UTC)
    rows, run_id = headless.execute(
        definitions, sel, materialize=materialize, inst=headless.instance()
    )
    report = Report(
        command="materialize" if materialize else "validate",
        profile=loaded.profile,
        catalog=str(loaded.path),
        evaluations=rows,
        started=started,
        run_id=run_id,
    )
    text = render(report, args.format)
    print(text)
    if args.output:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text + ("\n" if not text.endswith("\n") else ""), encoding="utf-8")
        tmp.replace(out)
    return report.exit_code


def _missing_secrets(catalog: Any, sel: Any) -> list[str]:
    from mlops_assets.platform import secret_env_names

    needs_s3 = any(
        k.to_user_string().startswith(("bucket_", "minio", "model_")) for k in sel.assets
    ) or any(ck.name == "hpc_to_cloud_bandwidth" for ck in sel.checks)
    s3_names = {
        catalog.cloud.services.minio.access_key.env,
        catalog.cloud.services.minio.secret_key.env,
    }
    return [
        n for n in secret_env_names(catalog) if n in s3_names and needs_s3 and not os.environ.get(n)
    ]


def _sandbox(args: argparse.Namespace) -> int:
    script = REPO_ROOT / "deploy" / "sandbox" / "sandbox.sh"
    if not script.is_file():
        print(
            f"mlops-assets: {script} not found: the sandbox runs from a clone of the repository "
            "(pip install -e .), not from an installed wheel",
            file=sys.stderr,
        )
        return EXIT_USAGE
    env = dict(os.environ)
    env.setdefault("MLOPS_PYTHON", sys.executable)
    return subprocess.call(["bash", str(script), args.action], env=env)


def _judge(args: argparse.Namespace) -> int:
    import json

    from mlops_assets.judge_outputs import judge
    from mlops_assets.platform import active

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(errors="replace")
    except OSError as exc:
        print(f"mlops-assets: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = judge(args.kind, text, active().catalog)
    except ValueError as exc:
        print(
            f"mlops-assets: {args.file} is not readable as {args.kind} output: {exc}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.format == "json":
        print(json.dumps(result, indent=2, default=str))
    else:
        print(f"{result['verdict']} {args.kind} ({args.file})")
        for message in result.get("messages", []):
            print(f"  - {message}")
    return EXIT_FAILED if result["verdict"] == "FAIL" else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _apply_common(args)
    try:
        if args.command == "catalog":
            return (
                _catalog_validate(args)
                if args.catalog_command == "validate"
                else _catalog_show(args)
            )
        if args.command in ("validate", "materialize"):
            return _run(args, materialize=args.command == "materialize")
        if args.command == "sandbox":
            return _sandbox(args)
        if args.command == "judge":
            return _judge(args)
    except CatalogError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mlops-assets: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
