"""A small HTTP client with hard timeouts, for service probes. stdlib only: a check on a
dead service fails within its timeout and never hangs a run."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class HttpAnswer:
    url: str
    status: int
    body: bytes
    headers: Mapping[str, str]
    elapsed_s: float

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class HttpUnreachable(Exception):
    """No HTTP answer at all: refused, timed out, DNS failure."""


def request(
    url: str,
    *,
    method: str = "GET",
    timeout_s: float = 10,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> HttpAnswer:
    """Any HTTP status is an answer; only no answer raises HttpUnreachable."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an http(s) URL: {url!r}")
    sent = dict(headers or {})
    req = urllib.request.Request(url, data=body, method=method, headers=sent)  # noqa: S310
    start = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310
            data = resp.read(MAX_BODY)
            return HttpAnswer(url, resp.status, data, dict(resp.headers), time.monotonic() - start)
    except urllib.error.HTTPError as exc:
        data = exc.read(MAX_BODY) if exc.fp else b""
        return HttpAnswer(url, exc.code, data, dict(exc.headers or {}), time.monotonic() - start)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HttpUnreachable(
            f"{method} {url}: no answer within {timeout_s:g}s ({reason})"
        ) from None
