"""The registered MNIST version, served (issue 19 items 3 and 4): the end of the lineage that
runs from staged dataset and container to trained, registered and copied model.

- `model_mnist_served`: applies the InferenceService (v1beta1, v2 protocol, storageUri the
  version's copy in the models bucket) and waits until the endpoint answers ready. With
  `serving.mnist.deploy: kserve` KServe's controller makes the pod and the Ready condition;
  with `local` (the sandbox: its Kubernetes API is a stand-in with no controller) the same
  manifest is applied and KServe's own Python model server is started here on the version's
  model.pt, fetched from the bucket and checked against the registered sha256. Then a fixed
  concurrent load (p50/p95, throughput) and the model server's request counter, read from
  the server and from Prometheus. The same version already serving is left as it is.
- Checks: deploy and ready within their budgets, p95 and throughput against the catalog,
  the counter in Prometheus (all from what the materialization measured), and the held-out
  predictions, asked of the live endpoint each time the check runs.

The rules are core/serving.py; the HTTP side and the local server core/probes/model_endpoint."""

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets.catalog.schema import Catalog, ServedModel
from mlops_assets.checking import check_spec, latest_metadata, recorded_checks, recorded_result
from mlops_assets.core import serving
from mlops_assets.core.checks import CheckSpec, Outcome, ProbeFailed, Severity
from mlops_assets.core.manifest import hash_file
from mlops_assets.defs.registry.definitions import MINIO
from mlops_assets.platform import active
from mlops_assets.resources.clients import HttpServiceResource, KubernetesResource, S3Resource

GROUP = "serving"
ASSET = "model_mnist_served"
PAYLOAD = str(Path(__file__).resolve().parents[2] / "payloads" / "serve_mnist.py")
ISVC_PATH = "/apis/serving.kserve.io/v1beta1/namespaces/{ns}/inferenceservices"
MERGE_PATCH = "application/merge-patch+json"
TEST_FILES = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _fail(description: str, hint: str) -> dg.Failure:
    return dg.Failure(description=f"{description} Hint: {hint}", metadata={"hint": hint})


def local_server(cfg: ServedModel) -> Any:
    from mlops_assets.core.probes.model_endpoint import LocalServer

    state = cfg.local.state_dir or os.path.expanduser("~/.local/state/mlops-assets/serving")
    return LocalServer(state, cfg.local.port, cfg.model_name, cfg.local.prometheus_sd_file)


def apply_isvc(kube: KubernetesResource, manifest: dict[str, Any]) -> str:
    """Create the InferenceService, or merge-patch its labels and spec where it exists;
    'created' or 'updated'. An API refusal is a ProbeFailed with the API's own reason."""
    from kubernetes.client.exceptions import ApiException

    md = manifest["metadata"]
    base = ISVC_PATH.format(ns=md["namespace"])
    try:
        try:
            kube.get(f"{base}/{md['name']}")
        except ApiException as exc:
            if exc.status != 404:
                raise
            kube.call("POST", base, body=manifest)
            return "created"
        patch = {"metadata": {"labels": md.get("labels") or {}}, "spec": manifest["spec"]}
        kube.call("PATCH", f"{base}/{md['name']}", body=patch, content_type=MERGE_PATCH)
        return "updated"
    except ApiException as exc:
        raise ProbeFailed(
            f"the Kubernetes API refused InferenceService {md['namespace']}/{md['name']}: "
            f"HTTP {exc.status} {exc.reason}: {str(exc.body or '')[:300]}",
            "check that KServe's CRDs are installed (cloud checks) and that the kubeconfig's "
            f"user may create inferenceservices in namespace {md['namespace']}",
        ) from None


def isvc_state(kube: KubernetesResource, cfg: ServedModel) -> "serving.IsvcState":
    from kubernetes.client.exceptions import ApiException

    try:
        obj = kube.get(f"{ISVC_PATH.format(ns=cfg.namespace)}/{cfg.isvc_name}")
    except ApiException as exc:
        if exc.status == 404:
            return serving.isvc_state(None)
        raise
    return serving.isvc_state(obj)


