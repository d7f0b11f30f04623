"""core.serving: the InferenceService manifest, the v2 request and answer (on what KServe 0.21
really answered, fixtures/kserve_0.21_*), load statistics and the concurrent load runner."""

from __future__ import annotations

import json
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mlops_assets.core import serving as sv

FIX = Path(__file__).parent / "fixtures"


def spec(**kw: Any) -> sv.IsvcSpec:
    base: dict[str, Any] = {
        "name": "mnist",
        "namespace": "production",
        "storage_uri": sv.storage_uri("models", "mnist", "3"),
        "runtime": "kserve-mnist",
        "min_replicas": 1,
        "max_replicas": 3,
        "cpu": "500m",
        "memory": "1Gi",
        "service_account": "s3-models",
    }
    return sv.IsvcSpec(**{**base, **kw})


# ------------------------------------------------------------------ manifest


def test_manifest_fields() -> None:
    m = sv.inference_service(spec(labels={"mlops/model": "mnist"}))
    assert m["apiVersion"] == "serving.kserve.io/v1beta1" and m["kind"] == "InferenceService"
    assert m["metadata"] == {
        "name": "mnist",
        "namespace": "production",
        "labels": {"mlops/model": "mnist"},
    }
    pred = m["spec"]["predictor"]
    assert (pred["minReplicas"], pred["maxReplicas"]) == (1, 3)
    assert pred["serviceAccountName"] == "s3-models"
    model = pred["model"]
    assert model["protocolVersion"] == "v2"
    assert model["modelFormat"] == {"name": "pytorch"}
    assert model["runtime"] == "kserve-mnist"
    assert model["storageUri"] == "s3://models/mnist/3"
    assert model["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "500m", "memory": "1Gi"},
    }
    json.dumps(m)  # plain data: kubectl apply -f - takes it as JSON


def test_manifest_optional_fields_left_out() -> None:
    m = sv.inference_service(spec(runtime=None, service_account=None, cpu_limit="2"))
    pred = m["spec"]["predictor"]
    assert "serviceAccountName" not in pred and "runtime" not in pred["model"]
    assert "labels" not in m["metadata"]
    assert pred["model"]["resources"]["limits"]["cpu"] == "2"


def test_bad_spec_names_every_problem() -> None:
    bad = spec(
        name="MNIST_model",
        namespace="prod/x",
        storage_uri="minio/s3://models/mnist",
        min_replicas=4,
        max_replicas=3,
        memory="lots",
    )
    with pytest.raises(sv.ServingError) as err:
        sv.inference_service(bad)
    msg = str(err.value)
    for part in ("DNS-1035", "namespace", "s3://<bucket>/<path>", "min replicas 4", "memory"):
        assert part in msg
    assert spec(min_replicas=0).problems() == []  # scale to zero is allowed


@pytest.mark.parametrize("parts", [("models", "", "1"), ("models", "a/b", "1"), ("m", "x", "..")])
def test_storage_uri_refuses_paths(parts: tuple[str, str, str]) -> None:
    with pytest.raises(sv.ServingError):
        sv.storage_uri(*parts)


# ------------------------------------------------------------------ v2 protocol


def test_request_round_trip_through_recorded_answer() -> None:
    req = sv.mnist_request([[0.0] * 784, [1.0] * 784], request_id="rec-1")
    (inp,) = req["inputs"]
    assert inp["shape"] == [2, 784] and inp["datatype"] == "FP32" and len(inp["data"]) == 1568
    assert json.loads(sv.encode(req)) == req
    answer = sv.parse_answer(
        (FIX / "kserve_0.21_v2_infer_answer_mnist.json").read_bytes(), model_name="mnist"
    )
    assert answer.id == "rec-1" and answer.model_name == "mnist"
    assert sv.predicted_classes(answer, 2) == [0, 3]
    probs = answer.outputs["probabilities"]
    assert probs.shape == (2, 10) and probs.datatype == "FP32"
    assert all(abs(sum(row) - 1) < 1e-5 for row in probs.rows())


