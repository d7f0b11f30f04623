"""Bad catalogs get one error listing every problem with key path, line and fix."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_assets.catalog.loader import DEFAULT_CATALOG, CatalogError, load_catalog, mask_secrets

BASE = yaml.safe_load(DEFAULT_CATALOG.read_text())


def write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "platform.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False) if not isinstance(data, str) else data)
    return p


@pytest.mark.parametrize("profile", ["sandbox", "production"])
def test_shipped_catalog_loads(profile: str) -> None:
    loaded = load_catalog(profile=profile, env={})
    assert loaded.profile == profile and set(loaded.profiles) == {"sandbox", "production"}


def test_default_profile_is_sandbox_and_env_selects() -> None:
    assert load_catalog(env={}).profile == "sandbox"
    assert (
        load_catalog(env={"MLOPS_PROFILE": "production"}).catalog.hpc.beegfs.root == "/mnt/beegfs"
    )


def test_production_reads_addresses_from_environment() -> None:
    c = load_catalog(
        profile="production", env={"MLOPS_HPC_LOGIN_HOST": "login.example", "MLOPS_HPC_USER": "ops"}
    ).catalog
    assert (c.hpc.access.login.host, c.hpc.access.login.user) == ("login.example", "ops")
    assert (
        load_catalog(profile="production", env={}).catalog.hpc.access.login.host == "192.168.100.10"
    )


def test_required_env_var_missing_is_named(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["hpc"]["access"]["login"]["host"] = "${MLOPS_TEST_UNSET_HOST}"
    with pytest.raises(CatalogError) as err:
        load_catalog(write(tmp_path, data), "production", env={})
    assert "MLOPS_TEST_UNSET_HOST is not set" in str(err.value)
    assert "hpc.access.login.host" in str(err.value)


def test_every_problem_is_listed_with_path_line_and_fix(tmp_path: Path) -> None:
    text = DEFAULT_CATALOG.read_text()
    text = text.replace("min_free_gb: 500", "min_free_gb: -5").replace(
        "gpus_per_node: 2", "gpus_per_nod: 2"
    )
    text = text.replace("revision: 607a30d783dfa663caf39e06633721c8d4cfcd7e", "revision: main")
    p = write(tmp_path, text)
    with pytest.raises(CatalogError) as err:
        load_catalog(p, "production", env={})
    msg = str(err.value)
    assert "3 problems" in msg or "4 problems" in msg, msg
    lines = text.splitlines()
    free_line = next(i + 1 for i, line in enumerate(lines) if "min_free_gb: -5" in line)
    assert f"hpc.beegfs.min_free_gb ({p}:{free_line})" in msg
    assert "did you mean 'gpus_per_node'" in msg
    assert "models.gpt2.revision" in msg and "not pinned" in msg
    assert msg.count("fix:") == len(err.value.problems)


def test_profile_override_errors_point_at_the_profile(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["profiles"]["sandbox"]["hpc"]["beegfs"]["min_free_gb"] = "lots"
    p = write(tmp_path, data)
    with pytest.raises(CatalogError) as err:
        load_catalog(p, "sandbox", env={})
    assert "hpc.beegfs.min_free_gb" in str(err.value) and "'lots'" in str(err.value)
    assert err.value.problems[0].line is not None


def _line(text: str, needle: str, after: int = 0) -> int:
    lines = text.splitlines()
    return next(i + 1 for i, line in enumerate(lines) if i >= after and needle in line)


def test_base_errors_point_at_the_base_line_even_where_the_profile_overrides_siblings(
    tmp_path: Path,
) -> None:
    """The sandbox profile overrides hpc.apptainer.cachedir, but min_version comes from the
    base: a bad base value is reported at its own line, not at the profile's block; a bad
    value the profile sets is reported at the profile's line."""
    text = DEFAULT_CATALOG.read_text()
    text = text.replace('min_version: "1.1.0"', "min_version: 1.1.0.0.x", 1)
    profiles_at = text.splitlines().index("profiles:") + 1
    sandbox_cachedir = _line(text, "cachedir:", after=profiles_at)
    lines = text.splitlines()
    lines[sandbox_cachedir - 1] = lines[sandbox_cachedir - 1].split(":")[0] + ": [1, 2]"
    text = "\n".join(lines) + "\n"
    p = write(tmp_path, text)
    with pytest.raises(CatalogError) as err:
        load_catalog(p, "sandbox", env={})
    where = {prob.path: prob.line for prob in err.value.problems}
    assert where.get("hpc.apptainer.min_version") == _line(text, "min_version: 1.1.0.0.x"), where
    assert where.get("hpc.apptainer.cachedir") == sandbox_cachedir, where


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    p = write(tmp_path, "version: 1\nhpc: [unclosed\n")
    with pytest.raises(CatalogError) as err:
        load_catalog(p, env={})
    assert "not valid YAML" in str(err.value) and err.value.problems[0].line is not None


