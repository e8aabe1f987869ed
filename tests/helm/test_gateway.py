"""Gateway wiring: probes, graceful termination, secrets by reference, scaling objects."""

from __future__ import annotations

import re

import helm_python
import pytest
import yaml

from tests.helm import chart
from tests.helm.gateway_env import settings_from, unread_names
from tests.helm.scenarios import EVERYTHING_ON


def _gateway(values: dict | None = None) -> tuple[dict, dict]:
    rendered = chart.render(values)
    deployment = rendered.one("Deployment", "-gateway")
    return deployment, deployment["spec"]["template"]["spec"]["containers"][0]


def test_probes_use_readyz_and_healthz_on_the_http_port() -> None:
    _, container = _gateway()
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]


def test_termination_grace_outlasts_the_longest_stream() -> None:
    deployment, container = _gateway()
    spec = deployment["spec"]["template"]["spec"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] > 600 + pre_stop
    deployment, container = _gateway(
        {"gateway": {"maxStreamSeconds": 900, "terminationGracePeriodSeconds": 960}}
    )
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 960
    env = chart.env_of(container)
    assert env["GATEWAY_UPSTREAM_READ_TIMEOUT"]["value"] == "900"
    assert env["UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN"]["value"] == "900"
    assert env["UVICORN_PORT"]["value"] == "8080"


def test_render_fails_when_grace_period_is_shorter_than_a_stream() -> None:
    with pytest.raises(helm_python.HelmRenderError, match="must exceed maxStreamSeconds"):
        chart.render({"gateway": {"maxStreamSeconds": 900}})


def test_admin_key_comes_from_the_existing_secret_never_inline() -> None:
    rendered = chart.render(EVERYTHING_ON)
    _, container = _gateway(EVERYTHING_ON)
    admin = chart.env_of(container)["GATEWAY_ADMIN_KEY"]
    assert admin == {
        "name": "GATEWAY_ADMIN_KEY",
        "valueFrom": {"secretKeyRef": {"name": "gemma-serving-admin", "key": "admin-key"}},
    }
    assert not rendered.has("Secret"), "the chart must not create Secrets"
    for obj in rendered.objects:
        for _, template in chart.pod_templates(chart.Rendered((obj,), {})):
            for c in chart.containers(template):
                for env in c.get("env", []):
                    if any(word in env["name"] for word in ("KEY", "TOKEN", "PASSWORD")):
                        assert "value" not in env, f"{env['name']} is inlined"


def test_admin_secret_name_is_required() -> None:
    with pytest.raises(helm_python.HelmError, match="adminKeySecret"):
        chart.render({"gateway": {"adminKeySecret": {"name": ""}}})


def test_config_from_values_reaches_the_environment() -> None:
    values = {
        "gateway": {
            "limits": {"maxRequestBytes": 1000},
            "routing": {"fallbackNamedModels": True},
            "batchApi": {"enabled": True},
            "logLevel": "debug",
            "extraEnv": [{"name": "GATEWAY_EXTRA", "value": "1"}],
        },
        "observability": {"otel": {"endpoint": "http://collector:4318", "samplingRatio": 0.5}},
    }
    env = chart.env_of(_gateway(values)[1])
    assert env["GATEWAY_LIMITS__MAX_BODY_BYTES"]["value"] == "1000"
    assert env["GATEWAY_FALLBACK_NAMED_MODELS"]["value"] == "true"
    assert env["GATEWAY_BATCHES__ENABLED"]["value"] == "true"
    assert env["UVICORN_LOG_LEVEL"]["value"] == "debug"
    assert env["GATEWAY_EXTRA"]["value"] == "1"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://collector:4318"
    assert env["OTEL_TRACES_SAMPLER_ARG"]["value"] == "0.5"
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in chart.env_of(_gateway()[1])


def test_fair_share_splits_the_slots_by_the_fewest_replicas_that_run() -> None:
    env = chart.env_of(_gateway()[1])
    assert env["GATEWAY_FAIR_SHARE__ENABLED"]["value"] == "true"
    assert env["GATEWAY_FAIR_SHARE__GATEWAY_REPLICAS"]["value"] == "2"  # HPA minReplicas
    fixed = {"autoscaling": {"enabled": False}, "replicaCount": 3}
    values = {"gateway": {**fixed, "fairShare": {"maxWaitSeconds": 5, "batchFraction": 0.5}}}
    env = chart.env_of(_gateway(values)[1])
    assert env["GATEWAY_FAIR_SHARE__GATEWAY_REPLICAS"]["value"] == "3"
    assert env["GATEWAY_FAIR_SHARE__MAX_WAIT"]["value"] == "5"
    assert env["GATEWAY_FAIR_SHARE__BATCH_FRACTION"]["value"] == "0.5"


