"""Expand and compress SLURM hostlist expressions.

SLURM prints node sets compressed (``gpu[01-04,07]``, ``rack[1-2]-gpu[01-02]``) in sinfo,
squeue, sacct and scontrol. Checks need the individual names to compare a partition's nodes
with the inventory, and need to print sets back the way operators read them.

Rules, as SLURM applies them:

* top-level commas separate host expressions; commas inside ``[...]`` separate ranges;
* a range ``lo-hi`` keeps the width of ``lo`` (``[08-10]`` gives ``08 09 10``);
* several bracket groups in one expression give their cartesian product, the last group
  varying fastest (``a[1-2]-b[3-4]`` gives ``a1-b3 a1-b4 a2-b3 a2-b4``).

Malformed input raises :class:`ValueError` naming the input: a check must never mistake a
truncated or garbled hostlist for a smaller cluster.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Iterable

__all__ = [
    "DEFAULT_MAX_HOSTS",
    "compress_hostlist",
    "expand_hostlist",
    "hostlist_count",
    "natural_key",
    "split_top_level",
]

#: Guard against expressions such as ``n[0-999999999]`` exhausting memory. SLURM's own
#: hostlist code caps ranges at 64k hosts; real clusters stay far below this.
DEFAULT_MAX_HOSTS = 1_000_000

_DIGITS = re.compile(r"\d+")
_RANGE_ITEM = re.compile(r"^(\d+)(?:-(\d+))?$")
_FORBIDDEN_LITERAL = re.compile(r"[\s\[\],]")


def split_top_level(text: str, opener: str, closer: str, *, nested: bool, what: str) -> list[str]:
    """Split on the commas outside `opener`...`closer` (hostlist brackets, GRES parentheses),
    checking their balance; `nested=False` refuses a bracket inside another (a hostlist's).
    `what` names the text in the ValueError."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == opener:
            if depth and not nested:
                raise ValueError(f"nested {opener!r} in {what}")
            depth += 1
        elif ch == closer:
            if not depth:
                raise ValueError(f"unbalanced {closer!r} in {what}")
            depth -= 1
        elif ch == "," and not depth:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"unclosed {opener!r} in {what}")
    parts.append(text[start:])
    return parts


def _split_top_level(expr: str) -> list[str]:
    return split_top_level(expr, "[", "]", nested=False, what=f"hostlist {expr!r}")


def _parse_ranges(body: str, whole: str) -> list[str]:
    """Expand one bracket body such as ``01-04,07`` into its strings."""
    if not body:
        raise ValueError(f"empty [] in hostlist {whole!r}")
    out: list[str] = []
    for item in body.split(","):
        m = _RANGE_ITEM.match(item)
        if not m:
            raise ValueError(f"bad range {item!r} in hostlist {whole!r}")
        lo_s, hi_s = m.group(1), m.group(2)
        if hi_s is None:
            out.append(lo_s)
            continue
        lo, hi = int(lo_s), int(hi_s)
        if hi < lo:
            raise ValueError(f"descending range {item!r} in hostlist {whole!r}")
        if hi - lo >= DEFAULT_MAX_HOSTS:
            raise ValueError(f"range {item!r} too large in hostlist {whole!r}")
        width = len(lo_s)
        out.extend(f"{n:0{width}d}" for n in range(lo, hi + 1))
    return out


def _tokenize(host_expr: str, whole: str) -> list[list[str]]:
    """Turn ``a[1-2]-b[3-4]`` into choices: ``[["a"], ["1","2"], ["-b"], ["3","4"]]``."""
    if not host_expr:
        raise ValueError(f"empty host name in hostlist {whole!r}")
    choices: list[list[str]] = []
    pos = 0
    while pos < len(host_expr):
        open_at = host_expr.find("[", pos)
        literal = host_expr[pos:] if open_at < 0 else host_expr[pos:open_at]
        if literal:
            if _FORBIDDEN_LITERAL.search(literal):
                raise ValueError(f"bad character in host {literal!r} of hostlist {whole!r}")
            choices.append([literal])
        if open_at < 0:
            break
        close_at = host_expr.find("]", open_at)
        # _split_top_level already checked balance, so close_at exists.
        choices.append(_parse_ranges(host_expr[open_at + 1 : close_at], whole))
        pos = close_at + 1
    return choices


def hostlist_count(expr: str) -> int:
    """Count hosts without expanding (cheap for huge ranges); validates like expand."""
    text = expr.strip()
    if not text:
        return 0
    total = 0
    for part in _split_top_level(text):
        n = 1
        for choice in _tokenize(part, text):
            n *= len(choice)
        total += n
    return total


