"""The Grafana dashboards: built as code, committed in the chart, rendered as ConfigMaps.

The JSON under ``helm/gemma-serving/dashboards`` must be what ``gemma-serving
dashboards`` writes now; each decodes with grafana-foundation-sdk's dashboard model;
every panel query parses as PromQL and selects only metrics the gateway, vLLM (through
Ray) or Ray Serve export; the chart renders one ConfigMap per dashboard for Grafana's
sidecar, only when asked to.
"""

from __future__ import annotations

import json

import pytest
from grafana_foundation_sdk.models.dashboard import Dashboard

from gemma_serving.dashboards import DASHBOARDS, filled, queries, render
from tests.helm import chart
from tests.helm.metric_names import (
    gateway_metric_names,
    metric_names,
    ray_serve_metric_names,
    vllm_metric_names,
)

DIR = chart.CHART / "dashboards"
ENABLED = {"observability": {"grafanaDashboards": {"enabled": True}}}


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_the_chart_holds_what_the_builder_writes(name: str) -> None:
    committed = (DIR / f"{name}.json").read_text()
    assert committed == render(name), "run `gemma-serving dashboards` and commit the result"


def test_no_stale_dashboard_files() -> None:
    assert {p.stem for p in DIR.glob("*.json")} == set(DASHBOARDS)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_each_dashboard_decodes_with_the_sdk_model(name: str) -> None:
    data = json.loads((DIR / f"{name}.json").read_text())
    board = Dashboard.from_json(data)
    assert board.uid == f"gemma-serving-{name}"
    panels = [p for p in data["panels"] if p["type"] == "timeseries"]
    assert panels
    assert all(p["targets"] for p in panels)
    variables = {v["name"] for v in data["templating"]["list"]}
    assert variables == {"datasource", "namespace", "model"}


def test_every_panel_query_parses_and_selects_exported_metrics() -> None:
    known = gateway_metric_names() | vllm_metric_names() | ray_serve_metric_names()
    seen = 0
    for name, title, query in queries():
        used = metric_names(filled(query.expr))
        assert used, (name, title)
        assert used <= known, (name, title, used - known)
        assert "$namespace" in query.expr, (name, title)
        seen += 1
    assert seen >= 15


def test_dashboards_are_configmaps_for_the_grafana_sidecar() -> None:
    assert not [
        c for c in chart.render().all("ConfigMap") if "-dashboard-" in c["metadata"]["name"]
    ]
    values = chart.deep_merge(
        ENABLED,
        {"observability": {"grafanaDashboards": {"annotations": {"grafana_folder": "LLM"}}}},
    )
    maps = {
        c["metadata"]["name"]: c
        for c in chart.render(values).all("ConfigMap")
        if "-dashboard-" in c["metadata"]["name"]
    }
    assert len(maps) == len(DASHBOARDS)
    for name in DASHBOARDS:
        config_map = next(c for n, c in maps.items() if n.endswith(f"-dashboard-{name}"))
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["annotations"] == {"grafana_folder": "LLM"}
        assert config_map["metadata"]["namespace"] == chart.NAMESPACE
        assert json.loads(config_map["data"][f"{name}.json"]) == json.loads(render(name))


def test_the_sidecar_label_is_a_value() -> None:
    values = chart.deep_merge(
        ENABLED,
        {"observability": {"grafanaDashboards": {"label": "dashboards", "labelValue": "llm"}}},
    )
    maps = [
        c for c in chart.render(values).all("ConfigMap") if "-dashboard-" in c["metadata"]["name"]
    ]
    assert maps
    assert all(c["metadata"]["labels"]["dashboards"] == "llm" for c in maps)
