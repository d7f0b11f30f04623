"""Load platform.yaml: pick a profile, interpolate the environment, validate, and report
every problem at once with the file, the key path, the line and a fix. No Dagster imports."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mlops_assets.catalog.schema import Catalog

DEFAULT_CATALOG = Path(__file__).with_name("platform.yaml")
CATALOG_ENV = "MLOPS_CATALOG"
PROFILE_ENV = "MLOPS_PROFILE"
DEFAULT_PROFILE = "sandbox"
SANDBOX_HOME_ENV = "MLOPS_SANDBOX_HOME"
DEFAULT_SANDBOX_HOME = "/var/lib/mlops-assets/sandbox"

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    fix: str
    line: int | None = None

    def render(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        key = self.path or "(top level)"
        return f"  - {key} ({where}): {self.message}\n    fix: {self.fix}"


@dataclass
class CatalogError(Exception):
    """Every problem with a catalog file, in one message; never a traceback for the user."""

    file: str
    profile: str | None
    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{self.file}: {n} problem{'s' if n != 1 else ''}"
        if self.profile:
            head += f" (profile {self.profile!r})"
        return "\n".join([head + ":", *(p.render(self.file) for p in self.problems)])


_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LazyLines(dict[KeyPath, int]):
    """Key path -> line, composed only when an error needs it: a valid catalog loads
    without a second parse."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text: str | None = text

    def _fill(self) -> None:
        if self._text is not None:
            node = yaml.compose(self._text, Loader=_FAST_LOADER)
            self._text = None
            if node is not None:
                self.update(_line_index(node))

    def get(self, key: KeyPath, default: int | None = None) -> int | None:  # type: ignore[override]
        self._fill()
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._fill()
        return super().__contains__(key)

    def __getitem__(self, key: KeyPath) -> int:
        self._fill()
        return super().__getitem__(key)


@dataclass(frozen=True)
class LoadedCatalog:
    """The validated catalog and where it came from, so that reports name the file and the
    profile that was applied; `profiles`: every profile the file offers."""

    catalog: Catalog
    profile: str
    path: Path
    profiles: tuple[str, ...]


def _line_index(
    node: yaml.Node, path: KeyPath = (), out: dict[KeyPath, int] | None = None
) -> dict[KeyPath, int]:
    """Map every key path to its 1-based line, so errors can point into the file."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[(*path, key)] = key_node.start_mark.line + 1
            _line_index(value_node, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, (*path, i), out)
    return out


def _merge(base: Any, override: Any) -> Any:
    """Profiles override mappings key by key; lists and scalars are replaced whole."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base.get(key), value) if key in base else value
        return merged
    return override