def test_request_refuses_wrong_rows() -> None:
    with pytest.raises(sv.ServingError, match="row 1 has 783"):
        sv.mnist_request([[0.0] * 784, [0.0] * 783])
    with pytest.raises(sv.ServingError, match="at least one row"):
        sv.mnist_request([])


def good() -> dict[str, Any]:
    return json.loads((FIX / "kserve_0.21_v2_infer_answer_mnist.json").read_text())


def with_output(**changes: Any) -> dict[str, Any]:
    doc = good()
    doc["outputs"][0].update(changes)
    return doc


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b"[1, 2]", "not an object"),
        (
            (FIX / "kserve_0.21_v2_infer_error_no_content_type.json").read_bytes(),
            "model server said: received byte inputs",
        ),
        (json.dumps({**good(), "outputs": []}), "no outputs"),
        (json.dumps({k: v for k, v in good().items() if k != "model_name"}), "no model_name"),
        (json.dumps({**good(), "model_name": "other"}), "from model 'other'"),
        (json.dumps(with_output(data=[1])), "1 values for shape [2]"),
        (json.dumps(with_output(shape="2")), "not a list of sizes"),
        (json.dumps(with_output(data="AAAA")), "binary outputs"),
        (json.dumps({**good(), "outputs": [{"name": "x"}]}), "missing shape, datatype, data"),
    ],
)
def test_malformed_answers_say_what_is_wrong(body: bytes | str, message: str) -> None:
    with pytest.raises(sv.ServingError, match=None) as err:
        sv.parse_answer(body, model_name="mnist")
    assert message in str(err.value)


def test_nested_data_is_row_major() -> None:
    doc = good()
    flat = doc["outputs"][1]["data"]
    doc["outputs"][1]["data"] = [flat[:10], flat[10:]]
    assert sv.parse_answer(doc).outputs["probabilities"].data == tuple(flat)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data": [0, 10]}, "outside 0..9"),
        ({"data": [0.5, 1]}, "not integers"),
        ({"shape": [1, 2]}, "expected [2]"),
    ],
)
def test_predicted_classes_checked(change: dict[str, Any], message: str) -> None:
    with pytest.raises(sv.ServingError) as err:
        sv.predicted_classes(sv.parse_answer(with_output(**change)), 2)
    assert message in str(err.value)
    with pytest.raises(sv.ServingError, match="no output 'label'"):
        sv.predicted_classes(sv.parse_answer(good()), 2, output="label")


def test_accuracy() -> None:
    assert sv.accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    with pytest.raises(sv.ServingError):
        sv.accuracy([1], [1, 2])


# ------------------------------------------------------------------ statistics


def test_nearest_rank_percentiles_on_known_values() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert sv.percentile(values, 50) == 50 and sv.percentile(values, 95) == 95
    assert sv.percentile(values, 100) == 100 and sv.percentile(values, 0.5) == 1
    assert sv.percentile([3.0, 1.0, 2.0], 50) == 2  # sorts; rank ceil(1.5) = 2
    assert sv.percentile([10.0, 20.0, 30.0, 40.0], 95) == 40  # a sample, never interpolated
    for q in (0, 101):
        with pytest.raises(sv.ServingError):
            sv.percentile(values, q)


def test_throughput_is_completed_over_wall_time_not_summed_latency() -> None:
    # 100 requests of 100 ms each, 4 at a time: 25 rounds, 2.5 s of wall time
    latencies = [0.1] * 100
    stats = sv.load_stats(latencies, errors=0, wall_s=2.5, concurrency=4)
    assert stats.throughput_rps == pytest.approx(40.0)
    wrong = len(latencies) / sum(latencies)  # the validation docs' formula
    assert wrong == pytest.approx(10.0) and stats.throughput_rps == pytest.approx(4 * wrong)
    assert (stats.p50_ms, stats.p95_ms, stats.max_ms, stats.mean_ms) == (100, 100, 100, 100)


