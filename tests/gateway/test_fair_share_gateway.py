"""The gateway holds requests past a model's published slots, by class, with a bounded wait."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest

from gateway.app import create_app
from tests.gateway.conftest import gateway_settings
from tests.support.servers import serve_in_thread
from tests.support.stub_upstream import ADAPTER, TEXT_MODEL, StubUpstream

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def one_slot(stub: StubUpstream) -> StubUpstream:
    """The text model publishes one slot (its adapter runs on the same engine)."""
    for card in stub.cards:
        if card["id"] in (TEXT_MODEL, ADAPTER):
            card["metadata"]["engine_slots"] = 1
    return stub


@pytest.fixture
def gateway(one_slot: StubUpstream) -> Iterator[str]:
    settings = gateway_settings(one_slot.base_url, fair_share={"max_wait": 0.5})
    with serve_in_thread(create_app(settings)) as url:
        yield url


async def _arrived(stub: StubUpstream) -> None:
    """Until the stub has received a request."""
    for _ in range(500):
        if stub.requests:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no request reached the upstream")


async def _stream(client: httpx.AsyncClient, model: str) -> int:
    body = {"model": model, "messages": USER, "stream": True}
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        await response.aread()
        return response.status_code


async def test_a_request_past_the_slots_reaches_the_engine_when_the_slot_frees(
    gateway: str, one_slot: StubUpstream
) -> None:
    one_slot.knobs.chunk_delay = 0.05  # a stream holds its slot for about 0.25 s
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        first = asyncio.create_task(_stream(client, TEXT_MODEL))
        await _arrived(one_slot)
        second = asyncio.create_task(_stream(client, ADAPTER))  # same engine, same slot
        await asyncio.sleep(0.1)
        assert len(one_slot.requests) == 1  # the second waits in the gateway
        assert not first.done()
        assert await first == 200
        assert await second == 200
        assert len(one_slot.requests) == 2
        metrics = (await client.get("/metrics")).text
    waited = re.search(
        r'gateway_queue_time_seconds_count\{model="gemma-3-270m",priority_class="standard"\} (\S+)',
        metrics,
    )
    assert waited is not None
    assert float(waited.group(1)) == 2


async def test_a_request_that_waits_too_long_gets_503_with_retry_after_and_nothing_is_lost(
    gateway: str, one_slot: StubUpstream
) -> None:
    one_slot.knobs.hang = {TEXT_MODEL}
    body = {"model": TEXT_MODEL, "messages": USER}
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        held = asyncio.create_task(client.post("/v1/chat/completions", json=body))
        await _arrived(one_slot)
        refused = await client.post("/v1/chat/completions", json=body)
        assert refused.status_code == 503
        assert refused.headers["retry-after"]
        assert refused.json()["error"]["code"] == "engine_saturated"
        assert len(one_slot.requests) == 1
        held.cancel()  # the client leaves: its slot frees
        await asyncio.gather(held, return_exceptions=True)
        one_slot.knobs.hang = set()
        for _ in range(50):
            answer = await client.post("/v1/chat/completions", json=body)
            if answer.status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert answer.status_code == 200
