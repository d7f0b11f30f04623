"""Grafana STAND-IN for the mlops_assets sandbox. This is NOT Grafana.

No Grafana binary can be had on the sandbox machines (not from Debian, PyPI or npm), so
this small server answers the few Grafana HTTP API calls the project makes, in Grafana
11's shapes:

- ``GET /api/health``: no auth; ``{"commit": ..., "database": "ok", "version": "11.3.1"}``
  indented as Grafana does; 503 with ``"database": "failing"`` when the database is down.
- ``GET /api/search`` (``query``, ``type``, ``tag``, ``dashboardUIDs``, ``folderUIDs``),
  ``GET /api/dashboards/uid/{uid}``, ``POST /api/dashboards/db``,
  ``GET /api/datasources``, ``GET /api/datasources/uid/{uid}``, ``GET /api/org``: these
  need ``Authorization: Bearer <service-account token>`` or basic auth ``admin:<password>``;
  otherwise 401 in Grafana's error shape.

Every response carries ``X-Mlops-Standin: grafana``. Admin API (loopback, no auth)::

    GET  /_standin/                 {"standin": "grafana", "scenarios": [...], "active": [...]}
    POST /_standin/scenario         {"name": "database_failing"}
    POST /_standin/reset

Run: ``python grafana.py --port 3001 --token-file F [--password-file F]``.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import hashlib
import hmac
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

STANDIN = "grafana"
VERSION = "11.3.1"
COMMIT = "9e1a5f3ce1"  # stand-in value, 10 hex like Grafana's short build commit
SCENARIOS = ["database_failing"]

DATASOURCES = [
    {
        "id": 1,
        "uid": "prometheus",
        "orgId": 1,
        "name": "Prometheus",
        "type": "prometheus",
        "typeName": "Prometheus",
        "typeLogoUrl": "public/app/plugins/datasource/prometheus/img/prometheus_logo.svg",
        "access": "proxy",
        "url": "http://kube-prometheus-stack-prometheus.monitoring:9090/",
        "user": "",
        "database": "",
        "basicAuth": False,
        "isDefault": True,
        "jsonData": {"httpMethod": "POST", "timeInterval": "30s"},
        "readOnly": True,
    },
]


def _dashboard(uid: str, title: str, tags: list[str], panels: list[str], folder: str) -> dict:
    return {
        "dashboard": {
            "id": None,
            "uid": uid,
            "title": title,
            "tags": tags,
            "timezone": "browser",
            "schemaVersion": 39,
            "version": 1,
            "editable": True,
            "panels": [
                {
                    "id": i + 1,
                    "type": "timeseries",
                    "title": t,
                    "datasource": {"type": "prometheus", "uid": "prometheus"},
                    "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                }
                for i, t in enumerate(panels)
            ],
        },
        "folder": folder,
    }


SEED_DASHBOARDS = [
    _dashboard(
        "mlops-platform",
        "MLOps Platform Overview",
        ["mlops", "platform"],
        ["GPU utilization", "SLURM jobs", "KServe requests", "MLflow runs"],
        "MLOps",
    ),
    _dashboard(
        "dcgm-exporter",
        "NVIDIA DCGM Exporter Dashboard",
        ["gpu", "nvidia"],
        ["GPU Temperature", "GPU Power Usage", "GPU Utilization", "Framebuffer Used"],
        "GPU",
    ),
    _dashboard(
        "kserve-inference",
        "KServe Inference",
        ["kserve", "serving"],
        ["Request rate (kserve_model_request_total)", "P95 latency"],
        "MLOps",
    ),
]
FOLDERS = {"MLOps": ("mlops-folder", 1), "GPU": ("gpu-folder", 2)}


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


class State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.database_ok = True
        self.active: list[str] = []
        self.dashboards: dict[str, dict] = {}
        self.next_id = 1
        for d in SEED_DASHBOARDS:
            self.save(copy.deepcopy(d["dashboard"]), d["folder"], created="2025-01-15T09:40:00Z")

    def save(self, dash: dict, folder: str = "General", created: str = "") -> dict:
        uid = dash.get("uid") or hashlib.sha1(dash["title"].encode()).hexdigest()[:14]
        old = self.dashboards.get(uid)
        dash["uid"] = uid
        dash["id"] = old["dashboard"]["id"] if old else self.next_id
        if not old:
            self.next_id += 1
        dash["version"] = (old["dashboard"]["version"] + 1) if old else 1
        self.dashboards[uid] = {
            "dashboard": dash,
            "folder": folder,
            "created": created or (old or {}).get("created", ""),
        }
        return self.dashboards[uid]

    def apply(self, name: str) -> None:
        if name == "database_failing":
            self.database_ok = False
        else:
            raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        self.active.append(name)


class Handler(BaseHTTPRequestHandler):
    server_version = "mlops-standin-grafana/1.0 (stand-in, not Grafana)"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version

    protocol_version = "HTTP/1.1"
    state: State
    token: str | None = None
    password: str | None = None

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.log_date_time_string()} grafana {format % args}\n")

    def _send(self, code: int, obj: Any, indent: bool = False) -> None:
        body = (json.dumps(obj, indent=2) if indent else json.dumps(obj)).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "deny")
        self.send_header("X-Xss-Protection", "1; mode=block")
        self.send_header("X-Mlops-Standin", STANDIN)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _err(self, code: int, message: str, message_id: str = "") -> None:
        self._send(
            code,
            {
                "extra": None,
                "message": message,
                "messageId": message_id,
                "statusCode": code,
                "traceID": "",
            },
        )

    def _body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else None

    def _authorized(self) -> bool:
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Bearer ") and self.token:
            return hmac.compare_digest(auth[7:].strip(), self.token)
        if auth.startswith("Basic ") and self.password:
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return False
            return user == "admin" and hmac.compare_digest(pw, self.password)
        return False

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        q = parse_qs(url.query)
        st = self.state
        try:
            if path.startswith("/_standin"):
                return self._admin(path)
            if path == "/api/health":
                data = {
                    "commit": COMMIT,
                    "database": "ok" if st.database_ok else "failing",
                    "version": VERSION,
                }
                return self._send(200 if st.database_ok else 503, data, indent=True)
            if path in ("/", "/login"):
                return self._send(200, {"standin": STANDIN, "note": "Grafana stand-in: no UI"})
            if not path.startswith("/api/"):
                return self._err(404, "Not found")
            if not self._authorized():
                if (self.headers.get("Authorization") or "").startswith("Bearer "):
                    return self._err(401, "Invalid API key", "api-key.invalid")
                return self._err(401, "Unauthorized", "auth.unauthorized")
            if not st.database_ok:
                return self._err(
                    500, "Failed to query database: database is locked", "db.query-failed"
                )
            with st.lock:
                return self._api(path, q)
        except (ValueError, KeyError, TypeError) as e:
            return self._err(400, f"bad request: {e}")

    def _admin(self, path: str) -> None:
        st = self.state
        if path in ("/_standin", "/_standin/health") and self.command == "GET":
            return self._send(
                200,
                {
                    "standin": STANDIN,
                    "pid": os.getpid(),
                    "scenarios": SCENARIOS,
                    "active": st.active,
                    "version": VERSION,
                },
            )
        if path == "/_standin/reset" and self.command == "POST":
            self._body()
            st.reset()
            return self._send(200, {"standin": STANDIN, "active": st.active})
        if path == "/_standin/scenario" and self.command == "POST":
            body = self._body() or {}
            try:
                st.apply(str(body.get("name")))
            except ValueError as e:
                return self._err(400, str(e))
            return self._send(200, {"standin": STANDIN, "active": st.active})
        return self._err(404, f"no stand-in admin endpoint {self.command} {path}")

    def _search_hit(self, d: dict) -> dict:
        dash = d["dashboard"]
        folder_uid, folder_id = FOLDERS.get(d["folder"], ("", 0))
        hit = {
            "id": dash["id"],
            "uid": dash["uid"],
            "orgId": 1,
            "title": dash["title"],
            "uri": f"db/{_slug(dash['title'])}",
            "url": f"/d/{dash['uid']}/{_slug(dash['title'])}",
            "slug": "",
            "type": "dash-db",
            "tags": dash.get("tags", []),
            "isStarred": False,
            "sortMeta": 0,
        }
        if folder_uid:
            hit.update(
                folderId=folder_id,
                folderUid=folder_uid,
                folderTitle=d["folder"],
                folderUrl=f"/dashboards/f/{folder_uid}/{_slug(d['folder'])}",
            )
        return hit

    def _api(self, path: str, q: dict[str, list[str]]) -> None:
        st = self.state
        if path == "/api/search" and self.command == "GET":
            query = (q.get("query") or [""])[-1].lower()
            types = q.get("type") or []
            tags = set(q.get("tag") or [])
            uids = set(q.get("dashboardUIDs") or [])
            folders = set(q.get("folderUIDs") or [])
            hits: list[dict] = []
            if not types or "dash-folder" in types:
                for title, (fuid, fid) in sorted(FOLDERS.items()):
                    if query in title.lower() and not tags and not uids:
                        hits.append(
                            {
                                "id": fid,
                                "uid": fuid,
                                "orgId": 1,
                                "title": title,
                                "uri": f"db/{_slug(title)}",
                                "url": f"/dashboards/f/{fuid}/{_slug(title)}",
                                "slug": "",
                                "type": "dash-folder",
                                "tags": [],
                                "isStarred": False,
                                "sortMeta": 0,
                            }
                        )
            if not types or "dash-db" in types:
                for d in sorted(st.dashboards.values(), key=lambda d: d["dashboard"]["title"]):
                    dash = d["dashboard"]
                    if query not in dash["title"].lower():
                        continue
                    if tags and not tags <= set(dash.get("tags", [])):
                        continue
                    if uids and dash["uid"] not in uids:
                        continue
                    if folders and FOLDERS.get(d["folder"], ("",))[0] not in folders:
                        continue
                    hits.append(self._search_hit(d))
            limit = int((q.get("limit") or ["1000"])[-1])
            return self._send(200, hits[:limit])
        m = re.fullmatch(r"/api/dashboards/uid/([^/]+)", path)
        if m and self.command == "GET":
            d = st.dashboards.get(m.group(1))
            if d is None:
                return self._err(404, "Dashboard not found", "dashboards.notFound")
            dash = d["dashboard"]
            folder_uid, folder_id = FOLDERS.get(d["folder"], ("", 0))
            return self._send(
                200,
                {
                    "dashboard": dash,
                    "meta": {
                        "type": "db",
                        "canSave": True,
                        "canEdit": True,
                        "canAdmin": True,
                        "canStar": True,
                        "canDelete": True,
                        "slug": _slug(dash["title"]),
                        "url": f"/d/{dash['uid']}/{_slug(dash['title'])}",
                        "expires": "0001-01-01T00:00:00Z",
                        "created": d["created"],
                        "updated": d["created"],
                        "updatedBy": "admin",
                        "createdBy": "admin",
                        "version": dash["version"],
                        "hasAcl": False,
                        "isFolder": False,
                        "folderId": folder_id,
                        "folderUid": folder_uid,
                        "folderTitle": d["folder"] if folder_uid else "General",
                        "provisioned": False,
                        "provisionedExternalId": "",
                    },
                },
            )
        if path == "/api/dashboards/db" and self.command == "POST":
            body = self._body() or {}
            dash = body.get("dashboard")
            if not isinstance(dash, dict) or not dash.get("title"):
                return self._err(400, "Dashboard title cannot be empty", "dashboards.titleEmpty")
            folder = next(
                (t for t, (fuid, _) in FOLDERS.items() if fuid == body.get("folderUid")), "General"
            )
            saved = st.save(copy.deepcopy(dash), folder)["dashboard"]
            return self._send(
                200,
                {
                    "id": saved["id"],
                    "uid": saved["uid"],
                    "url": f"/d/{saved['uid']}/{_slug(saved['title'])}",
                    "status": "success",
                    "version": saved["version"],
                    "slug": _slug(saved["title"]),
                },
            )
        if path == "/api/datasources" and self.command == "GET":
            return self._send(200, DATASOURCES)
        m = re.fullmatch(r"/api/datasources/uid/([^/]+)", path)
        if m and self.command == "GET":
            ds = next((d for d in DATASOURCES if d["uid"] == m.group(1)), None)
            if ds is None:
                return self._err(404, "Data source not found", "datasources.notFound")
            return self._send(200, ds)
        if path == "/api/org" and self.command == "GET":
            return self._send(
                200,
                {
                    "id": 1,
                    "name": "Main Org.",
                    "address": {
                        "address1": "",
                        "address2": "",
                        "city": "",
                        "zipCode": "",
                        "state": "",
                        "country": "",
                    },
                },
            )
        return self._err(404, "Not found")


def make_server(
    host: str,
    port: int,
    *,
    token: str | None,
    password: str | None = None,
    scenarios: list[str] | None = None,
) -> ThreadingHTTPServer:
    state = State()
    for s in scenarios or []:
        state.apply(s)
    handler = type(
        "BoundHandler", (Handler,), {"state": state, "token": token, "password": password}
    )
    srv = ThreadingHTTPServer((host, port), handler)
    srv.daemon_threads = True
    return srv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=3001)
    ap.add_argument("--token-file", type=Path, help="service-account token (Bearer)")
    ap.add_argument("--password-file", type=Path, help="password of the basic-auth user admin")
    ap.add_argument("--scenario", action="append", default=[])
    args = ap.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("the stand-in binds loopback only")
    token = args.token_file.read_text().strip() if args.token_file else None
    password = args.password_file.read_text().strip() if args.password_file else None
    srv = make_server(args.host, args.port, token=token, password=password, scenarios=args.scenario)
    print(f"grafana STAND-IN (not Grafana) {VERSION} on http://{args.host}:{args.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        srv.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