def test_unknown_profile_suggests(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as err:
        load_catalog(profile="prodution", env={})
    assert "did you mean 'production'" in str(err.value)


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="file not found"):
        load_catalog(tmp_path / "nope.yaml", env={})
    with pytest.raises(CatalogError, match="must be a mapping"):
        load_catalog(write(tmp_path, "- a\n- b\n"), env={})


def test_cross_references_are_checked(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["models"]["gpt2"]["bucket"] = "nope"
    data["smoke"]["partition"] = "cpu"
    with pytest.raises(CatalogError) as err:
        load_catalog(write(tmp_path, data), "production", env={})
    assert "models.gpt2.bucket 'nope'" in str(err.value) and "smoke.partition 'cpu'" in str(
        err.value
    )


@pytest.mark.parametrize("profile", ["sandbox", "production"])
def test_schedule_crons_live_under_automation_in_every_profile(profile: str) -> None:
    """The profiles override `automation.running` only; the crons of the base survive."""
    auto = load_catalog(profile=profile, env={}).catalog.automation
    assert (auto.light_checks_cron, auto.full_validation_cron) == ("*/15 * * * *", "0 2 * * *")


def test_schedule_crons_under_smoke_still_load_with_a_deprecation(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["smoke"]["light_checks_cron"] = "*/5 * * * *"
    del data["automation"]["light_checks_cron"]
    with pytest.warns(
        FutureWarning, match=r"smoke.light_checks_cron moved to automation.light_checks_cron"
    ):
        auto = load_catalog(write(tmp_path, data), "production", env={}).catalog.automation
    assert auto.light_checks_cron == "*/5 * * * *" and auto.full_validation_cron == "0 2 * * *"
    data["automation"]["light_checks_cron"] = "*/10 * * * *"
    with pytest.raises(
        CatalogError, match=r"smoke.light_checks_cron and automation.light_checks_cron disagree"
    ):
        load_catalog(write(tmp_path, data), "production", env={})


def test_hostile_values_are_rejected_not_executed(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["hpc"]["beegfs"]["training_user"] = "root; rm -rf /"
    data["datasets"]["mnist"]["path"] = "../../etc"
    with pytest.raises(CatalogError) as err:
        load_catalog(write(tmp_path, data), "production", env={})
    assert "hpc.beegfs.training_user" in str(err.value) and "datasets.mnist.path" in str(err.value)


def test_mask_secrets() -> None:
    masked = mask_secrets(
        {"url": "http://u:hunter22@h/x", "password": "p", "secret_key": {"env": "NAME"}}
    )
    assert masked == {"url": "http://u:****@h/x", "password": "****", "secret_key": {"env": "NAME"}}


def _paths(data: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


ALL_PATHS = [p for p in _paths({k: v for k, v in BASE.items() if k != "profiles"})]
JUNK = st.one_of(
    st.none(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.sampled_from(ALL_PATHS), junk=JUNK, delete=st.booleans())
def test_any_mutation_is_either_valid_or_a_catalog_error(
    tmp_path: Path, path: tuple, junk: object, delete: bool
) -> None:
    data = copy.deepcopy(BASE)
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = junk
    try:
        load_catalog(write(tmp_path, data), "production", env={})
    except CatalogError as err:
        text = str(err)
        assert err.problems and "Traceback" not in text
        assert all(p.fix for p in err.problems)