def test_the_guard_s_classifier_and_steps_come_from_the_values() -> None:
    env = chart.env_of(_gateway()[1])
    assert env["GATEWAY_GUARD__MODEL"]["value"] == "auto"
    guard = {"model": "shieldgemma-9b", "defaultThreshold": 0.3, "streamCheckChars": 64}
    env = chart.env_of(_gateway({"gateway": {"guard": guard}})[1])
    assert env["GATEWAY_GUARD__MODEL"]["value"] == "shieldgemma-9b"
    assert env["GATEWAY_GUARD__DEFAULT_THRESHOLD"]["value"] == "0.3"
    assert env["GATEWAY_GUARD__STREAM_CHECK_CHARS"]["value"] == "64"


@pytest.mark.parametrize("values", [None, EVERYTHING_ON], ids=["default", "everything-on"])
def test_the_gateway_reads_every_variable_the_chart_sets(
    values: dict | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No GATEWAY_ variable is ignored, and the settings built from them are the chart's."""
    env = chart.env_of(_gateway(values)[1])
    assert unread_names(env) == set()
    settings = settings_from(env, monkeypatch)
    assert settings.upstream_url == env["GATEWAY_UPSTREAM_URL"]["value"]
    assert settings.upstream_read_timeout == 600
    assert settings.limits.max_body_bytes == 20971520
    assert settings.quota.enabled
    redis_url = env["GATEWAY_QUOTA__REDIS_URL"]["value"].replace("$(REDIS_PASSWORD)", "pw")
    assert settings.quota.redis_url == redis_url
    assert settings.quota.redis_url.startswith("redis://")
    assert settings.batches.enabled is (values is EVERYTHING_ON)
    assert settings.ready_capabilities == (
        ["text", "vision"] if values is EVERYTHING_ON else ["text"]
    )


def test_upstream_is_the_rayservice_serve_service() -> None:
    rendered = chart.render()
    rayservice = rendered.one("RayService")["metadata"]["name"]
    env = chart.env_of(_gateway()[1])
    expected = f"http://{rayservice}-serve-svc.{chart.NAMESPACE}.svc:8000"
    assert env["GATEWAY_UPSTREAM_URL"]["value"] == expected


def test_upstream_url_is_required_without_serving() -> None:
    with pytest.raises(helm_python.HelmRenderError, match="upstreamUrl is required"):
        chart.render({"serving": {"enabled": False}})


@pytest.mark.parametrize(
    ("values", "url"),
    [
        ({}, "redis://gemma-gemma-serving-redis.llm.svc:6379/0"),
        (
            {"redis": {"auth": {"existingSecret": "redis-auth"}}},
            "redis://:$(REDIS_PASSWORD)@gemma-gemma-serving-redis.llm.svc:6379/0",
        ),
        (
            {"redis": {"mode": "external", "external": {"url": "redis://10.1.2.3:6379/2"}}},
            "redis://10.1.2.3:6379/2",
        ),
    ],
)
def test_redis_url(values: dict, url: str) -> None:
    env = _gateway(values)[1]["env"]
    names = [e["name"] for e in env]
    redis_url = env[names.index("GATEWAY_QUOTA__REDIS_URL")]
    assert redis_url["value"] == url
    if "REDIS_PASSWORD" in url:
        # $(VAR) expansion only sees variables defined earlier in the list.
        assert names.index("REDIS_PASSWORD") < names.index("GATEWAY_QUOTA__REDIS_URL")


def test_external_redis_url_from_a_secret() -> None:
    values = {"redis": {"mode": "external", "external": {"urlSecret": {"name": "memorystore"}}}}
    rendered = chart.render(values)
    env = chart.env_of(_gateway(values)[1])
    assert env["GATEWAY_QUOTA__REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "memorystore",
        "key": "redis-url",
    }
    assert not rendered.has("StatefulSet")


def test_hpa_pdb_service_and_serviceaccount_target_the_gateway() -> None:
    rendered = chart.render()
    deployment = rendered.one("Deployment", "-gateway")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    pdb = rendered.one("PodDisruptionBudget")
    assert chart.selector_matches(pdb["spec"]["selector"], pod_labels)
    service = rendered.one("Service", "-gateway")
    assert chart.selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels)
    account = rendered.one("ServiceAccount", "-gateway")
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"]
        == (account["metadata"]["name"])
    )
    assert account["automountServiceAccountToken"] is False


def test_without_hpa_the_deployment_sets_replicas() -> None:
    rendered = chart.render({"gateway": {"autoscaling": {"enabled": False}, "replicaCount": 3}})
    assert not rendered.has("HorizontalPodAutoscaler")
    assert rendered.one("Deployment", "-gateway")["spec"]["replicas"] == 3


def test_rolling_update_never_drops_below_capacity() -> None:
    deployment, container = _gateway()
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}


def test_env_wiring_lives_in_one_helper() -> None:
    """Settings names may change: every GATEWAY_ variable is set in _gateway-env.tpl only."""
    templates = chart.CHART / "templates"
    owners = [p.name for p in templates.iterdir() if re.search(r"GATEWAY_|UVICORN_", p.read_text())]
    assert owners == ["_gateway-env.tpl"]
    assert yaml.safe_load((chart.CHART / "values.yaml").read_text())["gateway"]["enabled"]