def test_errors_count_against_throughput_not_latency() -> None:
    stats = sv.load_stats([0.01, 0.02, 0.03], errors=2, wall_s=1.0, concurrency=2)
    assert (stats.requests, stats.completed, stats.errors) == (5, 3, 2)
    assert stats.throughput_rps == 3 and stats.p50_ms == 20 and stats.p95_ms == 30
    none = sv.load_stats([], errors=5, wall_s=1.0, concurrency=1)
    assert none.p95_ms is None and none.throughput_rps == 0
    assert none.as_metadata()["errors"] == 5
    with pytest.raises(sv.ServingError):
        sv.load_stats([0.1], errors=0, wall_s=0, concurrency=1)


# ------------------------------------------------------------------ load runner


def test_runner_keeps_the_concurrency_and_measures_the_whole_span() -> None:
    running, peak, lock = 0, 0, threading.Lock()

    def send(i: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        if i % 10 == 9:
            raise RuntimeError("HTTP 503")

    run = sv.run_load(send, requests=40, concurrency=4)
    assert peak == 4 and run.concurrency == 4
    assert len(run.latencies_s) == 36 and run.errors == 4
    assert run.error_samples and "RuntimeError: HTTP 503" in run.error_samples[0]
    # 10 rounds of 50 ms: about 0.5 s of wall time, not the 2 s the latencies add up to
    assert 0.45 <= run.wall_s < 1.5
    stats = run.stats()
    assert stats.throughput_rps == pytest.approx(36 / run.wall_s)
    assert stats.throughput_rps > 2 * len(run.latencies_s) / sum(run.latencies_s)


def test_runner_with_fewer_requests_than_threads() -> None:
    seen: list[int] = []
    run = sv.run_load(seen.append, requests=2, concurrency=8)
    assert sorted(seen) == [0, 1] and run.concurrency == 2 and run.errors == 0
    with pytest.raises(sv.ServingError):
        sv.run_load(seen.append, requests=0, concurrency=1)


class FakeAnswer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body

    @property
    def text(self) -> str:
        return self.body.decode()


def test_http_sender_checks_status_and_answer() -> None:
    calls: list[dict[str, Any]] = []
    answers = [
        FakeAnswer(200, (FIX / "kserve_0.21_v2_infer_answer_mnist.json").read_bytes()),
        FakeAnswer(400, b'{"error":"bad shape"}'),
        FakeAnswer(200, b"{}"),
    ]

    def http(url: str, **kw: Any) -> FakeAnswer:
        calls.append({"url": url, **kw})
        return answers[len(calls) - 1]

    send = sv.http_sender(
        http, "http://127.0.0.1:1/v2/models/mnist/infer", b"{}", model_name="mnist"
    )
    assert sv.predicted_classes(send(0), 2) == [0, 3]
    assert calls[0]["method"] == "POST"
    assert calls[0]["headers"]["Content-Type"] == "application/json"  # else KServe reads bytes
    with pytest.raises(sv.ServingError, match="HTTP 400"):
        send(1)
    with pytest.raises(sv.ServingError, match="no model_name"):
        send(2)


# ------------------------------------------------------------------ Prometheus text


def test_request_counters_from_recorded_metrics() -> None:
    text = (FIX / "kserve_0.21_metrics_after_3_infers.txt").read_text()
    mnist = {"model_name": "mnist"}
    assert sv.metric_value(text, sv.KSERVE_PREDICT_COUNT, mnist) == 3
    assert sv.metric_value(text, sv.KSERVE_POSTPROCESS_COUNT, mnist) == 3
    assert sv.metric_value(text, sv.KSERVE_PREDICT_COUNT, {"model_name": "other"}) is None
    assert sv.metric_value(text, "kserve_model_request_total") is None  # not in 0.21's server
    assert sv.metric_value(text, "python_gc_collections_total") is not None  # summed over labels


def test_metric_labels_with_escapes_and_bad_values() -> None:
    text = 'm{a="x\\"y,z",b="2"} 4\nm{a="q"} 1 1700000000000\n'
    assert sv.metric_value(text, "m", {"a": 'x"y,z'}) == 4
    assert sv.metric_value(text, "m") == 5
    with pytest.raises(sv.ServingError):
        sv.metric_value("m{a=x} 1\n", "m")
    with pytest.raises(sv.ServingError):
        sv.metric_value("m bogus\n", "m")


# ------------------------------------------------------------------ MNIST idx files


def idx(shape: tuple[int, ...], data: bytes, *, kind: int = 0x08) -> bytes:
    """An idx document as MNIST ships it (gunzipped): magic 0 0 <type> <dims>, big-endian
    32-bit sizes, then the bytes."""
    return (
        struct.pack(">BBBB", 0, 0, kind, len(shape)) + struct.pack(f">{len(shape)}I", *shape) + data
    )


def images(pixels: list[list[int]]) -> bytes:
    """One image per list of 784 unsigned bytes."""
    return idx((len(pixels), 28, 28), b"".join(bytes(p) for p in pixels))


def test_parse_idx_reads_shape_and_exactly_the_data() -> None:
    data = bytes(range(24))
    shape, raw = sv.parse_idx(idx((2, 3, 4), data) + b"trailing")
    assert shape == (2, 3, 4)
    assert raw == data  # the header's size, not what follows it
    assert sv.parse_idx(idx((5,), b"\x01\x02\x03\x04\x05")) == ((5,), b"\x01\x02\x03\x04\x05")


@pytest.mark.parametrize(
    "doc",
    [
        idx((1,), b"\x00", kind=0x0D),  # float idx, not unsigned bytes
        b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00",  # first magic byte not 0
        b"\x00\x00",  # shorter than the magic
        b"",
    ],
)
def test_parse_idx_refuses_what_is_not_unsigned_byte_idx(doc: bytes) -> None:
    with pytest.raises(sv.ServingError, match=r"^labels file: not an unsigned-byte idx file$"):
        sv.parse_idx(doc, "labels file")


def test_parse_idx_cut_header_and_cut_data_name_where() -> None:
    whole = idx((2, 28, 28), bytes(2 * 784))
    with pytest.raises(sv.ServingError, match=r"^t10k images: idx header cut short$"):
        sv.parse_idx(whole[:10], "t10k images")  # 3 sizes need 16 bytes of header
    with pytest.raises(
        sv.ServingError, match=r"^t10k images: 1000 bytes of data, the header says 1568$"
    ):
        sv.parse_idx(whole[: 16 + 1000], "t10k images")
    with pytest.raises(sv.ServingError, match=r"^idx data: "):  # the default `where`
        sv.parse_idx(whole[:-1])


def test_mnist_rows_shape_scaling_and_labels() -> None:
    first = [0] * 784
    first[0], first[1], first[783] = 255, 128, 51
    second = [255] * 784
    rows, labels = sv.mnist_rows(images([first, second]), idx((2,), b"\x07\x02"), 10)
    assert len(rows) == 2 and all(len(r) == 784 for r in rows)
    assert labels == [7, 2]
    assert rows[0][0] == 1.0 and rows[0][1] == pytest.approx(128 / 255) and rows[0][2] == 0.0
    assert rows[0][783] == pytest.approx(0.2)
    assert rows[1] == [1.0] * 784
    assert all(0.0 <= v <= 1.0 for r in rows for v in r)
    # the request built from them is what the endpoint takes
    assert sv.mnist_request(rows)["inputs"][0]["shape"] == [2, 784]


def test_mnist_rows_limit_takes_the_first() -> None:
    pix = [[i] * 784 for i in range(5)]
    rows, labels = sv.mnist_rows(images(pix), idx((5,), bytes([9, 8, 7, 6, 5])), 3)
    assert labels == [9, 8, 7]
    assert [r[0] for r in rows] == [0.0, 1 / 255, 2 / 255]
    assert sv.mnist_rows(images(pix), idx((5,), bytes(5)), 0) == ([], [])


def test_mnist_rows_count_mismatch_and_wrong_shape() -> None:
    two = images([[0] * 784, [0] * 784])
    with pytest.raises(sv.ServingError, match=r"^MNIST test set: 2 images but 3 labels$"):
        sv.mnist_rows(two, idx((3,), bytes(3)), 10)
    with pytest.raises(
        sv.ServingError, match=r"images have shape \(2, 14, 14\), not \[N, 28, 28\]"
    ):
        sv.mnist_rows(idx((2, 14, 14), bytes(2 * 196)), idx((2,), bytes(2)), 10)
    with pytest.raises(sv.ServingError, match=r"images have shape \(2, 784\)"):
        sv.mnist_rows(idx((2, 784), bytes(2 * 784)), idx((2,), bytes(2)), 10)
    # a cut file names which of the two it is, under the caller's `where`
    with pytest.raises(sv.ServingError, match=r"^s3://datasets/mnist labels: "):
        sv.mnist_rows(two, idx((2,), bytes(2))[:-1], 10, "s3://datasets/mnist")
    with pytest.raises(sv.ServingError, match=r"^s3://datasets/mnist images: "):
        sv.mnist_rows(two[:-1], idx((2,), bytes(2)), 10, "s3://datasets/mnist")


# ------------------------------------------------------------------ InferenceService status


def test_isvc_state_not_found() -> None:
    assert sv.isvc_state(None) == sv.IsvcState(False, "not found", None)
    assert sv.isvc_state({}) == sv.IsvcState(False, "not found", None)


def test_isvc_state_ready_with_url() -> None:
    obj = {
        "status": {
            "url": "http://mnist.mlops.example.com",
            "address": {"url": "http://mnist-predictor.mlops.svc.cluster.local"},
            "conditions": [
                {"type": "IngressReady", "status": "True"},
                {"type": "PredictorReady", "status": "True"},
                {"type": "Ready", "status": "True"},
            ],
        }
    }
    assert sv.isvc_state(obj) == sv.IsvcState(True, "", "http://mnist.mlops.example.com")


def test_isvc_state_not_ready_names_the_first_condition_not_true() -> None:
    obj = {
        "status": {
            "conditions": [
                {"type": "IngressReady", "status": "True"},
                {
                    "type": "PredictorReady",
                    "status": "False",
                    "reason": "RevisionMissing",
                    "message": "Revision mnist-predictor-00001 failed",
                },
                {"type": "Ready", "status": "False", "reason": "RevisionMissing"},
                "not a mapping",  # ignored
            ]
        }
    }
    state = sv.isvc_state(obj)
    assert not state.ready and state.url is None
    assert state.reason == "PredictorReady: RevisionMissing Revision mnist-predictor-00001 failed"
    unknown = sv.isvc_state({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}})
    assert not unknown.ready and unknown.reason == "Ready: status Unknown"


def test_isvc_state_no_conditions_and_address_fallback() -> None:
    fresh = sv.isvc_state({"metadata": {"name": "mnist"}, "status": {}})
    assert not fresh.ready
    assert fresh.reason == "no conditions yet (the controller has not seen it)"
    internal = "http://mnist-predictor.mlops.svc.cluster.local"
    ready = sv.isvc_state(
        {
            "status": {
                "address": {"url": internal},
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        }
    )
    assert ready == sv.IsvcState(True, "", internal)
    assert sv.isvc_state({"status": {"url": 42, "conditions": []}}).url is None
