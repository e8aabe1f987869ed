"""A memory-heavy job beside the running stack: no replica restarts, the gateway keeps answering.

``benchmarks/memory_pressure.py`` runs against the session's stack: a child process (at OOM
score +500, as ``make unit`` runs its tests) takes the host's free memory down to a few
percent and holds it, past the 95% at which Ray's memory monitor would otherwise kill Ray's
workers, while the gateway is asked for a chat each second. Every engine replica and
engine process alive before is alive after, and none was added.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from benchmarks.memory_pressure import run
from gateway.app import create_app
from gateway.settings import GatewaySettings
from serving.runner import LocalServing
from tests.integration.conftest import TEXT_MODEL
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.integration

HOLD_S = 20.0


@pytest.fixture(scope="module")
def gateway_url(serve_stack: LocalServing) -> Iterator[str]:
    root = serve_stack.base_url.removesuffix("/v1")
    settings = GatewaySettings.model_validate({"upstream_url": root, "quota": {"enabled": False}})
    with serve_in_thread(create_app(settings)) as url:
        yield url


def test_a_memory_heavy_job_leaves_every_replica_in_place(gateway_url: str) -> None:
    args = argparse.Namespace(gateway=gateway_url, key="unused", left_free=0.035, hold=HOLD_S)
    result = run(args)
    assert result["engine_processes_before"] > 0, result
    assert result["job_held_gb"] > 0, result
    assert result["lowest_free_fraction"] < 0.05, result
    assert result["chats_failed"] == 0, result
    assert result["chats_answered"] >= HOLD_S / 4, result
    assert result["served_by"] == [TEXT_MODEL]
    assert result["killed_or_restarted"] == [], result
    assert result["new"] == [], result
