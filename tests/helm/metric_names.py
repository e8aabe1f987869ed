"""The metric names each source really exports, for checking queries and alert rules."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import promql_parser

from gateway.metrics import GatewayMetrics

# cAdvisor and kube-state-metrics, present on every Prometheus-operator stack.
CLUSTER_METRICS = {"container_memory_working_set_bytes", "kube_pod_container_resource_limits"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def _package_dir(name: str) -> Path:
    """An installed package's folder, found without importing it (vLLM and Ray are heavy)."""
    spec = importlib.util.find_spec(name)
    assert spec is not None, name
    assert spec.submodule_search_locations, name
    return Path(next(iter(spec.submodule_search_locations)))


def gateway_metric_names() -> set[str]:
    """Every series name the gateway's registry exposes (counters' _total, histograms' parts)."""
    names: set[str] = set()
    for family in GatewayMetrics().registry.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}_{part}" for part in ("bucket", "sum", "count"))
        else:
            names.add(family.name)
    return names


def vllm_metric_names() -> set[str]:
    """vLLM's metric names as Ray Serve LLM re-exports them: ray_vllm_<name>[_total|_bucket]."""
    metrics = _package_dir("vllm") / "v1" / "metrics"
    source = "".join(p.read_text() for p in metrics.glob("*.py"))
    names = set(re.findall(r'"vllm:([a-z_]+)"', source))
    suffixes = ("", "_total", "_bucket", "_sum", "_count")
    return {f"ray_vllm_{n}{s}" for n in names for s in suffixes}


def ray_serve_metric_names() -> set[str]:
    panels = _package_dir("ray") / "dashboard/modules/metrics/dashboards/serve_dashboard_panels.py"
    return set(re.findall(r"ray_serve_[a-z_]+", panels.read_text()))
