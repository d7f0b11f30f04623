"""Serving a registered model (issue 19 item 3): the InferenceService manifest, the v2 inference
protocol's request and answer, and a fixed concurrent load with its statistics.

Pure rules and records, plus a thread-based load runner that calls an injected `send`; nothing
here opens a socket itself (`http_sender` takes the HTTP function, e.g.
core/transport/http.request). No Dagster import. Verdict helpers return figures: the Dagster
layer judges them against the catalog's thresholds (Ready within 300 s, P95 under 100 ms).

Percentiles are nearest-rank (the smallest sample with at least q% of the samples at or below
it), so every reported latency is one that a request really had. Throughput is completed
requests over the wall-clock span of the whole test: dividing by the summed latencies (a
known fault of the validation docs) undercounts by the concurrency.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
PROTOCOL_V2 = "v2"
MNIST_ROW = 784  # 28 x 28 pixels
MNIST_CLASSES = 10
# The model server's Prometheus series (kserve 0.21, python model server, GET /metrics on the
# HTTP port): histograms labelled model_name. `_count` of predict counts every predict call,
# failed ones included; postprocess runs only after a successful predict.
KSERVE_PREDICT_COUNT = "request_predict_seconds_count"
KSERVE_POSTPROCESS_COUNT = "request_postprocess_seconds_count"

_DNS1035 = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_QUANTITY = re.compile(r"\d+(\.\d+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")
_S3_URI = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(\S+)")


class ServingError(ValueError):
    """A spec, request or answer that breaks the rules; the message says which field."""


# ------------------------------------------------------------------ manifest


@dataclass(frozen=True)
class IsvcSpec:
    """What the catalog says about one served model; `inference_service` makes the manifest."""

    name: str
    namespace: str
    storage_uri: str  # s3://models/mnist/<version>
    model_format: str = "pytorch"
    runtime: str | None = None  # a ServingRuntime by name; None lets KServe pick by format
    min_replicas: int = 1
    max_replicas: int = 1
    cpu: str = "1"
    memory: str = "2Gi"
    cpu_limit: str | None = None  # None: same as the request
    memory_limit: str | None = None
    service_account: str | None = None  # holds the S3 secret that the storage initializer reads
    labels: Mapping[str, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """Every rule the spec breaks, in words; empty when the manifest can be made."""
        out = []
        if not _DNS1035.fullmatch(self.name):
            out.append(f"name {self.name!r} is not a DNS-1035 label (a-z, 0-9, '-', <= 63)")
        if not _DNS1123.fullmatch(self.namespace):
            out.append(f"namespace {self.namespace!r} is not a DNS-1123 label")
        if not _S3_URI.fullmatch(self.storage_uri):
            out.append(f"storage URI {self.storage_uri!r} is not s3://<bucket>/<path>")
        if not self.model_format:
            out.append("model format is empty")
        if self.min_replicas < 0 or self.max_replicas < 1:
            out.append(
                f"replicas {self.min_replicas}..{self.max_replicas}: need min >= 0, max >= 1"
            )
        elif self.min_replicas > self.max_replicas:
            out.append(f"min replicas {self.min_replicas} > max replicas {self.max_replicas}")
        for what, value in (
            ("cpu", self.cpu),
            ("memory", self.memory),
            ("cpu limit", self.cpu_limit),
            ("memory limit", self.memory_limit),
        ):
            if value is not None and not _QUANTITY.fullmatch(value):
                out.append(f"{what} {value!r} is not a Kubernetes quantity")
        if self.service_account is not None and not _DNS1123.fullmatch(self.service_account):
            out.append(f"service account {self.service_account!r} is not a DNS-1123 label")
        return out


def storage_uri(bucket: str, model: str, version: str) -> str:
    """Where a registered model version lives in the object store: s3://<bucket>/<model>/<v>."""
    parts = [bucket, model, version]
    if any(not p or "/" in p or p in (".", "..") for p in parts):
        raise ServingError(f"storage URI parts must be plain names, got {parts!r}")
    return f"s3://{bucket}/{model}/{version}"


def inference_service(spec: IsvcSpec) -> dict[str, Any]:
    """The v1beta1 InferenceService for `spec`, v2 protocol; ServingError lists what is wrong."""
    bad = spec.problems()
    if bad:
        raise ServingError(f"InferenceService {spec.name!r}: " + "; ".join(bad))
    model: dict[str, Any] = {
        "modelFormat": {"name": spec.model_format},
        "protocolVersion": PROTOCOL_V2,
        "storageUri": spec.storage_uri,
        "resources": {
            "requests": {"cpu": spec.cpu, "memory": spec.memory},
            "limits": {
                "cpu": spec.cpu_limit or spec.cpu,
                "memory": spec.memory_limit or spec.memory,
            },
        },
    }
    if spec.runtime:
        model["runtime"] = spec.runtime
    predictor: dict[str, Any] = {
        "minReplicas": spec.min_replicas,
        "maxReplicas": spec.max_replicas,
        "model": model,
    }
    if spec.service_account:
        predictor["serviceAccountName"] = spec.service_account
    metadata: dict[str, Any] = {"name": spec.name, "namespace": spec.namespace}
    if spec.labels:
        metadata["labels"] = dict(spec.labels)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


