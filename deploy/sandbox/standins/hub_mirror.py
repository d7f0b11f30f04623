"""Hugging Face hub + torchvision download MIRROR STAND-IN. This is NOT huggingface.co.

Serves the data that ``hub_data.py`` built into ``$STATE/data/hub`` the way an air-gapped
mirror would, for ``HF_ENDPOINT=http://127.0.0.1:8088`` (huggingface_hub 2.x
``snapshot_download`` / ``hf_hub_download``, and the ``datasets`` library's file system):

- ``GET /api/{models|datasets}/{org}/{name}[/revision/{rev}]``: ``id``, ``sha``, ``siblings``
  (``?blobs=true`` adds size, blobId and lfs);
- ``GET /api/{t}/{org}/{name}/tree/{rev}[/{path}]`` (``recursive``, ``expand``);
- ``POST /api/{t}/{org}/{name}/paths-info/{rev}``; ``GET /api/{t}/{org}/{name}/refs``;
- ``HEAD``/``GET /{org}/{name}/resolve/{rev}/{path}`` and ``/datasets/{org}/{name}/resolve/...``
  with ``ETag`` (git blob id, or the sha256 for LFS files, also in ``X-Linked-Etag``),
  ``X-Repo-Commit``, ``Accept-Ranges`` and single ``Range`` requests (206) for resumed
  downloads; errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound);
- ``GET /torchvision/mnist/<file>`` and ``/torchvision/cifar10/cifar-10-python.tar.gz``
  (also flat under ``/torchvision/<file>``): a mirror for torchvision's ``mirrors``/``url``.

Revisions are ``main`` or the repo's fixed 40-hex sha. Every response carries
``X-Mlops-Standin: hub-mirror``. Admin API (loopback, no auth)::

    GET  /_standin/                 {"standin": "hub-mirror", "scenarios": [...], ...}
    POST /_standin/scenario         {"name": "offline" | "corrupt_weights"}
    POST /_standin/reset

Run: ``python hub_mirror.py --port 8088 --data $STATE/data/hub``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

STANDIN = "hub-mirror"
SCENARIOS = ["offline", "corrupt_weights"]
DEFAULT_DATA = Path(os.environ.get("MLOPS_SANDBOX_HOME", "/var/lib/mlops-assets/sandbox")) / (
    "data/hub"
)
CHUNK = 1 << 16


class HubError(Exception):
    def __init__(self, code: int, error_code: str, message: str):
        super().__init__(message)
        self.code, self.error_code, self.message = code, error_code, message


class Mirror:
    def __init__(self, data: Path):
        self.data = data
        self.manifest = json.loads((data / "manifest.json").read_text())
        self.repos: dict[tuple[str, str], dict] = {
            (r["type"], r["id"]): r for r in self.manifest["repos"].values()
        }
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.active: list[str] = []
        self.offline = False
        self.corrupt_weights = False

    def apply(self, name: str) -> None:
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        setattr(self, name, True)
        self.active.append(name)

    def repo(self, rtype: str, rid: str) -> dict:
        r = self.repos.get((rtype, rid))
        if r is None:
            raise HubError(
                404, "RepoNotFound", f"Repository not found: {rtype}s/{rid} is not in this mirror"
            )
        return r

    def resolve_rev(self, repo: dict, rev: str) -> str:
        rev = unquote(rev)
        if rev in repo["refs"]:
            return repo["refs"][rev]
        if rev.startswith("refs/heads/") and rev[11:] in repo["refs"]:
            return repo["refs"][rev[11:]]
        if rev == repo["sha"]:
            return rev
        raise HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}")

    def path(self, repo: dict, rel: str) -> Path:
        return self.data / "repos" / f"{repo['type']}s" / repo["id"] / rel


def _oid(f: dict) -> str:
    return f["sha256"] if f["lfs"] else f["git_oid"]


def _ctype(path: str) -> str:
    if path.endswith(".json"):
        return "application/json"
    if path.endswith((".md", ".txt", ".gitattributes", ".html")):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


class Handler(BaseHTTPRequestHandler):
    server_version = "mlops-standin-hub-mirror/1.0 (stand-in, not huggingface.co)"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    mirror: Mirror

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.log_date_time_string()} hub-mirror {format % args}\n")

    # ---- responses
    def _start(self, code: int, headers: dict[str, str]) -> None:
        self.send_response(code)
        self.send_header("X-Mlops-Standin", STANDIN)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def _json(self, code: int, obj: Any, extra: dict[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        self._start(
            code,
            {"Content-Type": "application/json; charset=utf-8", "Content-Length": str(len(body))}
            | (extra or {}),
        )
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, e: HubError) -> None:
        self._json(
            e.code,
            {"error": e.message},
            {"X-Error-Code": e.error_code, "X-Error-Message": e.message},
        )

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    # ---- dispatch
    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        m = self.mirror
        try:
            if path.rstrip("/") in ("/_standin", "/_standin/health") or path.startswith(
                "/_standin/"
            ):
                return self._admin(path.rstrip("/"))
            if m.offline:
                return self._json(503, {"error": "Service Unavailable (stand-in scenario offline)"})
            if path in ("", "/"):
                body = (
                    b"Hugging Face hub + torchvision mirror STAND-IN of the mlops_assets "
                    b"sandbox (not huggingface.co)\n"
                )
                self._start(
                    200,
                    {"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body))},
                )
                if self.command != "HEAD":
                    self.wfile.write(body)
                return None
            if path.startswith("/torchvision/"):
                return self._torchvision(path[len("/torchvision/") :])
            if path.startswith("/api/"):
                return self._api(path, q)
            return self._resolve(path)
        except HubError as e:
            return self._error(e)
        except (ValueError, KeyError) as e:
            return self._error(HubError(400, "BadRequest", f"bad request: {e}"))
        except (BrokenPipeError, ConnectionResetError):
            return None

    def _admin(self, path: str) -> None:
        m = self.mirror
        if path in ("/_standin", "/_standin/health") and self.command == "GET":
            return self._json(
                200,
                {
                    "standin": STANDIN,
                    "pid": os.getpid(),
                    "scenarios": SCENARIOS,
                    "active": m.active,
                    "build_id": m.manifest.get("build_id"),
                    "repos": {f"{t}s/{i}": r["sha"] for (t, i), r in sorted(m.repos.items())},
                },
            )
        if path == "/_standin/reset" and self.command == "POST":
            self._body()
            m.reset()
            return self._json(200, {"standin": STANDIN, "active": m.active})
        if path == "/_standin/scenario" and self.command == "POST":
            body = json.loads(self._body() or b"{}")
            try:
                m.apply(str(body.get("name")))
            except ValueError as e:
                return self._json(400, {"error": str(e)})
            return self._json(200, {"standin": STANDIN, "active": m.active})
        return self._json(404, {"error": f"no stand-in admin endpoint {self.command} {path}"})

    # ---- API
    def _repo_from(self, segs: list[str]) -> tuple[dict, list[str]]:
        """segs after /api: [models|datasets, org, name, ...rest]."""
        if len(segs) < 3 or segs[0] not in ("models", "datasets", "spaces"):
            raise HubError(404, "EntryNotFound", "Not Found")
        rtype = segs[0][:-1]
        return self.mirror.repo(rtype, f"{segs[1]}/{segs[2]}"), segs[3:]

    def _info(self, repo: dict, sha: str, blobs: bool) -> dict:
        siblings = []
        for p, f in sorted(repo["files"].items()):
            s: dict[str, Any] = {"rfilename": p}
            if blobs:
                s.update(size=f["size"], blobId=f["git_oid"])
                if f["lfs"]:
                    s["lfs"] = {"sha256": f["sha256"], "size": f["size"], "pointerSize": 134}
            siblings.append(s)
        rid = repo["id"]
        lm = self.mirror.manifest.get("last_modified", "2025-01-10T12:00:00.000Z")
        info: dict[str, Any] = {
            "_id": sha[:24],
            "id": rid,
            "author": rid.split("/")[0],
            "sha": sha,
            "lastModified": lm,
            "createdAt": lm,
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": ["mlops-sandbox-standin"],
            "siblings": siblings,
            "usedStorage": sum(f["size"] for f in repo["files"].values()),
        }
        if repo["type"] == "model":
            info.update(modelId=rid, library_name="transformers", pipeline_tag="text-generation")
        else:
            info["cardData"] = {"tags": ["mlops-sandbox-standin"]}
        return info

    def _entries(self, repo: dict, under: str, recursive: bool, expand: bool) -> list[dict]:
        under = under.strip("/")
        prefix = f"{under}/" if under else ""
        files = {p: f for p, f in repo["files"].items() if p.startswith(prefix)}
        if under and not files:
            if under in repo["files"]:
                files = {under: repo["files"][under]}
                prefix = ""
            else:
                raise HubError(404, "EntryNotFound", f"{under} does not exist on this revision")
        out: list[dict] = []
        dirs: set[str] = set()
        for p, f in sorted(files.items()):
            rest = p[len(prefix) :]
            parts = rest.split("/")
            for i in range(1, len(parts)):
                d = prefix + "/".join(parts[:i])
                if d not in dirs and (recursive or i == 1):
                    dirs.add(d)
            if len(parts) > 1 and not recursive:
                continue
            e: dict[str, Any] = {"type": "file", "oid": f["git_oid"], "size": f["size"], "path": p}
            if f["lfs"]:
                e["lfs"] = {"oid": f["sha256"], "size": f["size"], "pointerSize": 134}
            if expand:
                e["lastCommit"] = {
                    "id": repo["sha"],
                    "title": "mirror snapshot",
                    "date": self.mirror.manifest.get("last_modified"),
                }
            out.append(e)
        for d in sorted(dirs):
            oid = hashlib.sha1(f"tree {repo['sha']} {d}".encode()).hexdigest()
            out.append({"type": "directory", "oid": oid, "size": 0, "path": d})
        out.sort(key=lambda e: (e["path"].count("/"), e["type"] != "directory", e["path"]))
        return out

    def _api(self, path: str, q: dict[str, str]) -> None:
        segs = [unquote(s) for s in path.split("/")[2:] if s]
        repo, rest = self._repo_from(segs)
        head = {"X-Repo-Commit": repo["sha"]}
        if self.command in ("GET", "HEAD") and not rest:
            return self._json(200, self._info(repo, repo["sha"], q.get("blobs") == "true"), head)
        if self.command in ("GET", "HEAD") and rest[0] == "revision" and len(rest) >= 2:
            sha = self.mirror.resolve_rev(repo, "/".join(rest[1:]))
            return self._json(200, self._info(repo, sha, q.get("blobs") == "true"), head)
        if self.command in ("GET", "HEAD") and rest[0] == "refs":
            return self._json(
                200,
                {
                    "branches": [
                        {"name": "main", "ref": "refs/heads/main", "targetCommit": repo["sha"]}
                    ],
                    "tags": [],
                    "converts": [],
                },
            )
        if self.command in ("GET", "HEAD") and rest[0] == "tree" and len(rest) >= 2:
            self.mirror.resolve_rev(repo, rest[1])
            entries = self._entries(
                repo,
                "/".join(rest[2:]),
                q.get("recursive", "").lower() in ("true", "1"),
                q.get("expand", "").lower() in ("true", "1"),
            )
            return self._json(200, entries, head)
        if self.command == "POST" and rest[0] == "paths-info" and len(rest) >= 2:
            self.mirror.resolve_rev(repo, rest[1])
            raw = self._body()
            ctype = self.headers.get("Content-Type") or ""
            if "json" in ctype:
                paths = json.loads(raw or b"{}").get("paths", [])
            else:
                paths = parse_qs(raw.decode()).get("paths", [])
            out = []
            for p in paths:
                p = p.strip("/")
                if p in repo["files"]:
                    out += [e for e in self._entries(repo, p, False, False) if e["path"] == p]
                elif any(f.startswith(p + "/") for f in repo["files"]):
                    out += [
                        e
                        for e in self._entries(repo, "/".join(p.split("/")[:-1]), False, False)
                        if e["path"] == p
                    ]
            return self._json(200, out, head)
        raise HubError(404, "EntryNotFound", f"Not Found: {path}")

    # ---- files
    def _resolve(self, path: str) -> None:
        segs = [s for s in path.split("/") if s]
        rtype = "model"
        if segs[:1] in (["datasets"], ["models"], ["spaces"]):
            rtype = segs[0][:-1]
            segs = segs[1:]
        if len(segs) < 5 or segs[2] != "resolve":
            raise HubError(404, "EntryNotFound", f"Not Found: {path}")
        repo = self.mirror.repo(rtype, f"{segs[0]}/{segs[1]}")
        sha = self.mirror.resolve_rev(repo, segs[3])
        rel = unquote("/".join(segs[4:]))
        f = repo["files"].get(rel)
        if f is None:
            raise HubError(404, "EntryNotFound", f'{rel} does not exist on "{segs[3]}"')
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{_oid(f)}"',
            "Accept-Ranges": "bytes",
            "Content-Type": _ctype(rel),
            "Content-Disposition": f'inline; filename="{rel.split("/")[-1]}"',
        }
        if f["lfs"]:
            headers.update({"X-Linked-Etag": f'"{f["sha256"]}"', "X-Linked-Size": str(f["size"])})
        corrupt = self.mirror.corrupt_weights and rel.endswith(".safetensors")
        self._send_file(self.mirror.path(repo, rel), f["size"], headers, corrupt)

    def _torchvision(self, rel: str) -> None:
        tv = self.mirror.manifest["torchvision"]
        rel = unquote(rel).strip("/")
        for group in ("mnist", "cifar10"):
            name = rel[len(group) + 1 :] if rel.startswith(group + "/") else rel
            f = tv[group].get(name)
            if f is not None and (rel == name or rel.startswith(group + "/")):
                headers = {
                    "ETag": f'"{f["md5"]}"',
                    "Accept-Ranges": "bytes",
                    "Content-Type": "application/x-gzip",
                    "Last-Modified": "Fri, 10 Jan 2025 12:00:00 GMT",
                }
                return self._send_file(
                    self.mirror.data / "torchvision" / group / name, f["size"], headers, False
                )
        return self._json(404, {"error": f"no file {rel} in the torchvision mirror"})

    def _send_file(self, path: Path, size: int, headers: dict[str, str], corrupt: bool) -> None:
        start, end, code = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", rng)
            if not m or (not m.group(1) and not m.group(2)):
                return self._json(
                    416, {"error": "invalid range"}, {"Content-Range": f"bytes */{size}"}
                )
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                start = max(size - int(m.group(2)), 0)
            if start >= size or start > end:
                return self._json(
                    416, {"error": "range not satisfiable"}, {"Content-Range": f"bytes */{size}"}
                )
            code = 206
            headers = headers | {"Content-Range": f"bytes {start}-{end}/{size}"}
        length = end - start + 1
        self._start(code, headers | {"Content-Length": str(length)})
        if self.command == "HEAD":
            return
        with path.open("rb") as fh:
            fh.seek(start)
            left = length
            pos = start
            while left > 0:
                chunk = fh.read(min(CHUNK, left))
                if not chunk:
                    break
                if corrupt and pos + len(chunk) >= size:
                    b = bytearray(chunk)
                    b[-1] ^= 0xFF
                    chunk = bytes(b)
                self.wfile.write(chunk)
                left -= len(chunk)
                pos += len(chunk)


def make_server(
    host: str, port: int, data: Path, scenarios: list[str] | None = None
) -> ThreadingHTTPServer:
    mirror = Mirror(data)
    for s in scenarios or []:
        mirror.apply(s)
    handler = type("BoundHandler", (Handler,), {"mirror": mirror})
    srv = ThreadingHTTPServer((host, port), handler)
    srv.daemon_threads = True
    return srv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8088)
    ap.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="what `hub_data.py build` wrote (with manifest.json)",
    )
    ap.add_argument("--scenario", action="append", default=[])
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("the stand-in binds loopback only")
    if not (args.data / "manifest.json").is_file():
        ap.error(
            f"{args.data}/manifest.json is missing: run `hub_data.py build --out {args.data}` first"
        )
    srv = make_server(args.host, args.port, args.data, args.scenario)
    print(
        f"hub-mirror STAND-IN (not huggingface.co) on http://{args.host}:{args.port} "
        f"serving {args.data}",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