def _interpolate(
    value: Any, env: Mapping[str, str], path: KeyPath, problems: list[tuple[KeyPath, str, str]]
) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, env, (*path, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, (*path, i), problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        problems.append((path, f"environment variable {name} is not set", f"export {name}=<value>"))
        return match.group(0)

    return _VAR.sub(repl, value)


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _allowed_fields(model: type[BaseModel], loc: KeyPath) -> list[str]:
    """The field names valid at loc's parent, to suggest the key a typo meant."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", {})
        info = fields.get(part)
        if info is None:
            current = None
            continue
        current = _model_of(info.annotation)
    return sorted(getattr(current, "model_fields", {}) or {})


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _fix_for(err: Mapping[str, Any], loc: KeyPath) -> str:
    kind = err["type"]
    if kind == "missing":
        return f"add the key '{loc[-1]}'" if loc else "add the missing key"
    if kind == "extra_forbidden":
        allowed = _allowed_fields(Catalog, loc)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"{hint}remove '{loc[-1]}' or use one of: {', '.join(allowed) or 'none'}"
    if kind.startswith(("int_", "float_")) or kind in {"greater_than", "less_than_equal"}:
        return "use a number in the allowed range"
    if kind == "string_pattern_mismatch":
        return f"match the pattern {err.get('ctx', {}).get('pattern', '')}"
    if kind in {"literal_error", "union_tag_invalid", "enum"}:
        expected = err.get("ctx", {}).get("expected") or err.get("ctx", {}).get("expected_tags")
        return f"use one of: {expected}" if expected else "use an allowed value"
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return "use a mapping (key: value lines) here"
    if kind == "list_type":
        return "use a list ('- item' lines) here"
    if kind in {"too_short", "string_too_short"}:
        return "give at least one entry"
    if kind == "value_error":
        return "correct the value as the message says"
    return "correct the value to match the schema (see docs/catalog.md)"


def _read(path: Path, profile: str | None) -> tuple[dict[str, Any], _LazyLines]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(
            str(path),
            profile,
            [Problem("", "file not found", f"check the path or unset {CATALOG_ENV}")],
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(
            str(path), profile, [Problem("", f"cannot read: {exc}", "fix permissions or encoding")]
        ) from None
    try:
        data = yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        msg = str(getattr(exc, "problem", None) or exc).strip()
        raise CatalogError(
            str(path), profile, [Problem("", f"not valid YAML: {msg}", "fix the YAML syntax", line)]
        ) from None
    if not isinstance(data, dict):
        raise CatalogError(
            str(path),
            profile,
            [
                Problem(
                    "",
                    "the file must be a mapping with keys version, hpc, cloud, ...",
                    "start from the shipped platform.yaml",
                )
            ],
        )
    return data, _LazyLines(text)


def profile_names(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """The profiles a catalog file defines, for `catalog validate` to check each of them."""
    file = resolve_path(path, env)
    data, lines = _read(file, None)
    raw = data.get("profiles") or {}
    if not isinstance(raw, dict):
        raise CatalogError(
            str(file),
            None,
            [
                Problem(
                    "profiles",
                    "must be a mapping of profile name to overrides",
                    "use 'profiles: {sandbox: {...}}'",
                    lines.get(("profiles",)),
                )
            ],
        )
    return tuple(sorted(raw))


def resolve_path(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Path:
    env = os.environ if env is None else env
    chosen = path or env.get(CATALOG_ENV) or DEFAULT_CATALOG
    return Path(chosen).expanduser()


def resolve_profile(profile: str | None = None, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return profile or env.get(PROFILE_ENV) or DEFAULT_PROFILE


def load_catalog(
    path: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    env: Mapping[str, str] | None = None,
) -> LoadedCatalog:
    """The catalog for one profile. Raises CatalogError listing every problem."""
    env = dict(os.environ if env is None else env)
    env.setdefault(SANDBOX_HOME_ENV, DEFAULT_SANDBOX_HOME)
    file = resolve_path(path, env)
    chosen = resolve_profile(profile, env)
    data, lines = _read(file, chosen)

    raw_profiles = data.pop("profiles", {}) or {}
    if not isinstance(raw_profiles, dict):
        raise CatalogError(
            str(file),
            chosen,
            [
                Problem(
                    "profiles",
                    "must be a mapping of profile name to overrides",
                    "use 'profiles: {sandbox: {...}}'",
                    lines.get(("profiles",)),
                )
            ],
        )
    names = tuple(sorted(raw_profiles))
    if chosen not in raw_profiles:
        close = difflib.get_close_matches(chosen, names, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise CatalogError(
            str(file),
            chosen,
            [
                Problem(
                    "profiles",
                    f"unknown profile {chosen!r}",
                    f"{hint}use one of: {', '.join(names) or '(none defined)'}",
                    lines.get(("profiles",)),
                )
            ],
        )
    override = raw_profiles[chosen] or {}
    if not isinstance(override, dict):
        raise CatalogError(
            str(file),
            chosen,
            [
                Problem(
                    f"profiles.{chosen}",
                    "must be a mapping of overrides",
                    "use key: value lines",
                    lines.get(("profiles", chosen)),
                )
            ],
        )
    merged = _merge(data, override)

    def line_of(loc: KeyPath) -> int | None:
        # The line of the text the value came from: the profile's override when the profile
        # set or replaced it, else the base section (a typo in the base is reported there,
        # not at the profile block that merely overrides a sibling key).
        prefix = ("profiles", chosen) if _from_override(data, override, loc) else ()
        probe = loc
        while True:
            if (*prefix, *probe) in lines:
                return lines[(*prefix, *probe)]
            if not probe:
                return None
            probe = probe[:-1]

    env_problems: list[tuple[KeyPath, str, str]] = []
    resolved = _interpolate(merged, env, (), env_problems)
    problems = [Problem(_dotted(p), m, f, line_of(p)) for p, m, f in env_problems]

    try:
        catalog = Catalog.model_validate(resolved)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _strip_union_tags(tuple(err["loc"]))
            msg = err["msg"]
            if err["type"] not in {"missing", "extra_forbidden"} and "input" in err:
                shown = err["input"]
                if not isinstance(shown, (dict, list)):
                    msg += f" (got {shown!r})"
            problems.append(Problem(_dotted(loc), msg, _fix_for(err, loc), line_of(loc)))
        raise CatalogError(str(file), chosen, problems) from None
    if problems:
        raise CatalogError(str(file), chosen, problems)
    return LoadedCatalog(catalog=catalog, profile=chosen, path=file, profiles=names)


def _strip_union_tags(loc: KeyPath) -> KeyPath:
    """pydantic puts the union member's tag/class into loc; users never wrote those keys."""
    tags = {"torchvision", "huggingface", "PullSource", "BuildSource"}
    return tuple(p for p in loc if not (isinstance(p, str) and p in tags))


def _from_override(base: Any, override: Any, loc: KeyPath) -> bool:
    """Whether the merged value at loc is the profile's: walking down loc, the override
    holds the key and either replaces the base's value whole (a scalar, a list, a key the
    base lacks) or is the key itself. Mappings present in both merge key by key, so the
    walk goes on below them."""
    for i in range(1, len(loc) + 1):
        probe = loc[:i]
        if not _has_path(override, probe):
            return False
        if i == len(loc) or not _has_path(base, probe):
            return True
        if not (isinstance(_at(override, probe), dict) and isinstance(_at(base, probe), dict)):
            return True
    return False


def _at(data: Any, loc: KeyPath) -> Any:
    for part in loc:
        data = data[part]
    return data


def _has_path(data: Any, loc: KeyPath) -> bool:
    for part in loc:
        if isinstance(part, int):
            if not (isinstance(data, list) and 0 <= part < len(data)):
                return False
            data = data[part]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return False
    return True


_SECRET_KEY = re.compile(r"(password|secret|token|passwd|private)", re.I)
_URL_CREDS = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^@/\s]+)@", re.I
)


def mask_secrets(value: Any, key: str = "") -> Any:
    """For `catalog show`: the catalog holds env var names for secrets, but a user may still
    paste a credential into a URL or a key called password."""
    if isinstance(value, dict):
        return {k: mask_secrets(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, key) for v in value]
    if isinstance(value, str):
        if _SECRET_KEY.search(key) and key != "env":
            return "****"
        return _URL_CREDS.sub(lambda m: f"{m['scheme']}{m['user']}:****@", value)
    return value
