"""Refusals a quota means (429) are counted in their own row, never as failures."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.app import create_app
from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.protocol import Limits
from gateway.quotas.settings import QuotaSettings
from gateway.settings import GatewaySettings
from tests.loadtests.run_locust import count, run_locust, stats_rows
from tests.support.servers import serve_in_thread
from tests.support.stub_upstream import StubUpstream


async def _create_keys(settings: QuotaSettings, limits: Limits, n: int) -> list[str]:
    backend = RedisQuotaBackend.from_settings(settings)
    try:
        made = [await backend.keys.create(tenant="loadtest", limits=limits) for _ in range(n)]
    finally:
        await backend.aclose()
    return [secret for secret, _ in made]


def test_quota_refusals_are_counted_apart(redis_url: str, tmp_path: Path) -> None:
    quota = QuotaSettings.model_validate({"redis_url": redis_url, "key_prefix": "lt:"})
    keys = asyncio.run(_create_keys(quota, Limits(requests_per_minute=2), 2))
    with StubUpstream() as stub:
        settings = GatewaySettings.model_validate(
            {"upstream_url": stub.base_url, "quota": quota.model_dump()}
        )
        with serve_in_thread(create_app(settings)) as url:
            done = run_locust(url, tmp_path / "run", env={"GEMMA_LOADTEST_KEYS": ",".join(keys)})
    assert done.returncode == 0, done.stderr[-2000:]
    rows = stats_rows(tmp_path / "run")
    assert count(rows, "QUOTA_429", "Request Count") > 0
    assert 0 < count(rows, "E2E", "Request Count") <= 4
    assert rows[("", "Aggregated")]["Failure Count"] == "0"


def test_refusals_no_quota_meant_are_failures(tmp_path: Path) -> None:
    with StubUpstream() as stub:
        stub.knobs.unavailable = {"gemma-3-270m", "tiny-random-gemma-3-vision"}
        stub.knobs.unavailable |= {"tiny-random-gemma-3n"}
        settings = GatewaySettings.model_validate(
            {"upstream_url": stub.base_url, "quota": {"enabled": False}}
        )
        with serve_in_thread(create_app(settings)) as url:
            done = run_locust(url, tmp_path / "run", seconds=3)
    assert done.returncode != 0
    rows = stats_rows(tmp_path / "run")
    assert count(rows, "E2E", "Failure Count") > 0
    assert count(rows, "QUOTA_429", "Request Count") == 0
