"""The Grafana dashboards the chart ships, built as code with grafana-foundation-sdk.

Four dashboards, each with a Prometheus datasource variable and the ``namespace`` and
``model`` variables every query filters on:

- ``overview``: requests/s, errors by status, p50/p95/p99 latency, time to first token
  and time per output token, output tokens/s per model;
- ``engines``: vLLM's running and waiting requests, KV-cache usage, tokens per engine
  step (the batch it runs), prompt and generation throughput per variant and replica,
  and Ray Serve's replica health;
- ``tenants``: requests and tokens per key tenant, quota refusals by reason;
- ``batch``: batches by status, batches ended, batch lines/s.

``gemma-serving dashboards -o helm/gemma-serving/dashboards`` writes them as JSON; the
chart puts each in a ConfigMap for Grafana's dashboard sidecar. ``queries`` lists every
panel query, for the tests that run them against a real Prometheus.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
#: The selector every gateway query carries; engine queries use ``model_name`` instead.
GATEWAY = 'namespace=~"$namespace", model=~"$model"'
ENGINE = 'namespace=~"$namespace", model_name=~"$model"'
SCOPE = 'namespace=~"$namespace"'
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    """One panel query: the PromQL and its legend."""

    expr: str
    legend: str


@dataclass(frozen=True)
class Graph:
    """One time-series panel."""

    title: str
    unit: str
    queries: tuple[Query, ...]
    description: str = ""


def _quantiles(metric: str, selector: str) -> tuple[Query, ...]:
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by (le, model) (rate({metric}{{{selector}}}[{RATE}])))",
            f"p{int(q * 100)} {{{{model}}}}",
        )
        for q in (0.5, 0.95, 0.99)
    )


OVERVIEW = (
    Graph(
        "Requests per second",
        "reqps",
        (
            Query(
                f"sum by (model) (rate(gateway_requests_total{{{GATEWAY}}}[{RATE}]))", "{{model}}"
            ),
        ),
    ),
    Graph(
        "Errors per second by status",
        "reqps",
        (
            Query(
                f'sum by (status) (rate(gateway_requests_total{{{GATEWAY}, status=~"[45].."}}'
                f"[{RATE}]))",
                "{{status}}",
            ),
        ),
        "4xx and 5xx answers (model none: refused before a model was chosen).",
    ),
    Graph(
        "Request latency",
        "s",
        _quantiles("gateway_request_duration_seconds_bucket", GATEWAY),
        "Until the last byte of the answer, at the gateway.",
    ),
    Graph(
        "Time to first token (streams)",
        "s",
        _quantiles("gateway_time_to_first_token_seconds_bucket", GATEWAY),
    ),
    Graph(
        "Time per output token",
        "s",
        tuple(
            Query(
                f"histogram_quantile({q}, sum by (le, model_name) (rate("
                f"ray_vllm_request_time_per_output_token_seconds_bucket{{{ENGINE}}}[{RATE}])))",
                f"p{int(q * 100)} {{{{model_name}}}}",
            )
            for q in (0.5, 0.95)
        ),
        "vLLM's decode time per generated token, per request.",
    ),
    Graph(
        "Output tokens per second",
        "short",
        (
            Query(
                f'sum by (model) (rate(gateway_tokens_total{{{GATEWAY}, direction="out"}}'
                f"[{RATE}]))",
                "{{model}}",
            ),
        ),
    ),
)

ENGINES = (
    Graph(
        "Running and waiting requests",
        "short",
        (
            Query(
                f"sum by (model_name, ReplicaId) (ray_vllm_num_requests_running{{{ENGINE}}})",
                "running {{model_name}} {{ReplicaId}}",
            ),
            Query(
                f"sum by (model_name, ReplicaId) (ray_vllm_num_requests_waiting{{{ENGINE}}})",
                "waiting {{model_name}} {{ReplicaId}}",
            ),
        ),
    ),
    Graph(
        "KV-cache usage",
        "percentunit",
        (
            Query(
                f"max by (model_name, ReplicaId) (ray_vllm_kv_cache_usage_perc{{{ENGINE}}})",
                "{{model_name}} {{ReplicaId}}",
            ),
        ),
    ),
    Graph(
        "Tokens per engine step",
        "short",
        (
            Query(
                f"sum by (model_name, ReplicaId) (rate(ray_vllm_iteration_tokens_total_sum"
                f"{{{ENGINE}}}[{RATE}])) / sum by (model_name, ReplicaId) (rate("
                f"ray_vllm_iteration_tokens_total_count{{{ENGINE}}}[{RATE}]))",
                "{{model_name}} {{ReplicaId}}",
            ),
        ),
        "The batch each vLLM step runs, in tokens (prefill and decode).",
    ),
    Graph(
        "Prompt and generation throughput",
        "short",
        (
            Query(
                f"sum by (model_name, ReplicaId) (rate(ray_vllm_prompt_tokens_total{{{ENGINE}}}"
                f"[{RATE}]))",
                "prompt {{model_name}} {{ReplicaId}}",
            ),
            Query(
                f"sum by (model_name, ReplicaId) (rate(ray_vllm_generation_tokens_total"
                f"{{{ENGINE}}}[{RATE}]))",
                "generation {{model_name}} {{ReplicaId}}",
            ),
        ),
    ),
    Graph(
        "Healthy Serve replicas",
        "short",
        (
            Query(
                f"sum by (application, deployment) (ray_serve_deployment_replica_healthy"
                f"{{{SCOPE}}})",
                "{{deployment}}",
            ),
        ),
    ),
)

TENANTS = (
    Graph(
        "Requests per second by tenant",
        "reqps",
        (
            Query(
                f"sum by (tenant) (rate(gateway_tenant_requests_total{{{GATEWAY}}}[{RATE}]))",
                "{{tenant}}",
            ),
        ),
    ),
    Graph(
        "Tokens per second by tenant",
        "short",
        (
            Query(
                f"sum by (tenant, direction) (rate(gateway_tenant_tokens_total{{{GATEWAY}}}"
                f"[{RATE}]))",
                "{{tenant}} {{direction}}",
            ),
        ),
        "Engine usage: in = prompt, out = completion.",
    ),
    Graph(
        "Served share by tenant",
        "percentunit",
        (
            Query(
                f'sum by (tenant) (rate(gateway_tenant_tokens_total{{{GATEWAY}, direction="out"}}'
                f"[{RATE}])) / scalar(sum(rate(gateway_tenant_tokens_total{{{GATEWAY}, "
                f'direction="out"}}[{RATE}])))',
                "{{tenant}}",
            ),
        ),
        "Each tenant's part of the completion tokens the engines produced.",
    ),
    Graph(
        "Time to first token by priority class",
        "s",
        tuple(
            Query(
                f"histogram_quantile({q}, sum by (le, priority_class) (rate("
                f"gateway_time_to_first_token_seconds_bucket{{{GATEWAY}}}[{RATE}])))",
                f"p{int(q * 100)} {{{{priority_class}}}}",
            )
            for q in (0.5, 0.99)
        ),
        "Streams, by the key's class: the engine's queue time and prefill.",
    ),
    Graph(
        "Queue time by priority class",
        "s",
        tuple(
            Query(
                f"histogram_quantile({q}, sum by (le, priority_class) (rate("
                f"gateway_queue_time_seconds_bucket{{{GATEWAY}}}[{RATE}])))",
                f"p{int(q * 100)} {{{{priority_class}}}}",
            )
            for q in (0.5, 0.99)
        ),
        "The wait in the gateway for a slot on the engine, by the key's class.",
    ),
    Graph(
        "Quota refusals by reason",
        "reqps",
        (
            Query(
                f"sum by (reason) (rate(gateway_quota_rejections_total{{{SCOPE}}}[{RATE}]))",
                "{{reason}}",
            ),
        ),
    ),
)

BATCH = (
    Graph(
        "Unfinished batches by status",
        "short",
        (Query(f"sum by (status) (gateway_batches_active{{{SCOPE}}})", "{{status}}"),),
        "As the gateways' batch supervisors last saw them (each counts all replicas' batches).",
    ),
    Graph(
        "Batches ended per hour",
        "short",
        (
            Query(
                f"sum by (status) (increase(gateway_batches_finished_total{{{SCOPE}}}[1h]))",
                "{{status}}",
            ),
        ),
    ),
    Graph(
        "Batch lines per second",
        "short",
        (
            Query(
                f"sum by (outcome) (rate(gateway_batch_lines_total{{{SCOPE}}}[{RATE}]))",
                "{{outcome}}",
            ),
        ),
    ),
)

DASHBOARDS: dict[str, tuple[str, tuple[Graph, ...]]] = {
    "overview": ("Gemma serving / Overview", OVERVIEW),
    "engines": ("Gemma serving / Engines", ENGINES),
    "tenants": ("Gemma serving / Tenants", TENANTS),
    "batch": ("Gemma serving / Batch", BATCH),
}


def _variables() -> list[object]:
    refresh = VariableRefresh.ON_TIME_RANGE_CHANGED
    return [
        DatasourceVariable("datasource").label("Data source").type("prometheus"),
        QueryVariable("namespace")
        .label("Namespace")
        .datasource(DATASOURCE)
        .query("label_values(gateway_requests_total, namespace)")
        .refresh(refresh)
        .multi(True)
        .include_all(True),
        QueryVariable("model")
        .label("Model")
        .datasource(DATASOURCE)
        .query('label_values(gateway_requests_total{namespace=~"$namespace"}, model)')
        .refresh(refresh)
        .multi(True)
        .include_all(True),
    ]


def _panel(graph: Graph) -> Timeseries:
    panel = (
        Timeseries().title(graph.title).unit(graph.unit).datasource(DATASOURCE).span(12).height(8)
    )
    if graph.description:
        panel = panel.description(graph.description)
    for ref, query in zip("ABCDEFGH", graph.queries, strict=False):
        panel = panel.with_target(
            Dataquery().ref_id(ref).expr(query.expr).legend_format(query.legend)
        )
    return panel


def build(name: str) -> dict[str, object]:
    """The dashboard ``name`` as Grafana's JSON model."""
    title, graphs = DASHBOARDS[name]
    board = (
        Dashboard(title)
        .uid(f"gemma-serving-{name}")
        .tags(["gemma-serving"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
    )
    for variable in _variables():
        board = board.with_variable(variable)  # type: ignore[arg-type]
    board = board.with_row(Row(title.split(" / ")[-1]))
    for graph in graphs:
        board = board.with_panel(_panel(graph))
    encoded: dict[str, object] = json.loads(JSONEncoder(sort_keys=True).encode(board.build()))
    return encoded


def render(name: str) -> str:
    """The dashboard's JSON text as the chart keeps it."""
    return json.dumps(build(name), indent=2, sort_keys=True) + "\n"


def filled(expr: str, *, namespace: str = ".*", model: str = ".*", rate: str = "1m") -> str:
    """A panel query with Grafana's variables filled in (to run it on Prometheus itself)."""
    return (
        expr.replace("$__rate_interval", rate)
        .replace('"$namespace"', f'"{namespace}"')
        .replace('"$model"', f'"{model}"')
    )


def queries() -> Iterator[tuple[str, str, Query]]:
    """Every panel query: (dashboard, panel title, query)."""
    for name, (_, graphs) in DASHBOARDS.items():
        for graph in graphs:
            for query in graph.queries:
                yield name, graph.title, query
