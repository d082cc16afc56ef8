"""Alerts and dashboard: every expression parses as PromQL and reads a metric duplex exports.

The rule file is checked the way ``promtool check rules`` would (names, durations,
expressions), and every metric an alert or a panel reads must be one the
orchestrator, the worker or the operator serves on ``/metrics``, so a renamed
metric breaks this test rather than an alert in production.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import promql_parser
import yaml
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Summary

import duplex_operator.metrics
import duplex_orchestrator.metrics
import duplex_tts.metrics
from duplex_orchestrator.metrics import report_workers
from duplex_orchestrator.registry.kubernetes import KubernetesRegistry
from duplex_protocol.kube import KubeClient
from duplex_protocol.lease import WorkerState, lease_manifest
from tests.support.chart import CHART, SECRET, find, render

RULES = CHART / "monitoring" / "duplex.rules.yaml"
DASHBOARD = CHART / "monitoring" / "duplex-dashboard.json"
# Grafana's variables, as Grafana substitutes them before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$namespace": "voice"}
# Served but deliberately not on the dashboard (detail for debugging, not overview).
NOT_ON_DASHBOARD = {
    "duplex_tts_pause_latency_seconds",
    "duplex_tts_controls_total",
    "duplex_tts_model_unload_seconds",
}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum", "_created"),
}


def exported_series() -> dict[str, str]:
    """Every series name the components serve on /metrics → its metric's name (as in code).

    Read from the components' own metrics modules, not the process-wide registry,
    which also holds whatever engines other tests imported (their metrics are
    served only by the workers running them, and are not on the dashboard).
    """
    modules = (duplex_orchestrator.metrics, duplex_tts.metrics, duplex_operator.metrics)
    series = {}
    for module in modules:
        for metric in vars(module).values():
            if not isinstance(metric, Counter | Gauge | Histogram | Summary):
                continue
            for family in metric.describe():
                shown = family.name + ("_total" if family.type == "counter" else "")
                for suffix in _SUFFIXES[family.type]:
                    series[family.name + suffix] = shown
    return series


def metrics_read(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def rule_file() -> dict[str, Any]:
    return cast(dict[str, Any], yaml.safe_load(RULES.read_text()))


def alerts() -> list[dict[str, Any]]:
    return [rule for group in rule_file()["groups"] for rule in group["rules"]]


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((panel["title"], expr))
    return queries


def test_rule_file_is_well_formed() -> None:
    groups = rule_file()["groups"]
    assert len({g["name"] for g in groups}) == len(groups)
    names = [rule["alert"] for rule in alerts()]
    assert len(set(names)) == len(names)
    for rule in alerts():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        if "for" in rule:
            assert promql_parser.parse_duration(rule["for"]) > timedelta(0)
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
        assert isinstance(promql_parser.parse(rule["expr"]), promql_parser.BinaryExpr), (
            f"{rule['alert']}: an alert's expression compares against a threshold"
        )


def test_the_issue_alerts_exist() -> None:
    read = {rule["alert"]: metrics_read(rule["expr"]) for rule in alerts()}
    wanted = {
        "duplex_tts_first_audio_seconds_bucket",  # first-audio p95
        "duplex_tts_underruns_total",
        "duplex_tts_model_load_failures_total",
        "duplex_workers",  # no ready worker
        "duplex_lease_expiries_total",
    }
    assert wanted <= set().union(*read.values())


def test_every_metric_an_alert_reads_is_exported() -> None:
    exported = exported_series()
    for rule in alerts():
        missing = metrics_read(rule["expr"]) - exported.keys()
        assert not missing, f"{rule['alert']} reads metrics nobody exports: {missing}"


def test_every_dashboard_query_parses_and_reads_exported_metrics() -> None:
    exported = exported_series()
    queries = panel_queries()
    assert len(queries) > 20
    for title, expr in queries:
        missing = metrics_read(expr) - exported.keys()
        assert not missing, f"panel {title!r} reads metrics nobody exports: {missing}"


def test_the_dashboard_shows_every_exported_metric_but_the_listed_ones() -> None:
    exported = exported_series()
    shown = {exported[name] for _, expr in panel_queries() for name in metrics_read(expr)}
    assert set(exported.values()) - shown == NOT_ON_DASHBOARD


def test_dashboard_panels_have_unique_ids_and_fit_the_grid() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area


def test_the_chart_ships_rules_dashboard_and_scrape_targets() -> None:
    assert not [
        d
        for d in render(SECRET)
        if d["kind"] in ("PrometheusRule", "PodMonitor", "ServiceMonitor", "ConfigMap")
    ]
    docs = render(
        {
            **SECRET,
            "serviceMonitor": {"enabled": True, "labels": {"release": "kps"}},
            "prometheusRule": {"enabled": True, "labels": {"release": "kps"}},
            "dashboards": {"enabled": True, "annotations": {"grafana_folder": "duplex"}},
        }
    )
    rule = find(docs, "PrometheusRule", "duplex")
    assert rule["spec"] == rule_file()
    assert rule["metadata"]["labels"]["release"] == "kps"
    dashboard = find(docs, "ConfigMap", "duplex-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "duplex"}
    assert json.loads(dashboard["data"]["duplex.json"]) == json.loads(DASHBOARD.read_text())
    workers = find(docs, "PodMonitor", "duplex-tts-workers")["spec"]
    assert workers["selector"]["matchLabels"]["app.kubernetes.io/component"] == "tts-worker"
    assert workers["namespaceSelector"] == {"matchNames": ["voice"]}
    assert workers["podMetricsEndpoints"][0]["port"] == "metrics"
    operator = find(docs, "PodMonitor", "duplex-operator")["spec"]
    assert operator["podMetricsEndpoints"][0]["port"] == "metrics"
    assert find(docs, "ServiceMonitor", "duplex")["metadata"]["labels"]["release"] == "kps"


def test_worker_pod_monitor_follows_the_operator_watch_scope() -> None:
    wide = render(
        {**SECRET, "serviceMonitor": {"enabled": True}, "operator": {"clusterWide": True}}
    )
    assert find(wide, "PodMonitor", "duplex-tts-workers")["spec"]["namespaceSelector"] == {
        "any": True
    }


def lease(pod: str, renewed: datetime) -> dict[str, Any]:
    return lease_manifest(
        pod=pod,
        pod_uid="u",
        namespace="voice",
        pool="cpu",
        endpoint=f"{pod}:7001",
        state=WorkerState(families=["mock"], models=["mock"]),
        now=renewed,
    )


def expiries() -> float:
    return REGISTRY.get_sample_value("duplex_lease_expiries_total") or 0.0


def workers(state: str) -> float | None:
    return REGISTRY.get_sample_value("duplex_workers", {"state": state})


def test_a_lease_that_lapses_counts_once_and_a_stale_or_released_one_never() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = [start]
    registry = KubernetesRegistry(cast(KubeClient, None), "voice", now=lambda: clock[0])
    before = expiries()
    registry.apply("ADDED", lease("a", start))
    registry.apply("ADDED", lease("b", start))
    registry.apply("ADDED", lease("stale", start - timedelta(minutes=5)))  # dead when first seen
    report_workers(registry.snapshot)
    assert workers("ready") == 2
    assert workers("not_ready") == 1
    assert expiries() == before

    clock[0] = start + timedelta(seconds=30)  # past renewTime + 10 s for a and b
    registry.apply("MODIFIED", lease("b", clock[0]))  # b renewed, a lapsed
    registry.snapshot()
    registry.snapshot()
    assert expiries() == before + 1
    assert workers("ready") == 1

    registry.apply("DELETED", lease("b", clock[0]))  # released at shutdown: not a lapse
    clock[0] = start + timedelta(minutes=5)
    registry.snapshot()
    assert expiries() == before + 1
