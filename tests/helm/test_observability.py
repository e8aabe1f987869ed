"""Monitors, OTel wiring and the alert rules (PromQL parsed, metric names checked)."""

from __future__ import annotations

import promql_parser
import pytest
import yaml

from tests.helm import chart
from tests.helm.metric_names import (
    CLUSTER_METRICS,
    gateway_metric_names,
    metric_names,
    ray_serve_metric_names,
    vllm_metric_names,
)
from tests.helm.scenarios import EVERYTHING_ON

GATEWAY_METRICS = {
    "gateway_requests_total",
    "gateway_request_duration_seconds_bucket",
    "gateway_time_to_first_token_seconds_bucket",
    "gateway_tokens_total",
}


def _rules(values: dict | None = None) -> list[dict]:
    rule = chart.render(values or EVERYTHING_ON).one("PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def test_every_alert_expression_parses_and_uses_known_metrics() -> None:
    known = gateway_metric_names() | CLUSTER_METRICS | vllm_metric_names()
    known |= ray_serve_metric_names()
    assert known >= GATEWAY_METRICS
    rules = _rules()
    assert {r["alert"] for r in rules} >= {
        "GemmaHighP95Latency",
        "GemmaHighTimeToFirstToken",
        "GemmaLowSuccessRate",
        "GemmaLowTokenThroughput",
        "GemmaKvCacheNearlyFull",
        "GemmaContainerMemoryNearLimit",
    }
    for rule in rules:
        used = metric_names(rule["expr"])
        assert used, rule["alert"]
        assert used <= known, (rule["alert"], used - known)
        assert f'namespace="{chart.NAMESPACE}"' in rule["expr"]
        assert rule["labels"]["severity"] in {"warning", "critical"}


def _threshold(expr: str) -> float:
    """The number an alert compares against: the right side of its top comparison."""
    tree = promql_parser.parse(expr)
    assert isinstance(tree, promql_parser.BinaryExpr)
    assert isinstance(tree.rhs, promql_parser.NumberLiteral)
    return float(tree.rhs.val)


def test_thresholds_come_from_values() -> None:
    values = chart.deep_merge(
        EVERYTHING_ON,
        {
            "observability": {
                "prometheusRule": {
                    "thresholds": {"p95LatencySeconds": 12.5, "minSuccessRatio": 0.95, "for": "3m"}
                }
            }
        },
    )
    rules = {r["alert"]: r for r in _rules(values)}
    assert _threshold(rules["GemmaHighP95Latency"]["expr"]) == 12.5
    assert _threshold(rules["GemmaLowSuccessRate"]["expr"]) == 0.95
    assert {r["for"] for r in rules.values()} == {"3m"}


def test_alert_annotations_keep_prometheus_templates() -> None:
    """Helm must leave {{ $labels.model }} for Prometheus to expand."""
    rules = {r["alert"]: r for r in _rules()}
    assert "{{ $labels.model }}" in rules["GemmaHighP95Latency"]["annotations"]["summary"]


def test_rules_file_renders_to_a_plain_prometheus_rule_file() -> None:
    rule = chart.render(EVERYTHING_ON).one("PrometheusRule")
    as_file = yaml.safe_load(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    for group in as_file["groups"]:
        assert set(group) == {"name", "rules"}
        for r in group["rules"]:
            assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}


def test_a_broken_expression_would_be_caught() -> None:
    with pytest.raises(ValueError, match="parenthesis"):
        promql_parser.parse("sum(rate(gateway_requests_total[5m])")


def test_monitors_select_the_gateway_service_and_the_ray_pods() -> None:
    rendered = chart.render(EVERYTHING_ON)
    service_monitor = rendered.one("ServiceMonitor")
    service = rendered.one("Service", "-gateway")
    assert chart.selector_matches(
        service_monitor["spec"]["selector"], service["metadata"]["labels"]
    )
    assert service_monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    assert service_monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    pod_monitor = rendered.one("PodMonitor")
    ray_pods = [t for o, t in chart.pod_templates(rendered) if o.startswith("RayService")]
    for template in ray_pods:
        assert chart.selector_matches(
            pod_monitor["spec"]["selector"], template["metadata"]["labels"]
        )
        ports = {p["name"] for p in template["spec"]["containers"][0]["ports"]}
        assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] in ports
    gateway = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert not chart.selector_matches(pod_monitor["spec"]["selector"], gateway)


def test_otel_endpoint_reaches_gateway_and_ray_containers() -> None:
    rendered = chart.render(EVERYTHING_ON)
    endpoint = EVERYTHING_ON["observability"]["otel"]["endpoint"]
    services = set()
    for origin, template in chart.pod_templates(rendered):
        if origin.startswith("StatefulSet"):
            continue
        env = chart.env_of(template["spec"]["containers"][0])
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == endpoint, origin
        services.add(env["OTEL_SERVICE_NAME"]["value"])
        if env["OTEL_SERVICE_NAME"]["value"] == "gemma-ray-serve":
            # Ray Serve's proxy traces only through these (serving.tracing.tracing_env).
            exporter = env["RAY_SERVE_TRACING_EXPORTER_IMPORT_PATH"]["value"]
            assert exporter == "serving.tracing:span_processors", origin
            assert float(env["RAY_SERVE_TRACING_SAMPLING_RATIO"]["value"]) > 0
    assert services == {"gemma-gateway", "gemma-ray-serve"}


def test_ray_serve_tracing_is_off_without_an_endpoint() -> None:
    for origin, template in chart.pod_templates(chart.render({})):
        env = chart.env_of(template["spec"]["containers"][0])
        assert "RAY_SERVE_TRACING_EXPORTER_IMPORT_PATH" not in env, origin


def test_ray_pods_get_the_stacks_serve_housekeeping_cadence() -> None:
    from serving.runner import LOCAL_RAY_ENV, SERVE_HOUSEKEEPING_ENV

    assert SERVE_HOUSEKEEPING_ENV.items() <= LOCAL_RAY_ENV.items()  # the local stack's too
    ray_pods = [t for o, t in chart.pod_templates(chart.render({})) if o.startswith("RayService")]
    assert ray_pods
    for template in ray_pods:
        env = chart.env_of(template["spec"]["containers"][0])
        for name, value in SERVE_HOUSEKEEPING_ENV.items():
            assert float(env[name]["value"]) == float(value), name
    slower = {"serving": {"housekeeping": {"controlLoopIntervalS": 2}}}
    for _, template in chart.pod_templates(chart.render(slower)):
        env = chart.env_of(template["spec"]["containers"][0])
        if "RAY_SERVE_CONTROL_LOOP_INTERVAL_S" in env:
            assert env["RAY_SERVE_CONTROL_LOOP_INTERVAL_S"]["value"] == "2"