def endpoint_url(cfg: ServedModel, kube: KubernetesResource | None) -> str:
    """Where the served model answers: the local server's loopback URL, the catalog's `url`,
    else the InferenceService's status URL."""
    if cfg.deploy == "local":
        return str(local_server(cfg).url)
    if cfg.url:
        return cfg.url.rstrip("/")
    state = isvc_state(kube, cfg) if kube is not None else serving.isvc_state(None)
    if not state.url:
        raise ProbeFailed(
            f"InferenceService {cfg.namespace}/{cfg.isvc_name} has no URL ({state.reason})",
            "materialize model_mnist_served, or set serving.mnist.url",
        )
    return state.url.rstrip("/")


def held_out_rows(
    catalog: Catalog, s3: S3Resource, limit: int
) -> tuple[list[list[float]], list[int], str]:
    """The first `limit` MNIST test digits from the dataset's copy in the datasets bucket
    (the cloud side's view of the staged data): rows, labels, and where they came from."""
    import gzip

    from mlops_assets.core.staging_plan import dataset_sync_plan

    name, d = _mnist_dataset(catalog)
    sync = dataset_sync_plan(catalog, name, d)
    client = s3.client()
    docs: list[bytes] = []
    for f in TEST_FILES:
        key = f"{sync['prefix']}MNIST/raw/{f}"
        try:
            docs.append(client.get_object(Bucket=sync["bucket"], Key=key)["Body"].read())
        except Exception:
            try:
                body = client.get_object(Bucket=sync["bucket"], Key=key + ".gz")["Body"].read()
            except Exception as exc:
                raise ProbeFailed(
                    f"s3://{sync['bucket']}/{key}(.gz) cannot be read: {type(exc).__name__}",
                    f"materialize {catalog.dataset_key(name)}_minio (the held-out digits)",
                ) from None
            docs.append(gzip.decompress(body))
    rows, labels = serving.mnist_rows(docs[0], docs[1], limit)
    return rows, labels, f"s3://{sync['bucket']}/{sync['prefix']}"


def _mnist_dataset(catalog: Catalog) -> tuple[str, Any]:
    for name, d in catalog.datasets.items():
        if getattr(d.source, "dataset_class", "") == "MNIST" and d.sync_to_bucket:
            return name, d
    raise ProbeFailed(
        "no MNIST dataset with sync_to_bucket in the catalog: no held-out digits to ask",
        "set sync_to_bucket: true on the MNIST dataset",
    )


def _held_out_key(catalog: Catalog) -> str:
    try:
        return f"{catalog.dataset_key(_mnist_dataset(catalog)[0])}_minio"
    except ProbeFailed:
        return ""


