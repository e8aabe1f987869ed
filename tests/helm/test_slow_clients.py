"""The gateway's limits against slow and unauthenticated clients, as the chart sets them."""

from __future__ import annotations

import helm_python
import pytest

from gateway.server.settings import ServerSettings
from gateway.settings import GatewaySettings, RequestLimits
from tests.helm import chart
from tests.helm.gateway_env import settings_from, unread_names

BODY_FIELDS = ("body_bytes_in_flight", "peer_body_bytes_in_flight", "body_timeout")
SERVER_FIELDS = (
    "header_timeout",
    "keep_alive_timeout",
    "unread_body_timeout",
    "max_header_bytes",
    "max_connections",
)


def _env(values: dict | None = None) -> dict:
    deployment = chart.render(values).one("Deployment", "-gateway")
    return chart.env_of(deployment["spec"]["template"]["spec"]["containers"][0])


def _settings(values: dict | None, monkeypatch: pytest.MonkeyPatch) -> GatewaySettings:
    env = _env(values)
    assert unread_names(env) == set()
    return settings_from(env, monkeypatch)


def test_the_charts_defaults_are_the_gateways(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(None, monkeypatch)
    limits, server = RequestLimits.model_validate({}), ServerSettings.model_validate({})
    for name in (*BODY_FIELDS, "body_stall_timeout"):
        assert getattr(settings.limits, name) == getattr(limits, name), name
    for name in SERVER_FIELDS:
        assert getattr(settings.server, name) == getattr(server, name), name


def test_values_reach_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "gateway": {
            "limits": {
                "maxRequestBytes": 1_000_000,
                "bodyBytesInFlight": 300_000_000,
                "peerBodyBytesInFlight": 2_000_000,
                "bodyTimeoutSeconds": 30,
                "bodyStallSeconds": 2.5,
            },
            "server": {
                "headerTimeoutSeconds": 3,
                "keepAliveSeconds": 620,
                "unreadBodySeconds": 1,
                "maxHeaderBytes": 16384,
                "maxConnections": 500,
            },
        }
    }
    settings = _settings(values, monkeypatch)
    assert settings.limits.body_bytes_in_flight == 300_000_000
    assert settings.limits.peer_body_bytes_in_flight == 2_000_000
    assert (settings.limits.body_timeout, settings.limits.body_stall_timeout) == (30, 2.5)
    assert settings.server == ServerSettings(
        header_timeout=3,
        keep_alive_timeout=620,
        unread_body_timeout=1,
        max_header_bytes=16384,
        max_connections=500,
    )


def test_the_schema_refuses_a_zero_timeout() -> None:
    with pytest.raises(helm_python.HelmValuesError, match="headerTimeoutSeconds"):
        chart.render({"gateway": {"server": {"headerTimeoutSeconds": 0}}})
