"""Probes of the monitoring stack: Prometheus ready, its scrape targets up and scraped, the
expected scrape jobs, and Grafana's database. No Dagster imports."""

from __future__ import annotations

from typing import Any

from mlops_assets.catalog.schema import Catalog
from mlops_assets.core.checks import Outcome, ProbeFailed, missing_items
from mlops_assets.core.probes.cloud.clients import Http, _answer, _status_200


def prometheus_ready(http: Http, catalog: Catalog) -> Outcome:
    return _status_200(
        _answer(http, "/-/ready", "start Prometheus"),
        "HTTP status of /-/ready",
        "Prometheus is not ready to serve queries yet: check its log",
    )


def _active_targets(http: Http) -> list[dict[str, Any]]:
    ans = _answer(http, "/api/v1/targets?state=active", "start Prometheus")
    if ans.status != 200:
        raise ProbeFailed(f"/api/v1/targets answered {ans.status}", "check Prometheus")
    try:
        return list(ans.json().get("data", {}).get("activeTargets", []))
    except (ValueError, AttributeError):
        raise ProbeFailed("/api/v1/targets did not answer JSON", "is the URL Prometheus?") from None


def _job(target: dict[str, Any]) -> str:
    return str(target.get("labels", {}).get("job") or target.get("scrapePool") or "?")


def _instance(target: dict[str, Any]) -> str:
    return f"{_job(target)}@{target.get('labels', {}).get('instance', '?')}"


# /api/v1/targets health: "up", "down", or "unknown" before the first scrape (right after a
# restart or a new ServiceMonitor). Unknown is not down: it is not judged yet.
NOT_SCRAPED = "unknown"


def prometheus_targets_up(http: Http, catalog: Catalog) -> Outcome:
    """The share of scraped targets up against the catalog's threshold; down ones named.
    Targets not scraped yet are left out here and reported by prometheus_targets_scraped."""
    targets = _active_targets(http)
    minimum = catalog.cloud.services.prometheus.min_targets_up_fraction
    scraped = [t for t in targets if t.get("health") != NOT_SCRAPED]
    waiting = len(targets) - len(scraped)
    down = [t for t in scraped if t.get("health") != "up"]
    share = round((len(scraped) - len(down)) / len(scraped), 3) if scraped else 0.0
    if targets and not scraped:  # all waiting for their first scrape: nothing to judge yet
        return Outcome(
            True,
            "not scraped yet",
            minimum,
            "share of scraped targets up",
            "",
            detail=(
                f"all {waiting} active targets are not scraped yet (health unknown): see "
                "prometheus_targets_scraped"
            ),
            extra={"targets_up": 0, "targets_total": len(targets), "targets_not_scraped": waiting},
        )
    detail = "; ".join(f"down {_instance(t)}: {t.get('lastError', '')}".strip() for t in down)
    if not targets:
        detail = "no active targets"
    elif waiting:
        detail = "; ".join(filter(None, [detail, f"{waiting} not scraped yet, left out"]))
    return Outcome(
        bool(targets) and share >= minimum,
        share,
        minimum,
        "share of scraped targets up",
        "a scrape target is down: check the exporter's pod and the ServiceMonitor",
        nodes=tuple(_instance(t) for t in down),
        detail=detail,
        extra={
            "targets_up": len(scraped) - len(down),
            "targets_total": len(targets),
            "targets_not_scraped": waiting,
        },
    )


def prometheus_targets_scraped(http: Http, catalog: Catalog) -> Outcome:
    """Every active target scraped at least once (health not `unknown`). A WARN check: right
    after a Prometheus restart or a new ServiceMonitor this is normal for one scrape interval;
    a target that stays unknown is never scraped (interval, sharding or a stuck scrape pool)."""
    targets = _active_targets(http)
    waiting = [t for t in targets if t.get("health") == NOT_SCRAPED]
    return Outcome(
        not waiting,
        len(targets) - len(waiting),
        len(targets),
        "active targets scraped at least once",
        "not scraped yet: wait one scrape interval and re-check; if it stays unknown, check the "
        "scrape interval and Prometheus' log",
        nodes=tuple(_instance(t) for t in waiting),
        detail="; ".join(f"not scraped yet: {_instance(t)}" for t in waiting),
    )


def prometheus_expected_jobs(http: Http, catalog: Catalog) -> Outcome:
    jobs = {_job(t) for t in _active_targets(http)}
    return missing_items(
        jobs,
        catalog.cloud.services.prometheus.expected_jobs,
        "scrape jobs",
        "add the scrape config / ServiceMonitor for the missing job",
    )


def grafana_health(http: Http, catalog: Catalog) -> Outcome:
    ans = _answer(http, "/api/health", "start Grafana")
    try:
        body = ans.json()
    except ValueError:
        body = {}
    db = body.get("database", "unknown")
    version = str(body.get("version", "unknown"))
    return Outcome(
        ans.status == 200 and db == "ok",
        db,
        "ok",
        "database",
        "Grafana's database is failing: check its storage/PVC and log",
        detail=f"HTTP {ans.status}, version {version}",
        extra={"grafana_version": version, "grafana_commit": str(body.get("commit", "unknown"))},
    )