def served_asset(catalog: Catalog) -> dg.AssetsDefinition:
    cfg = catalog.serving.mnist
    reg = catalog.registry.mnist
    held = _held_out_key(catalog)

    @dg.asset(
        name=ASSET,
        group_name=GROUP,
        kinds={"kserve", "kubernetes"},
        deps=[MINIO, *([held] if held else [])],
        description=(
            f"The registered MNIST version served as InferenceService "
            f"{cfg.namespace}/{cfg.isvc_name} (v2 model `{cfg.model_name}`, "
            f"deploy: {cfg.deploy}), ready and measured: {cfg.load_requests} requests "
            f"{cfg.load_concurrency} at a time, p95 < {cfg.max_p95_ms:g} ms, the request "
            f"counter in Prometheus. Budgets: deploy < {cfg.deploy_budget_s:g} s, ready < "
            f"{cfg.ready_budget_s:g} s. The same version already serving is left as it is."
        ),
        metadata={"isvc": f"{cfg.namespace}/{cfg.isvc_name}", "deploy": cfg.deploy},
    )
    def _served(
        context: dg.AssetExecutionContext,
        kubernetes: KubernetesResource,
        s3: S3Resource,
        prometheus: HttpServiceResource,
    ) -> dg.MaterializeResult:
        from mlops_assets.core.probes import model_endpoint as ep

        copied = latest_metadata(context.instance, MINIO)[1]
        version, sha = str(copied.get("version") or ""), str(copied.get("model_sha256") or "")
        if not version or not sha:
            raise _fail(f"{MINIO} has no materialization", f"materialize {MINIO} first")
        uri = serving.storage_uri(catalog.trained_bucket().name, reg.prefix, version)
        labels = {"app.kubernetes.io/managed-by": "mlops-assets", "mlops-assets/version": version}
        try:
            manifest = serving.inference_service(
                serving.IsvcSpec(cfg.isvc_name, cfg.namespace, uri, labels=labels)
            )
            t0 = time.monotonic()
            applied = apply_isvc(kubernetes, manifest)
            deploy_s = time.monotonic() - t0
            context.log.info(
                f"InferenceService {cfg.namespace}/{cfg.isvc_name} {applied} "
                f"({uri}) in {deploy_s:.2f} s"
            )
            if cfg.deploy == "local":
                url, ready_s, reused = _local(context, cfg, s3, uri, version, sha)
            else:
                url, ready_s, reused = _kserve(context, cfg, kubernetes)
            rows, _labels, _src = held_out_rows(catalog, s3, 1)
            run = ep.load(
                url,
                cfg.model_name,
                rows,
                requests=cfg.load_requests,
                concurrency=cfg.load_concurrency,
            )
            stats = run.stats()
            for sample in run.error_samples:
                context.log.warning(f"load: {sample}")
            counts = _counts(context, cfg, url, prometheus)
        except (ProbeFailed, serving.ServingError) as exc:
            hint = getattr(exc, "hint", "") or "see the message"
            raise _fail(str(exc), hint) from None
        context.log.info(
            f"{url}: p50 {stats.p50_ms} ms, p95 {stats.p95_ms} ms, "
            f"{stats.throughput_rps:.1f} req/s ({stats.completed}/{stats.requests} completed, "
            f"{cfg.load_concurrency} at a time)"
        )
        return dg.MaterializeResult(
            metadata={
                "version": version,
                "model_sha256": sha,
                "storage_uri": uri,
                "isvc": f"{cfg.namespace}/{cfg.isvc_name}",
                "applied": applied,
                "deploy": cfg.deploy,
                "url": dg.MetadataValue.url(url),
                "reused": reused,
                "deploy_seconds": round(deploy_s, 3),
                "deploy_budget_s": cfg.deploy_budget_s,
                "ready_seconds": round(ready_s, 3),
                "ready_budget_s": cfg.ready_budget_s,
                **{f"load_{k}": v for k, v in stats.as_metadata().items()},
                "max_p95_ms": cfg.max_p95_ms,
                "min_throughput_rps": cfg.min_throughput_rps,
                **counts,
            },
            data_version=dg.DataVersion(sha),
        )

    return _served


