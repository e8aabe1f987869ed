"""The locustfile, run headless for a few seconds through the gateway against the real stack."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from gateway.app import create_app
from gateway.settings import GatewaySettings
from loadtests.mix import parse_mix
from serving.runner import LocalServing
from tests.loadtests.run_locust import MIX, Rows, count, run_locust, stats_rows
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.integration

STREAMED = ("stream", "tools", "image", "audio")


@pytest.fixture(scope="module")
def gateway_url(serve_stack: LocalServing) -> Iterator[str]:
    upstream = re.sub(r"/v1/?$", "", serve_stack.base_url)
    settings = GatewaySettings.model_validate(
        {"upstream_url": upstream, "quota": {"enabled": False}}
    )
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def rows(gateway_url: str, tmp_path_factory: pytest.TempPathFactory) -> Rows:
    csv_prefix = tmp_path_factory.mktemp("locust-e2e") / "run"
    env = {"GEMMA_LOADTEST_MAX_TOKENS": "8"}
    users = len(parse_mix(MIX))  # each opens with a different capability
    done = run_locust(gateway_url, csv_prefix, seconds=20, users=users, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return stats_rows(csv_prefix)


def test_token_timings_recorded_against_the_engines(rows: Rows) -> None:
    for kind in ("TTFT", "TPOT", "E2E", "TOKENS/S"):
        assert count(rows, kind, "Request Count") > 0, (kind, sorted(rows))


def test_no_request_failed(rows: Rows) -> None:
    assert rows[("", "Aggregated")]["Failure Count"] == "0"
    assert count(rows, "QUOTA_429", "Request Count") == 0


def test_every_capability_is_reported_with_first_tokens_when_streamed(rows: Rows) -> None:
    assert {name for (kind, name) in rows if kind == "E2E"} == set(parse_mix(MIX))
    assert {name for (kind, name) in rows if kind == "TTFT"} == set(STREAMED)
    assert {name for (kind, name) in rows if kind == "TPOT"} == set(STREAMED)