# ------------------------------------------------------------------ v2 protocol


def infer_path(model_name: str) -> str:
    """The v2 infer route of one model (KServe, Triton and MLServer share it)."""
    return f"/v2/models/{model_name}/infer"


def ready_path(model_name: str) -> str:
    return f"/v2/models/{model_name}/ready"


def mnist_request(
    rows: Sequence[Sequence[float]], *, input_name: str = "input-0", request_id: str | None = None
) -> dict[str, Any]:
    """A v2 infer request for MNIST: one FP32 input [N, 784], pixel intensities in [0, 1]."""
    if not rows:
        raise ServingError("an infer request needs at least one row")
    flat: list[float] = []
    for i, row in enumerate(rows):
        if len(row) != MNIST_ROW:
            raise ServingError(f"row {i} has {len(row)} values, not {MNIST_ROW} (28x28)")
        flat.extend(float(v) for v in row)
    return {
        "id": request_id or uuid.uuid4().hex,
        "inputs": [
            {"name": input_name, "shape": [len(rows), MNIST_ROW], "datatype": "FP32", "data": flat}
        ],
    }


def encode(request: Mapping[str, Any]) -> bytes:
    return json.dumps(request, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Tensor:
    """One v2 output: its name, shape, datatype and data, flattened row-major."""

    name: str
    shape: tuple[int, ...]
    datatype: str
    data: tuple[Any, ...]

    def rows(self) -> list[list[Any]]:
        """The data as rows of the last dimension ([N, 10] -> N lists of 10)."""
        width = self.shape[-1] if len(self.shape) > 1 else 1
        return [list(self.data[i : i + width]) for i in range(0, len(self.data), width)]


@dataclass(frozen=True)
class InferAnswer:
    model_name: str
    id: str | None
    outputs: Mapping[str, Tensor]


def _tensor(raw: Any, where: str) -> Tensor:
    if not isinstance(raw, dict):
        raise ServingError(f"{where}: not an object")
    missing = [k for k in ("name", "shape", "datatype", "data") if k not in raw]
    if missing:
        raise ServingError(f"{where}: missing {', '.join(missing)}")
    name, shape, data = raw["name"], raw["shape"], raw["data"]
    if not isinstance(name, str) or not name:
        raise ServingError(f"{where}: name is not a string")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ServingError(f"{where} ({name}): shape {shape!r} is not a list of sizes")
    if not isinstance(data, list):
        raise ServingError(f"{where} ({name}): data is not a list (binary outputs not read here)")
    flat = _flatten(data)
    if len(flat) != math.prod(shape):
        raise ServingError(f"{where} ({name}): {len(flat)} values for shape {shape}")
    return Tensor(name, tuple(shape), str(raw["datatype"]).upper(), tuple(flat))


def _flatten(data: list[Any]) -> list[Any]:
    """v2 JSON allows nested or flat data; both mean row-major order."""
    out: list[Any] = []
    for v in data:
        out.extend(_flatten(v) if isinstance(v, list) else [v])
    return out


def parse_answer(
    body: bytes | str | Mapping[str, Any], *, model_name: str | None = None
) -> InferAnswer:
    """A v2 infer answer; ServingError on an error answer, bad JSON or a malformed output."""
    if isinstance(body, (bytes, str)):
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ServingError(f"infer answer is not JSON ({exc})") from None
    else:
        doc = body
    if not isinstance(doc, dict):
        raise ServingError(f"infer answer is a {type(doc).__name__}, not an object")
    if "error" in doc:
        raise ServingError(f"model server said: {doc['error']}")
    got = doc.get("model_name")
    if not isinstance(got, str):
        raise ServingError("infer answer has no model_name")
    if model_name is not None and got != model_name:
        raise ServingError(f"infer answer is from model {got!r}, asked {model_name!r}")
    outputs = doc.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        raise ServingError("infer answer has no outputs")
    tensors = [_tensor(o, f"output {i}") for i, o in enumerate(outputs)]
    rid = doc.get("id")
    return InferAnswer(got, rid if isinstance(rid, str) else None, {t.name: t for t in tensors})


def predicted_classes(
    answer: InferAnswer, rows: int, *, output: str = "predicted_class"
) -> list[int]:
    """The class per row, checked: `rows` integers in 0..9."""
    t = answer.outputs.get(output)
    if t is None:
        raise ServingError(f"no output {output!r} (outputs: {', '.join(answer.outputs)})")
    if t.shape != (rows,):
        raise ServingError(f"output {output}: shape {list(t.shape)}, expected [{rows}]")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in t.data):
        raise ServingError(f"output {output}: not integers")
    out = [int(v) for v in t.data]
    if any(not 0 <= v < MNIST_CLASSES for v in out):
        raise ServingError(f"output {output}: class outside 0..{MNIST_CLASSES - 1}: {out}")
    return out


