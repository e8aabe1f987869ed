"""The quota seam in the request path: authenticate, admit the serving model, settle once."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.app import create_app
from gateway.errors import AuthenticationFailed
from gateway.quotas.protocol import Admission, ApiKey
from tests.gateway.conftest import gateway_settings
from tests.support.servers import serve_in_thread
from tests.support.stub_upstream import StubUpstream

SECRET = "sk-test"
USER = {"role": "user", "content": "hi"}


class Keys:
    async def authenticate(self, secret: str) -> ApiKey:
        if secret != SECRET:
            raise AuthenticationFailed("Unknown API key.")
        return ApiKey("k1", "t1", allowed_capabilities=frozenset({"text", "vision"}))


class RecordingGate:
    """Records every call made through the ``QuotaGate`` protocol."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    async def admit(self, key: ApiKey, model: str, reserve_tokens: int) -> Admission:
        self.calls.append(("admit", model, reserve_tokens))
        return Admission(
            key.key_id, model, "lease-1", reserve_tokens, {"x-ratelimit-limit-requests": "10"}
        )

    async def renew(self, admission: Admission) -> None:
        self.calls.append(("renew", admission.model, 0))

    async def settle(self, admission: Admission, used_tokens: int) -> None:
        self.calls.append(("settle", admission.model, used_tokens))

    async def release(self, admission: Admission) -> None:
        self.calls.append(("release", admission.model, 0))

    async def healthy(self) -> bool:
        return True


@pytest.fixture
def gate() -> RecordingGate:
    return RecordingGate()


@pytest.fixture
def client(stub: StubUpstream, gate: RecordingGate) -> Iterator[httpx.Client]:
    settings = gateway_settings(stub.base_url, quota={"enabled": True, "default_max_tokens": 100})
    app = create_app(settings, key_store=Keys(), quota_gate=gate)
    with (
        serve_in_thread(app) as url,
        httpx.Client(
            base_url=url, timeout=30, headers={"authorization": f"Bearer {SECRET}"}
        ) as http,
    ):
        yield http


def finishes(gate: RecordingGate) -> list[tuple[str, str, int]]:
    return [c for c in gate.calls if c[0] in ("settle", "release")]


def test_missing_and_wrong_keys_are_401(client: httpx.Client) -> None:
    body = {"model": "auto", "messages": [USER]}
    for headers in ({"authorization": ""}, {"authorization": "Bearer nope"}):
        response = client.post("/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


def test_capability_not_allowed_is_403(client: httpx.Client) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    response = client.post(
        "/v1/chat/completions", json={"model": "auto", "messages": [USER], "tools": tools}
    )
    assert response.status_code == 403


def test_admit_then_settle_real_usage_once(client: httpx.Client, gate: RecordingGate) -> None:
    response = client.post(
        "/v1/chat/completions", json={"model": "auto", "messages": [USER], "max_tokens": 20}
    )
    assert response.headers["x-ratelimit-limit-requests"] == "10"
    admit = gate.calls[0]
    assert admit[:2] == ("admit", "gemma-3-270m")
    assert admit[2] > 20
    assert finishes(gate) == [("settle", "gemma-3-270m", 12)]


def test_stream_settles_with_usage_once(client: httpx.Client, gate: RecordingGate) -> None:
    body = {"model": "auto", "messages": [USER], "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.read().endswith(b"data: [DONE]\n\n")
    assert gate.calls[0][2] >= 100  # default_max_tokens reserved
    assert finishes(gate) == [("settle", "gemma-3-270m", 12)]


def test_media_refused_after_admission_releases_it(
    client: httpx.Client, gate: RecordingGate
) -> None:
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    body = {"model": "auto", "messages": [{"role": "user", "content": [part]}]}
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_image"
    assert [c[0] for c in gate.calls] == ["admit", "release"]


def test_fallback_releases_the_failed_admission(
    client: httpx.Client, gate: RecordingGate, stub: StubUpstream
) -> None:
    stub.knobs.unavailable = {"gemma-3-270m"}
    stub.cards[2]["metadata"]["capabilities"] = ["text", "vision"]
    response = client.post("/v1/chat/completions", json={"model": "auto", "messages": [USER]})
    assert response.headers["x-gemma-model"] == "tiny-random-gemma-3-vision"
    assert finishes(gate) == [
        ("release", "gemma-3-270m", 0),
        ("settle", "tiny-random-gemma-3-vision", 12),
    ]