def _local(
    context: dg.AssetExecutionContext,
    cfg: ServedModel,
    s3: S3Resource,
    uri: str,
    version: str,
    sha: str,
) -> tuple[str, float, bool]:
    """KServe's model server here, as the controller's pod would run it: the same version
    already serving is kept; otherwise the old one stops and the version's model.pt, fetched
    as the storage initializer would and checked against the registered sha256, is served."""
    from mlops_assets.core.probes import model_endpoint as ep

    srv = local_server(cfg)
    now = srv.running()
    ident = f"{version}:{sha}"  # a wiped registry reuses version numbers: the bytes decide
    if (
        now is not None
        and now.version == ident
        and ep.wait_ready(srv.url, cfg.model_name, time.monotonic() + 5) is not None
    ):
        context.log.info(f"{srv.url} already serves version {version} (pid {now.pid})")
        return str(srv.url), 0.0, True
    if now is not None:
        context.log.info(f"stopping the server of {now.version[:40]} (pid {now.pid})")
        srv.stop()
    t0 = time.monotonic()
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    model_dir = srv.dir / "models" / version
    model_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=model_dir, suffix=".part", delete=False) as tmp:
        try:
            s3.client().download_fileobj(bucket, f"{prefix}/model.pt", tmp)
        except Exception as exc:
            os.unlink(tmp.name)
            raise ProbeFailed(
                f"{uri}/model.pt cannot be read: {type(exc).__name__}: {exc}"[:400],
                "materialize model_mnist_minio again",
            ) from None
    if hash_file(tmp.name)[1] != sha:
        os.unlink(tmp.name)
        raise ProbeFailed(
            f"{uri}/model.pt is not the registered bytes (sha256 {sha[:16]} expected)",
            "materialize model_mnist_minio again: the copy in the bucket changed",
        )
    os.replace(tmp.name, model_dir / "model.pt")
    proc = srv.start(cfg.local.python, PAYLOAD, str(model_dir), ident)
    context.log.info(f"KServe model server pid {proc.pid} on {srv.url}, log {srv.log_path}")
    ready = ep.wait_ready(
        srv.url,
        cfg.model_name,
        t0 + cfg.ready_budget_s,
        alive=lambda: srv.running() is not None,
    )
    if ready is None:
        tail = srv.log_tail()
        srv.stop()
        raise ProbeFailed(
            f"the model server on {srv.url} was not ready within {cfg.ready_budget_s:g} s "
            f"or exited; its log ends: {tail[-600:]}",
            f"see {srv.log_path}",
        )
    return str(srv.url), time.monotonic() - t0, False


def _kserve(
    context: dg.AssetExecutionContext, cfg: ServedModel, kube: KubernetesResource
) -> tuple[str, float, bool]:
    """Wait for KServe's Ready condition, then the endpoint's own readiness."""
    from mlops_assets.core.probes import model_endpoint as ep

    t0 = time.monotonic()
    deadline = t0 + cfg.ready_budget_s
    state = isvc_state(kube, cfg)
    while not state.ready and time.monotonic() < deadline:
        time.sleep(2)
        state = isvc_state(kube, cfg)
    if not state.ready:
        raise ProbeFailed(
            f"InferenceService {cfg.namespace}/{cfg.isvc_name} not Ready within "
            f"{cfg.ready_budget_s:g} s: {state.reason}",
            "kubectl describe inferenceservice: the reason names the part (predictor, ingress)",
        )
    url = endpoint_url(cfg, kube)
    if ep.wait_ready(url, cfg.model_name, deadline) is None:
        raise ProbeFailed(
            f"InferenceService Ready, but {url}{serving.ready_path(cfg.model_name)} did not "
            "answer 200",
            "check that this machine reaches the ingress (or set serving.mnist.url)",
        )
    context.log.info(f"{url} Ready")
    return url, time.monotonic() - t0, False


def _counts(
    context: dg.AssetExecutionContext,
    cfg: ServedModel,
    url: str,
    prometheus: HttpServiceResource,
) -> dict[str, Any]:
    """The server's predict counter after the load, and Prometheus' view of it once a scrape
    has caught up (up to `prometheus_wait_s`)."""
    from mlops_assets.core.probes import model_endpoint as ep
    from mlops_assets.core.transport.http import HttpUnreachable

    try:
        server = ep.predict_count(url, cfg.model_name)
    except HttpUnreachable:
        server = None
    t0 = time.monotonic()
    seen = ep.prometheus_count(prometheus, cfg.model_name, cfg.prometheus_job)
    while (seen is None or (server is not None and seen < server)) and (
        time.monotonic() - t0 < cfg.prometheus_wait_s
    ):
        time.sleep(1)
        seen = ep.prometheus_count(prometheus, cfg.model_name, cfg.prometheus_job)
    if seen is None:
        context.log.warning(
            f"Prometheus has no {serving.KSERVE_PREDICT_COUNT} of job {cfg.prometheus_job} "
            f"after {cfg.prometheus_wait_s:g} s"
        )
    return {
        "server_predict_count": server,
        "prometheus_predict_count": seen,
        "prometheus_wait_s": round(time.monotonic() - t0, 2),
        "prometheus_job": cfg.prometheus_job,
    }


