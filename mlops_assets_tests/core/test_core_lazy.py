"""core/lazy: a deferred module costs nothing until a name of it is read, then behaves as
the module; and the code location leaves every RUN_ONLY module deferred. Each case runs in
a fresh interpreter, since deferring changes sys.modules for the whole process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, tmp_path: Path) -> dict[str, object]:
    """Run `code` beside a throwaway package `pkg` whose `slow` module records its import."""
    pkg = tmp_path / "pkg"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "slow.py").write_text(
        textwrap.dedent(
            """
            import os, time
            IMPORTS = int(os.environ.get("SLOW_IMPORTS", "0")) + 1
            os.environ["SLOW_IMPORTS"] = str(IMPORTS)
            if os.environ.get("SLOW_FAIL") == "1":
                raise RuntimeError("slow failed to import")
            time.sleep(0.2)  # a wide window for threads that race to the first read
            ANSWER = 42
            def twice(x):
                return 2 * x
            """
        )
    )
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_deferred_module_is_imported_on_its_first_read_once(tmp_path: Path) -> None:
    got = _run(
        """
        import json, os, sys
        from mlops_assets.core.lazy import defer, deferred
        defer(["pkg.slow"])
        from pkg import slow            # binds the stand-in
        import pkg.slow as again        # so does the dotted form
        before = (os.environ.get("SLOW_IMPORTS"), deferred("pkg.slow"))
        answer = slow.ANSWER            # the first read imports it
        print(json.dumps({
            "before": before, "answer": answer, "twice": again.twice(4),
            "imports": os.environ["SLOW_IMPORTS"], "deferred_after": deferred("pkg.slow"),
            "real_in_sys_modules": sys.modules["pkg.slow"].__class__.__name__,
        }))
        """,
        tmp_path,
    )
    assert got["before"] == [None, True]
    assert (got["answer"], got["twice"], got["imports"]) == (42, 8, "1")
    assert got["deferred_after"] is False and got["real_in_sys_modules"] == "module"


def test_threads_racing_to_the_first_read_all_see_the_whole_module(tmp_path: Path) -> None:
    """Checks probe concurrently: no thread may see a half-imported module."""
    got = _run(
        """
        import json, os
        from concurrent.futures import ThreadPoolExecutor
        from mlops_assets.core.lazy import defer
        defer(["pkg.slow"])
        from pkg import slow
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda i: slow.twice(i) + slow.ANSWER, range(16)))
        print(json.dumps({"answers": answers, "imports": os.environ["SLOW_IMPORTS"]}))
        """,
        tmp_path,
    )
    assert got["answers"] == [2 * i + 42 for i in range(16)]
    assert got["imports"] == "1"


def test_a_thread_importing_a_module_that_reads_a_deferred_name_does_not_deadlock(
    tmp_path: Path,
) -> None:
    """Thread B imports `pkg.middle`, which reads a name of the deferred `pkg.slow` while it
    holds middle's import lock; thread A meanwhile reads the deferred `pkg.first`, whose import
    needs `pkg.middle`. Had the first read held a lock of ours across its import, B would
    wait for A's lock and A for middle: both hang, as a run worker's probe threads could."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "first.py").write_text("import pkg.middle\nX = pkg.middle.Y + 1\n")
    (tmp_path / "pkg" / "middle.py").write_text(
        "import time\ntime.sleep(0.5)\nfrom pkg.slow import ANSWER\nY = ANSWER\n"
    )
    got = _run(
        """
        import json, os, sys, threading, time
        from mlops_assets.core.lazy import defer
        defer(["pkg.first", "pkg.slow"])
        from pkg import first
        seen = {}
        b = threading.Thread(target=lambda: seen.update(b=__import__("pkg.middle").middle.Y),
                             daemon=True)
        a = threading.Thread(target=lambda: seen.update(a=first.X), daemon=True)
        b.start(); time.sleep(0.1); a.start()
        a.join(20); b.join(20)
        print(json.dumps({"alive": [t.is_alive() for t in (a, b)], "seen": seen}), flush=True)
        os._exit(0)  # a deadlocked thread must not hold up the exit
        """,
        tmp_path,
    )
    assert got == {"alive": [False, False], "seen": {"a": 43, "b": 42}}


def test_a_failing_import_raises_at_each_read_and_a_missing_name_is_an_attribute_error(
    tmp_path: Path,
) -> None:
    got = _run(
        """
        import json, os
        from mlops_assets.core.lazy import defer, deferred
        os.environ["SLOW_FAIL"] = "1"
        defer(["pkg.slow"])
        from pkg import slow
        errors = []
        for _ in range(2):
            try:
                slow.ANSWER
            except RuntimeError as exc:
                errors.append(str(exc))
        os.environ["SLOW_FAIL"] = "0"
        answer = slow.ANSWER
        try:
            slow.NOT_THERE
            missing = None
        except AttributeError as exc:
            missing = str(exc)
        print(json.dumps({"errors": errors, "answer": answer, "missing": missing}))
        """,
        tmp_path,
    )
    assert got["errors"] == ["slow failed to import"] * 2
    assert got["answer"] == 42
    assert "NOT_THERE" in str(got["missing"])


@pytest.mark.parametrize("already", [False, True])
def test_defer_leaves_an_imported_module_as_it_is(tmp_path: Path, already: bool) -> None:
    got = _run(
        f"""
        import json, sys
        if {already}:
            import pkg.slow
        from mlops_assets.core.lazy import defer, deferred
        defer(["pkg.slow"])
        print(json.dumps({{"deferred": deferred("pkg.slow")}}))
        """,
        tmp_path,
    )
    assert got["deferred"] is (not already)


def test_loading_the_code_location_imports_no_run_only_module(tmp_path: Path) -> None:
    """What the load must not pay for (definitions.RUN_ONLY): a module-level `from X import
    name` of one of them, or an annotation that names one and is evaluated at load, would
    import it, and this names which."""
    got = _run(
        """
        import json
        from mlops_assets.core.lazy import deferred
        from mlops_assets.definitions import RUN_ONLY, defs
        defs().resolve_asset_graph()
        print(json.dumps({"imported": [n for n in RUN_ONLY if not deferred(n)]}))
        """,
        tmp_path,
    )
    assert got["imported"] == []