def expand_hostlist(expr: str, *, max_hosts: int = DEFAULT_MAX_HOSTS) -> list[str]:
    """Expand a SLURM hostlist into names, in SLURM's order, duplicates kept.

    An empty or all-whitespace string is the empty list (sinfo prints nothing for an empty
    partition). ``max_hosts`` bounds the result so hostile input cannot exhaust memory.
    """
    if not isinstance(expr, str):
        raise ValueError(f"hostlist must be a string, got {type(expr).__name__}")
    text = expr.strip()
    if not text:
        return []
    parts = _split_top_level(text)
    tokenized = [_tokenize(p, text) for p in parts]
    total = 0
    for choices in tokenized:
        n = 1
        for c in choices:
            n *= len(c)
        total += n
        if total > max_hosts:
            raise ValueError(f"hostlist {text!r} expands to more than {max_hosts} hosts")
    hosts: list[str] = []
    for choices in tokenized:
        hosts.extend("".join(combo) for combo in itertools.product(*choices))
    return hosts


def natural_key(name: str) -> tuple[tuple[int, str, int], ...]:
    """Sort key that orders ``node2`` before ``node10`` and ``node1`` before ``node01``."""
    key: list[tuple[int, str, int]] = []
    for i, piece in enumerate(re.split(r"(\d+)", name)):
        if i % 2:
            key.append((1, "", int(piece)))
            key.append((1, "", len(piece)))
        else:
            key.append((0, piece, 0))
    return tuple(key)


def _ranges_body(numbers: list[str]) -> str:
    """Compress digit strings of one (head, tail) group into a bracket body.

    A run ``lo..hi`` is only written as a range when formatting every member with the
    width of ``lo`` reproduces it exactly, so zero padding survives the round trip.
    """
    ordered = sorted(set(numbers), key=lambda s: (int(s), len(s)))
    pool = set(ordered)
    runs: list[tuple[str, str]] = []
    for lo in ordered:
        if lo not in pool:
            continue
        pool.discard(lo)
        width = len(lo)
        hi = lo
        nxt = f"{int(hi) + 1:0{width}d}"
        while nxt in pool:
            pool.discard(nxt)
            hi = nxt
            nxt = f"{int(hi) + 1:0{width}d}"
        runs.append((lo, hi))
    return ",".join(lo if lo == hi else f"{lo}-{hi}" for lo, hi in runs)


def _first_host(expr: str) -> str:
    """First name an expression expands to, without expanding the rest."""
    return "".join(choice[0] for choice in _tokenize(expr, expr))


def _compress_names(names: set[str]) -> list[str]:
    """Compress plain names into expressions whose union expands to exactly ``names``."""
    literals: list[str] = []
    # (head, tail) -> digit strings in the last numeric field
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name in names:
        matches = list(_DIGITS.finditer(name))
        if not matches:
            literals.append(name)
            continue
        m = matches[-1]
        groups[(name[: m.start()], name[m.end() :])].append(m.group(0))

    # Second dimension: heads that share the same range body and tail are compressed
    # recursively, giving e.g. rack[1-2]-gpu[01-02] instead of two expressions.
    by_body: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (head, tail), numbers in groups.items():
        body = _ranges_body(numbers)
        by_body[(body, tail)].add(head)

    out = list(literals)
    for (body, tail), heads in by_body.items():
        field = body if ("," not in body and "-" not in body) else f"[{body}]"
        for head_expr in _compress_names(heads):
            out.append(f"{head_expr}{field}{tail}")
    return out


def compress_hostlist(hosts: Iterable[str]) -> str:
    """Compress host names into one SLURM hostlist, like ``scontrol show hostlist``.

    Duplicates are dropped and the result is in natural order, so equal sets give equal
    strings. Names that SLURM could not represent (containing ``[``, ``]``, ``,`` or
    whitespace, or empty) raise :class:`ValueError`.
    """
    if isinstance(hosts, str):
        raise ValueError(f"compress_hostlist wants an iterable of names, got string {hosts!r}")
    names: set[str] = set()
    for h in hosts:
        if not isinstance(h, str) or not h or _FORBIDDEN_LITERAL.search(h):
            raise ValueError(f"cannot put host name {h!r} in a hostlist")
        names.add(h)
    if not names:
        return ""
    exprs = _compress_names(names)
    exprs.sort(key=lambda e: natural_key(_first_host(e)))
    return ",".join(exprs)