# ------------------------------------------------------------------ checks


def _recorded(meta: dict[str, Any], *keys: str) -> Outcome | None:
    """A WARN that says the figure is not recorded, or None when every key is there."""
    missing = [k for k in keys if meta.get(k) is None]
    if not missing:
        return None
    return Outcome(
        False,
        "none",
        "measured",
        hint=f"materialize {ASSET}",
        detail=f"{ASSET}'s latest materialization has no {', '.join(missing)}: cannot be judged",
        severity=Severity.WARN,
    )


def within(meta: dict[str, Any], figure: str, limit: str, unit: str, what: str) -> Outcome:
    """A recorded figure at or under its recorded limit."""
    missing = _recorded(meta, figure, limit)
    if missing is not None:
        return missing
    value, bound = float(meta[figure]), float(meta[limit])
    ok = value <= bound
    return Outcome(
        ok,
        value,
        bound,
        unit=unit,
        hint="" if ok else "see the materialization's log and the server's log",
        detail=f"{what} {value:g} {unit} ({'within' if ok else 'over'} {bound:g} {unit})",
    )


def throughput_outcome(meta: dict[str, Any]) -> Outcome:
    missing = _recorded(meta, "load_throughput_rps", "min_throughput_rps")
    if missing is not None:
        return missing
    value, floor = float(meta["load_throughput_rps"]), float(meta["min_throughput_rps"])
    errors = int(meta.get("load_errors") or 0)
    ok = value >= floor and errors == 0
    return Outcome(
        ok,
        value,
        floor,
        unit="req/s",
        hint="" if ok else "a slow or failing server: see its log and its CPU/GPU limits",
        detail=f"{value:g} req/s completed over the whole load, {errors} error(s)",
    )


def prometheus_outcome(meta: dict[str, Any]) -> Outcome:
    """Prometheus holds at least the predict count the server itself gave after the load."""
    missing = _recorded(meta, "server_predict_count")
    if missing is not None:
        return missing
    server, seen = float(meta["server_predict_count"]), meta.get("prometheus_predict_count")
    job = meta.get("prometheus_job", "kserve")
    if seen is None:
        return Outcome(
            False,
            "no series",
            server,
            hint=f"add the model server to Prometheus' scrape job {job} (a ServiceMonitor or "
            "PodMonitor for the predictor's /metrics)",
            detail=f"Prometheus has no {serving.KSERVE_PREDICT_COUNT} of job {job}",
        )
    ok = float(seen) >= server
    return Outcome(
        ok,
        float(seen),
        server,
        unit="requests",
        hint="" if ok else f"Prometheus lags or scrapes another server: check job {job}",
        detail=f"Prometheus {float(seen):g} of the server's {server:g} predict calls"
        + (f" (after {waited} s)" if (waited := meta.get("prometheus_wait_s")) is not None else ""),
    )