def accuracy(predicted: Sequence[int], labels: Sequence[int]) -> float:
    """Share of held-out samples answered right."""
    if len(predicted) != len(labels) or not labels:
        raise ServingError(f"{len(predicted)} predictions for {len(labels)} labels")
    return sum(p == y for p, y in zip(predicted, labels, strict=True)) / len(labels)


# ------------------------------------------------------------------ load statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the value at rank ceil(q/100 * n) of the sorted samples."""
    if not values:
        raise ServingError("percentile of no samples")
    if not 0 < q <= 100:
        raise ServingError(f"percentile {q} is outside (0, 100]")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class LoadStats:
    """Figures of one fixed load; the Dagster layer compares them with the catalog."""

    requests: int
    completed: int
    errors: int
    concurrency: int
    wall_s: float
    p50_ms: float | None
    p95_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    throughput_rps: float  # completed / wall_s

    def as_metadata(self) -> dict[str, float | int | None]:
        return {
            "requests": self.requests,
            "completed": self.completed,
            "errors": self.errors,
            "concurrency": self.concurrency,
            "wall_s": round(self.wall_s, 4),
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "max_ms": self.max_ms,
            "mean_ms": self.mean_ms,
            "throughput_rps": round(self.throughput_rps, 3),
        }


def load_stats(
    latencies_s: Sequence[float], errors: int, wall_s: float, concurrency: int
) -> LoadStats:
    """Statistics over the successful requests' latencies; throughput over the whole span."""
    if wall_s <= 0:
        raise ServingError(f"wall-clock span {wall_s} s: a load test takes time")
    if any(v < 0 for v in latencies_s):
        raise ServingError("negative latency")

    def ms(v: float) -> float:
        return round(v * 1000, 3)

    done = len(latencies_s)
    return LoadStats(
        requests=done + errors,
        completed=done,
        errors=errors,
        concurrency=concurrency,
        wall_s=wall_s,
        p50_ms=ms(percentile(latencies_s, 50)) if done else None,
        p95_ms=ms(percentile(latencies_s, 95)) if done else None,
        max_ms=ms(max(latencies_s)) if done else None,
        mean_ms=ms(sum(latencies_s) / done) if done else None,
        throughput_rps=done / wall_s,
    )


# ------------------------------------------------------------------ load runner


@dataclass(frozen=True)
class LoadRun:
    """What a fixed load measured: one latency per successful request, error messages (the
    first few, counted in full), and the span from the first send to the last answer."""

    latencies_s: tuple[float, ...]
    errors: int
    error_samples: tuple[str, ...]
    wall_s: float
    concurrency: int

    def stats(self) -> LoadStats:
        return load_stats(self.latencies_s, self.errors, self.wall_s, self.concurrency)


def run_load(
    send: Callable[[int], object],
    *,
    requests: int,
    concurrency: int,
    clock: Callable[[], float] = time.monotonic,
    keep_errors: int = 5,
) -> LoadRun:
    """Send `requests` requests, `concurrency` at a time, each from a worker thread that takes
    the next number until none is left. `send(i)` returns on success and raises on failure."""
    if requests < 1 or concurrency < 1:
        raise ServingError(f"requests {requests} and concurrency {concurrency} must be >= 1")
    lock = threading.Lock()
    todo = iter(range(requests))
    latencies: list[float] = []
    samples: list[str] = []
    errors = 0

    def worker() -> None:
        nonlocal errors
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            start = clock()
            try:
                send(i)
            except Exception as exc:  # every failure is a counted error
                with lock:
                    errors += 1
                    if len(samples) < keep_errors:
                        samples.append(f"request {i}: {type(exc).__name__}: {exc}"[:300])
                continue
            took = clock() - start
            with lock:
                latencies.append(took)

    workers = min(concurrency, requests)
    t0 = clock()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load") as pool:
        for f in [pool.submit(worker) for _ in range(workers)]:
            f.result()
    return LoadRun(tuple(latencies), errors, tuple(samples), clock() - t0, workers)


