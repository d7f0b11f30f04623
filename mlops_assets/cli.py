"""`mlops-assets`: validate the catalog, run the checks, materialize, drive the sandbox.

Exit status: 0 when no ERROR-severity check failed, 1 when one did, 2 for usage or
configuration errors, 141 when the reader of standard output went away (`| head`), as a
shell reports a SIGPIPE. Machine formats (json, junit) are alone on stdout; headers,
progress and diagnostics go to stderr. Dagster is imported only by the commands that run it.
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
EXIT_SIGPIPE = 128 + 13
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
        description=(
            "Checks, stages and proves a hybrid SLURM + Kubernetes MLOps platform, through Dagster."
        ),
        epilog=(
            "Exit status: 0 no ERROR check failed, 1 an ERROR check failed, "
            "2 usage or configuration error."
        ),
    )
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cat = sub.add_parser("catalog", help="validate or show the platform catalog")
    cat_sub = cat.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    v = cat_sub.add_parser(
        "validate",
        parents=[common],
        help="check a catalog file in every profile (or --profile's); list every problem",
    )
    v.add_argument("path", nargs="?", help="catalog file (default: the active one)")
    v.add_argument(
        "--all-profiles",
        action="store_true",
        help="kept for scripts: every profile is the default without --profile",
    )
    s = cat_sub.add_parser(
        "show",
        parents=[common],
        help="print the resolved catalog, secrets masked (the file and profile go to stderr)",
    )
    s.add_argument("--format", choices=("yaml", "json"), default="yaml")
    ls = sub.add_parser(
        "list", parents=[common], help="list the groups, asset keys and checks --select takes"
    )
    ls.add_argument("--format", choices=("table", "json"), default="table")

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
            help=(
                f"groups ({' '.join(GROUPS)}) or asset keys; comma or space separated; "
                "default: everything"
            ),
        )
        c.add_argument("--format", choices=FORMATS, default="table")
        c.add_argument(
            "--output", metavar="FILE", help="also write the report to FILE (format from --format)"
        )
        c.add_argument(
            "--fail-on-warn",
            action="store_true",
            help="a failing WARN check also exits 1 (and is a JUnit failure)",
        )
        c.add_argument(
            "--progress",
            choices=("auto", "live", "plain", "none"),
            default="auto",
            help="one stderr line per finished asset or check; auto: a live view on a "
            "terminal, plain lines when stderr is not one or CI is set",
        )

    j = sub.add_parser(
        "judge",
        parents=[common],
        help="judge a site's own nccl-tests or nvidia-smi output by the catalog's rules",
        description="Judge output a site already has (nccl-tests all_reduce_perf, nvidia-smi -q or "
        "its --query-gpu CSV with a header) by the rules and GPU profiles the checks use. "
        "Exit 0 PASS/WARN, 1 FAIL, 2 unreadable.",
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    def v(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return f"mlops-assets {v('mlops_assets')} (dagster {v('dagster')})"


def _catalog_validate(args: argparse.Namespace) -> int:
    """Every profile unless --profile names one (the base section is shared, so a bad base
    value fails them all); every failing profile is reported, not only the first."""
    from mlops_assets.catalog.loader import load_catalog, profile_names
    from mlops_assets.platform import load_sandbox_env

    path = args.path or os.environ.get(CATALOG_ENV) or None
    profiles = (args.profile,) if args.profile else profile_names(path)
    failed: list[CatalogError] = []
    for profile in profiles:
        if profile == "sandbox":
            load_sandbox_env()
        try:
            loaded = load_catalog(path, profile)
        except CatalogError as exc:
            failed.append(exc)
            continue
        c = loaded.catalog
        print(
            f"OK {loaded.path} (profile {profile}): {len(c.datasets)} datasets, "
            f"{len(c.models)} models, {len(c.containers)} containers, "
            f"{len(c.cloud.buckets)} buckets, {len(c.cloud.kubernetes.namespaces)} namespaces"
        )
    for problem in failed:
        print(str(problem), file=sys.stderr)
    if failed:
        names = ", ".join(p.profile or "?" for p in failed)
        print(
            f"mlops-assets: {len(failed)} of {len(profiles)} profiles have problems ({names})",
            file=sys.stderr,
        )
    if not profiles:
        print(f"mlops-assets: {path or 'the catalog'} defines no profile", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_USAGE if failed else EXIT_OK


def _catalog_show(args: argparse.Namespace) -> int:
    import json

    import yaml

    from mlops_assets.catalog.loader import mask_secrets
    from mlops_assets.platform import active

    loaded = active()
    data = mask_secrets(loaded.catalog.model_dump(mode="json"))
    print(f"# {loaded.path} (profile {loaded.profile})", file=sys.stderr)
    print(
        json.dumps(data, indent=2)
        if args.format == "json"
        else yaml.safe_dump(data, sort_keys=False),
        end="" if args.format == "yaml" else "\n",
    )
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    """What --select accepts, read from the same Definitions the run uses."""
    import json

    from mlops_assets.platform import active

    active()
    from mlops_assets import headless
    from mlops_assets.definitions import defs

    rows = headless.listing(defs())
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    width = max((len(r["asset"]) for r in rows), default=5)
    print(f"{'GROUP':<14}{'ASSET':<{width + 2}}CHECKS")
    for r in rows:
        print(f"{r['group']:<14}{r['asset']:<{width + 2}}{', '.join(r['checks']) or '-'}")
    return EXIT_OK


def _run(args: argparse.Namespace, materialize: bool) -> int:
    from mlops_assets.core.progress import Progress, progress_mode
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
    progress = Progress(
        sys.stderr,
        total=(len(sel.materializable) if materialize else 0) + len(sel.checks),
        mode=progress_mode(args.progress, sys.stderr, os.environ),
    )
    stopped = False
    try:
        rows, run_id = headless.execute(
            definitions,
            sel,
            materialize=materialize,
            inst=headless.instance(),
            on_progress=progress.finished,
        )
    except headless.Interrupted as exc:  # Ctrl-C mid-run: report what was judged, exit 130
        rows, run_id, stopped = exc.rows, exc.run_id, True
    finally:
        progress.close()
    report = Report(
        command="materialize" if materialize else "validate",
        profile=loaded.profile,
        catalog=str(loaded.path),
        evaluations=rows,
        started=started,
        run_id=run_id,
        fail_on_warn=args.fail_on_warn,
        interrupted=stopped,
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
        code = _dispatch(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at exit
    except BrokenPipeError:
        # `mlops-assets catalog show | head`: the reader has what it wanted. Quiet, with the
        # shell's SIGPIPE status; stdout goes to /dev/null so the exit flush cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_SIGPIPE
    except CatalogError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("mlops-assets: interrupted", file=sys.stderr)
        return 130
    if code is None:
        parser.error(f"unknown command {args.command}")
    return EXIT_USAGE if code is None else code


def _dispatch(args: argparse.Namespace) -> int | None:
    if args.command == "catalog":
        return (
            _catalog_validate(args) if args.catalog_command == "validate" else _catalog_show(args)
        )
    if args.command == "list":
        return _list(args)
    if args.command in ("validate", "materialize"):
        return _run(args, materialize=args.command == "materialize")
    if args.command == "sandbox":
        return _sandbox(args)
    if args.command == "judge":
        return _judge(args)
    return None


if __name__ == "__main__":
    sys.exit(main())
