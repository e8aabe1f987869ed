"""NetworkPolicies select the right pods and admit only the intended peers.

Each policy is evaluated against the labels of the pod templates the chart renders, with
Kubernetes' label-selector semantics, so a renamed label or component breaks these tests.
"""

from __future__ import annotations

from typing import Any

from tests.helm import chart
from tests.helm.scenarios import EVERYTHING_ON

OTHER_NAMESPACE_POD = {"app": "intruder"}


def _pods(rendered: chart.Rendered) -> dict[str, dict[str, str]]:
    """Pod labels by role: gateway, redis, ray-head, ray-worker-<group>."""
    pods: dict[str, dict[str, str]] = {}
    for origin, template in chart.pod_templates(rendered):
        labels = template["metadata"]["labels"]
        component = labels["app.kubernetes.io/component"]
        role = component if component != "ray-worker" else f"ray-worker-{origin.split('/')[-1]}"
        pods[role] = labels
    return pods


def _policy_for(rendered: chart.Rendered, labels: dict[str, str]) -> list[dict[str, Any]]:
    return [
        p
        for p in rendered.all("NetworkPolicy")
        if chart.selector_matches(p["spec"]["podSelector"], labels)
    ]


def _admits(policy: dict[str, Any], peer: dict[str, str], port: int) -> bool:
    """Whether a pod of this release's namespace with labels ``peer`` may reach ``port``."""
    for rule in policy["spec"].get("ingress", []):
        ports = [p["port"] for p in rule.get("ports", [])]
        if ports and port not in ports:
            continue
        peers = rule.get("from")
        if peers is None:
            return True
        for entry in peers:
            same_namespace = "podSelector" in entry and "namespaceSelector" not in entry
            if same_namespace and chart.selector_matches(entry["podSelector"], peer):
                return True
    return False


def test_each_component_has_exactly_one_ingress_policy() -> None:
    rendered = chart.render()
    for role, labels in _pods(rendered).items():
        policies = _policy_for(rendered, labels)
        assert len(policies) == 1, role
        assert policies[0]["spec"]["policyTypes"] == ["Ingress"]


def test_only_the_gateway_reaches_the_ray_serve_port() -> None:
    rendered = chart.render()
    pods = _pods(rendered)
    assert {"gateway", "redis", "ray-head", "ray-worker-l4"} <= set(pods)
    for ray_role in ("ray-head", "ray-worker-l4"):
        (policy,) = _policy_for(rendered, pods[ray_role])
        assert _admits(policy, pods["gateway"], 8000)
        assert not _admits(policy, pods["redis"], 8000)
        assert not _admits(policy, OTHER_NAMESPACE_POD, 8000)
        # Ray pods talk to each other on every port (GCS, raylet, object transfer).
        assert _admits(policy, pods["ray-worker-l4"], 6379)
        assert not _admits(policy, pods["gateway"], 6379)


def test_only_the_gateway_and_ray_reach_redis() -> None:
    rendered = chart.render()
    pods = _pods(rendered)
    (policy,) = _policy_for(rendered, pods["redis"])
    for allowed in ("gateway", "ray-head", "ray-worker-l4"):
        assert _admits(policy, pods[allowed], 6379), allowed
    assert not _admits(policy, OTHER_NAMESPACE_POD, 6379)
    assert not _admits(policy, pods["gateway"], 6380)


def test_policies_of_another_release_select_nothing_here() -> None:
    rendered = chart.render()
    for labels in _pods(rendered).values():
        foreign = {**labels, "app.kubernetes.io/instance": "other-release"}
        assert _policy_for(rendered, foreign) == []


def test_kuberay_operator_reaches_only_the_dashboard_ports() -> None:
    rendered = chart.render()
    (policy,) = _policy_for(rendered, _pods(rendered)["ray-head"])
    operator_rules = [
        r
        for r in policy["spec"]["ingress"]
        if any("namespaceSelector" in peer for peer in r.get("from", []))
    ]
    assert len(operator_rules) == 1
    (rule,) = operator_rules
    selector = rule["from"][0]["namespaceSelector"]["matchLabels"]
    assert selector == {"kubernetes.io/metadata.name": "ray-system"}
    assert sorted(p["port"] for p in rule["ports"]) == [8265, 52365]


def test_gateway_and_metrics_peers_come_from_values() -> None:
    rendered = chart.render(EVERYTHING_ON)
    pods = _pods(rendered)
    (gateway_policy,) = _policy_for(rendered, pods["gateway"])
    (rule,) = gateway_policy["spec"]["ingress"]
    assert rule["from"] == EVERYTHING_ON["networkPolicy"]["gatewayIngressFrom"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    (ray_policy,) = _policy_for(rendered, pods["ray-head"])
    metrics = [
        r
        for r in ray_policy["spec"]["ingress"]
        if r.get("ports") == [{"port": 8080, "protocol": "TCP"}]
    ]
    assert metrics[0]["from"] == EVERYTHING_ON["networkPolicy"]["metricsFrom"]


BATCH_API = {"gateway": {"batchApi": {"enabled": True}}}


def test_with_the_batch_api_the_gateway_reaches_the_heads_client_port() -> None:
    rendered = chart.render(BATCH_API)
    pods = _pods(rendered)
    (head_policy,) = _policy_for(rendered, pods["ray-head"])
    assert _admits(head_policy, pods["gateway"], 10001)
    assert not _admits(head_policy, pods["redis"], 10001)
    assert not _admits(head_policy, OTHER_NAMESPACE_POD, 10001)
    assert not _admits(head_policy, pods["gateway"], 6379), "only the client port"
    assert not _admits(head_policy, pods["gateway"], 8265)


def test_the_batch_api_adds_only_the_client_port_rule() -> None:
    rendered = chart.render()
    off = rendered.one("NetworkPolicy", "-ray")
    assert not _admits(off, _pods(rendered)["gateway"], 10001)
    on = chart.render(BATCH_API).one("NetworkPolicy", "-ray")
    added = [rule for rule in on["spec"]["ingress"] if rule not in off["spec"]["ingress"]]
    assert [p["port"] for rule in added for p in rule["ports"]] == [10001]
    assert len(on["spec"]["ingress"]) == len(off["spec"]["ingress"]) + 1


def test_a_ray_cluster_elsewhere_adds_no_rule_here() -> None:
    values = {"gateway": {"batchApi": {"enabled": True, "rayAddress": "ray://head.other:10001"}}}
    policy = chart.render(values).one("NetworkPolicy", "-ray")
    assert (
        policy["spec"]["ingress"] == chart.render().one("NetworkPolicy", "-ray")["spec"]["ingress"]
    )


def test_policies_can_be_switched_off() -> None:
    assert not chart.render({"networkPolicy": {"enabled": False}}).has("NetworkPolicy")