HttpFn = Callable[..., Any]  # core/transport/http.request's signature


def http_sender(
    http: HttpFn, url: str, body: bytes, *, model_name: str, timeout_s: float = 10
) -> Callable[[int], InferAnswer]:
    """A `send` for run_load: POST one v2 infer body; non-200 or a malformed answer raises."""

    def send(_: int) -> InferAnswer:
        answer = http(
            url,
            method="POST",
            body=body,
            timeout_s=timeout_s,
            headers={"Content-Type": "application/json"},
        )
        if answer.status != 200:
            raise ServingError(f"HTTP {answer.status}: {answer.text[:200]}")
        return parse_answer(answer.body, model_name=model_name)

    return send


# ------------------------------------------------------------------ Prometheus text


_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


def metric_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float | None:
    """The value of series `name` whose labels include `labels`, summed over matching series,
    from Prometheus text exposition; None when no series matches."""
    want = dict(labels or {})
    total: float | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or not line.startswith(name):
            continue
        m = _SAMPLE.fullmatch(line)
        if m is None or m.group(1) != name:
            continue
        got = _labels(m.group(2) or "")
        if all(got.get(k) == v for k, v in want.items()):
            try:
                value = float(m.group(3))
            except ValueError:
                raise ServingError(f"metric {name}: value {m.group(3)!r} is not a number") from None
            total = value if total is None else total + value
    return total


def _labels(raw: str) -> dict[str, str]:
    out, pos = {}, 0
    while pos < len(raw):
        m = _LABEL.match(raw, pos)
        if m is None:
            raise ServingError(f'metric labels {{{raw}}} are not name="value" pairs')
        out[m.group(1)] = m.group(2).replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        pos = m.end()
    return out


# ------------------------------------------------------------------ held-out samples


def parse_idx(data: bytes, where: str = "idx data") -> tuple[tuple[int, ...], bytes]:
    """An unsigned-byte idx document (MNIST's format, gunzipped): (shape, raw bytes).
    ServingError names `where` when it is not one, or is cut short."""
    if len(data) < 4 or data[0] or data[1] or data[2] != 0x08:
        raise ServingError(f"{where}: not an unsigned-byte idx file")
    dims = data[3]
    head = 4 + 4 * dims
    if len(data) < head:
        raise ServingError(f"{where}: idx header cut short")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    size = math.prod(shape)
    if len(data) - head < size:
        raise ServingError(f"{where}: {len(data) - head} bytes of data, the header says {size}")
    return shape, data[head : head + size]


def mnist_rows(
    images: bytes, labels: bytes, limit: int, where: str = "MNIST test set"
) -> tuple[list[list[float]], list[int]]:
    """The first `limit` test images as rows of 784 intensities in [0, 1], and their labels,
    from the two idx documents (gunzipped)."""
    ishape, pixels = parse_idx(images, f"{where} images")
    lshape, marks = parse_idx(labels, f"{where} labels")
    if len(ishape) != 3 or ishape[1] * ishape[2] != MNIST_ROW:
        raise ServingError(f"{where} images have shape {ishape}, not [N, 28, 28]")
    if lshape[0] != ishape[0]:
        raise ServingError(f"{where}: {ishape[0]} images but {lshape[0]} labels")
    n = min(limit, ishape[0])
    rows = [[b / 255.0 for b in pixels[i * MNIST_ROW : (i + 1) * MNIST_ROW]] for i in range(n)]
    return rows, list(marks[:n])


# ------------------------------------------------------------------ InferenceService status


@dataclass(frozen=True)
class IsvcState:
    """What KServe's controller says of one InferenceService: Ready, why not, and its URL."""

    ready: bool
    reason: str
    url: str | None


def isvc_state(obj: Mapping[str, Any] | None) -> IsvcState:
    """Ready from the `Ready` condition (status True), the reason from the first condition not
    True (KServe names the part: PredictorReady, IngressReady, ...), the URL from status.url."""
    if not obj:
        return IsvcState(False, "not found", None)
    status = obj.get("status") or {}
    conditions = [c for c in status.get("conditions") or [] if isinstance(c, Mapping)]
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    why = "no conditions yet (the controller has not seen it)" if not conditions else ""
    for c in conditions:
        if c.get("status") != "True":
            said = f"{c.get('reason') or ''} {c.get('message') or ''}".strip()
            why = f"{c.get('type')}: {said or 'status ' + str(c.get('status'))}"
            break
    url = status.get("url") or (status.get("address") or {}).get("url")
    return IsvcState(ready, "" if ready else why, url if isinstance(url, str) else None)