def predictions_outcome(
    catalog: Catalog, s3: S3Resource, kube: KubernetesResource, url: str
) -> Outcome:
    """Live: the endpoint's answers on held-out digits against their labels. `url` is the
    one the latest materialization served at ('' : where the catalog says it is)."""
    from mlops_assets.core.probes import model_endpoint as ep
    from mlops_assets.core.transport.http import HttpUnreachable

    cfg = catalog.serving.mnist
    url = url or endpoint_url(cfg, kube)
    rows, labels, src = held_out_rows(catalog, s3, cfg.held_out_samples)
    try:
        got = ep.held_out(url, cfg.model_name, rows, labels)
    except HttpUnreachable as exc:
        raise ProbeFailed(
            f"the served model does not answer: {exc}",
            f"materialize {ASSET} (it starts or redeploys the server)",
        ) from None
    ok = got.accuracy >= cfg.min_accuracy
    misses = ", ".join(f"{t}->{p}" for t, p in got.confusions)
    return Outcome(
        ok,
        round(got.accuracy, 4),
        cfg.min_accuracy,
        unit="accuracy",
        hint=""
        if ok
        else "the endpoint serves another model or a broken one: compare its "
        f"version with the registry's and re-materialize {ASSET}",
        detail=f"{got.samples} held-out digits from {src} asked of {url}: accuracy "
        f"{got.accuracy:.4f}" + (f"; first misses (label->predicted) {misses}" if misses else ""),
    )


# (check, severity, why, outcome from the latest materialization's metadata)
RECORDED = (
    (
        "served_deploy_within_budget",
        Severity.WARN,
        "Applying the InferenceService took less than its budget (validation tasks: < 3 min).",
        lambda m: within(m, "deploy_seconds", "deploy_budget_s", "s", "deploy"),
    ),
    (
        "served_ready_within_budget",
        Severity.ERROR,
        "The endpoint answered ready within its budget (validation tasks: < 10 min).",
        lambda m: within(m, "ready_seconds", "ready_budget_s", "s", "ready after"),
    ),
    (
        "served_p95_latency_within_threshold",
        Severity.ERROR,
        "p95 latency under the fixed concurrent load (catalog serving.mnist.max_p95_ms).",
        lambda m: within(m, "load_p95_ms", "max_p95_ms", "ms", "p95"),
    ),
    (
        "served_throughput_at_least",
        Severity.WARN,
        "Completed requests per second over the whole load, with no errors.",
        throughput_outcome,
    ),
    (
        "served_requests_in_prometheus",
        Severity.ERROR,
        "The model server's request counter reaches Prometheus (what dashboards and alerts read).",
        prometheus_outcome,
    ),
)


def served_recorded_checks() -> dg.AssetChecksDefinition:
    return recorded_checks(
        "served_recorded_checks",
        [
            (
                CheckSpec(ASSET, name, sev, why, lambda _ctx: Outcome(False, "", ""), light=False),
                judge,
            )
            for name, sev, why, judge in RECORDED
        ],
    )


PREDICTIONS_CHECK = "served_predictions_right"


def live_checks(catalog: Catalog) -> dg.AssetChecksDefinition:
    """The held-out check, asked of the live endpoint each time it runs (a server swapped or
    broken since it was deployed is caught), at the URL the latest materialization served."""
    spec: CheckSpec[Any] = CheckSpec(
        ASSET,
        PREDICTIONS_CHECK,
        Severity.ERROR,
        "The endpoint's answers on held-out MNIST digits reach the catalog's accuracy "
        "(serving.mnist.min_accuracy), asked live.",
        lambda _ctx: Outcome(False, "", ""),
        light=False,
        hint=f"materialize {ASSET}",
    )

    @dg.multi_asset_check(
        name="served_live_checks",
        specs=[check_spec(spec)],
        can_subset=True,
        required_resource_keys={"s3", "kubernetes"},
    )
    def _checks(context: dg.AssetCheckExecutionContext) -> Any:
        url = str(latest_metadata(context.instance, ASSET)[1].get("url") or "")
        res = context.resources
        yield recorded_result(
            spec,
            lambda: predictions_outcome(catalog, res.s3, res.kubernetes, url),
            context.log,
        )

    return _checks


def build(catalog: Catalog) -> dg.Definitions:
    return dg.Definitions(
        assets=[served_asset(catalog)],
        asset_checks=[served_recorded_checks(), live_checks(catalog)],
    )


defs = build(active().catalog)
