"""The locustfile, run headless for a few seconds against the gateway in front of the stub."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.loadtests.run_locust import Rows, count, run_locust, stats_rows
from tests.support.servers import serve_in_thread
from tests.support.stub_upstream import StubUpstream

STREAMED = ("stream", "tools", "image", "audio")


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Rows:
    csv_prefix = tmp_path_factory.mktemp("locust") / "run"
    with StubUpstream() as stub:
        settings = GatewaySettings.model_validate(
            {"upstream_url": stub.base_url, "quota": {"enabled": False}}
        )
        with serve_in_thread(create_app(settings)) as url:
            done = run_locust(url, csv_prefix)
    assert done.returncode == 0, done.stderr[-2000:]
    return stats_rows(csv_prefix)


def test_token_timings_are_recorded_as_request_events(rows: Rows) -> None:
    for kind in ("TTFT", "TPOT", "E2E", "TOKENS/S"):
        assert count(rows, kind, "Request Count") > 0, (kind, sorted(rows))


def test_no_request_failed(rows: Rows) -> None:
    assert count(rows, "E2E", "Failure Count") == 0
    assert rows[("", "Aggregated")]["Failure Count"] == "0"


def test_every_capability_of_the_mix_is_sent(rows: Rows) -> None:
    assert {name for (kind, name) in rows if kind == "E2E"} == {"chat", *STREAMED}


def test_only_streamed_capabilities_report_first_token_times(rows: Rows) -> None:
    assert {name for (kind, name) in rows if kind == "TTFT"} == set(STREAMED)
    assert {name for (kind, name) in rows if kind == "TPOT"} == set(STREAMED)


def test_a_shape_from_the_environment_drives_and_ends_the_run(tmp_path: Path) -> None:
    shape = {
        "GEMMA_LOADTEST_SHAPE": "step",
        "GEMMA_LOADTEST_USERS": "2",
        "GEMMA_LOADTEST_STEP_USERS": "1",
        "GEMMA_LOADTEST_STEP_SECONDS": "1",
    }
    with StubUpstream() as stub:
        settings = GatewaySettings.model_validate(
            {"upstream_url": stub.base_url, "quota": {"enabled": False}}
        )
        with serve_in_thread(create_app(settings)) as url:
            done = run_locust(url, tmp_path / "run", seconds=60, env=shape)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Shape test stopping" in done.stderr + done.stdout
    assert count(stats_rows(tmp_path / "run"), "TTFT", "Request Count") > 0
