"""``GET /metrics`` moves by exactly the requests sent: counts, latencies, tokens, refusals."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.errors import RateLimited
from gateway.quotas.protocol import Admission, ApiKey
from tests.gateway.conftest import gateway_settings
from tests.gateway.tracing_support import SECRET, Keys
from tests.support.servers import serve_in_thread
from tests.support.stub_upstream import TEXT_MODEL, VISION_MODEL, StubUpstream

CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "hi"}]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class RefusingGate:
    """Admits everything except requests for the models in ``refuse``."""

    def __init__(self) -> None:
        self.refuse: set[str] = set()

    async def admit(self, key: ApiKey, model: str, reserve_tokens: int) -> Admission:
        if model in self.refuse:
            raise RateLimited("Too many requests.", retry_after=1.0)
        return Admission(key.key_id, model, "lease", reserve_tokens)

    async def renew(self, admission: Admission) -> None:
        return None

    async def settle(self, admission: Admission, used_tokens: int) -> None:
        return None

    async def release(self, admission: Admission) -> None:
        return None

    async def healthy(self) -> bool:
        return True


@pytest.fixture
def gate() -> RefusingGate:
    return RefusingGate()


@pytest.fixture
def client(stub: StubUpstream, gate: RefusingGate) -> Iterator[httpx.Client]:
    settings = gateway_settings(stub.base_url, quota={"enabled": True})
    app = create_app(settings, key_store=Keys(), quota_gate=gate)
    with (
        serve_in_thread(app) as url,
        httpx.Client(
            base_url=url, timeout=30, headers={"authorization": f"Bearer {SECRET}"}
        ) as http,
    ):
        yield http


def _samples(client: httpx.Client) -> Samples:
    text = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _delta(before: Samples, after: Samples) -> Samples:
    keys = set(before) | set(after)
    moved = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in keys}
    return {k: v for k, v in moved.items() if v and not k[0].endswith("_created")}


def _value(delta: Samples, name: str, **labels: str) -> float:
    return delta.get((name, tuple(sorted(labels.items()))), 0.0)


def _send_mix(client: httpx.Client, stub: StubUpstream, gate: RefusingGate) -> None:
    for _ in range(2):
        assert client.post(CHAT, json={"model": TEXT_MODEL, "messages": USER}).status_code == 200
    body = {"model": TEXT_MODEL, "messages": USER, "stream": True}
    with client.stream("POST", CHAT, json=body) as response:
        assert response.status_code == 200
        response.read()
    completion = {"model": TEXT_MODEL, "prompt": "hi"}
    assert client.post("/v1/completions", json=completion).status_code == 200
    assert client.post(CHAT, json={"model": "nope", "messages": USER}).status_code == 404
    gate.refuse = {TEXT_MODEL}
    assert client.post(CHAT, json={"model": TEXT_MODEL, "messages": USER}).status_code == 429
    gate.refuse = set()
    stub.knobs.unavailable = {TEXT_MODEL}
    assert client.post(CHAT, json={"model": "auto", "messages": USER}).status_code == 200


def test_metrics_move_by_exactly_the_requests_sent(
    client: httpx.Client, stub: StubUpstream, gate: RefusingGate
) -> None:
    before = _samples(client)
    _send_mix(client, stub, gate)
    delta = _delta(before, _samples(client))

    requests = "gateway_requests_total"
    chat = {"route": CHAT, "capability": "text"}
    assert _value(delta, requests, **chat, model=TEXT_MODEL, status="200") == 3
    assert _value(delta, requests, **chat, model=VISION_MODEL, status="200") == 1
    assert _value(delta, requests, **chat, model="none", status="404") == 1
    assert _value(delta, requests, **chat, model="none", status="429") == 1
    completions = {"route": "/v1/completions", "capability": "text", "status": "200"}
    assert _value(delta, requests, **completions, model=TEXT_MODEL) == 1
    assert sum(v for k, v in delta.items() if k[0] == requests) == 7

    count = "gateway_request_duration_seconds_count"
    assert _value(delta, count, route=CHAT, model=TEXT_MODEL) == 3
    assert sum(v for k, v in delta.items() if k[0] == count) == 7
    ttft = "gateway_time_to_first_token_seconds_count"
    assert _value(delta, ttft, route=CHAT, model=TEXT_MODEL, priority_class="standard") == 1
    assert sum(v for k, v in delta.items() if k[0] == ttft) == 1

    # the stub reports 7 prompt and 5 completion tokens per answer
    assert _value(delta, "gateway_tokens_total", model=TEXT_MODEL, direction="in") == 4 * 7
    assert _value(delta, "gateway_tokens_total", model=TEXT_MODEL, direction="out") == 4 * 5
    assert _value(delta, "gateway_tokens_total", model=VISION_MODEL, direction="out") == 5
    rejections = "gateway_quota_rejections_total"
    assert _value(delta, rejections, reason="rate_limit_exceeded") == 1
    assert sum(v for k, v in delta.items() if k[0] == rejections) == 1
    failed = {"model": TEXT_MODEL, "kind": "unavailable"}
    assert _value(delta, "gateway_upstream_errors_total", **failed) == 1
    assert _value(delta, "gateway_fallbacks_total", requested="auto", failed=TEXT_MODEL) == 1
    assert not [k for k in delta if k[0] == "gateway_streams_in_flight"]

    # the same requests and tokens by the key's tenant; the 404 was refused after the key
    tenant = "gateway_tenant_requests_total"
    assert _value(delta, tenant, tenant="tenant-1", model=TEXT_MODEL, status="200") == 4
    assert _value(delta, tenant, tenant="tenant-1", model=VISION_MODEL, status="200") == 1
    assert _value(delta, tenant, tenant="tenant-1", model="none", status="404") == 1
    assert _value(delta, tenant, tenant="tenant-1", model="none", status="429") == 1
    assert sum(v for k, v in delta.items() if k[0] == tenant) == 7
    tokens = "gateway_tenant_tokens_total"
    assert _value(delta, tokens, tenant="tenant-1", model=TEXT_MODEL, direction="out") == 4 * 5
    assert _value(delta, tokens, tenant="tenant-1", model=VISION_MODEL, direction="in") == 7


def test_a_request_without_a_key_counts_under_no_tenant(client: httpx.Client) -> None:
    before = _samples(client)
    body = {"model": TEXT_MODEL, "messages": USER}
    assert (
        client.post(CHAT, json=body, headers={"authorization": "Bearer wrong"}).status_code == 401
    )
    delta = _delta(before, _samples(client))
    tenant = "gateway_tenant_requests_total"
    assert _value(delta, tenant, tenant="none", model="none", status="401") == 1
    assert sum(v for k, v in delta.items() if k[0] == tenant) == 1
