"""The API key checked from the headers, before a byte of the body is read (plain ASGI)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from gateway import auth
from gateway.app import create_app
from gateway.errors import AuthenticationFailed, QuotaBackendUnavailable
from gateway.header_auth import HeaderAuthMiddleware, needs_key
from gateway.quotas.protocol import ApiKey, KeyStore
from tests.gateway.conftest import gateway_settings
from tests.gateway.test_quota_path import RecordingGate
from tests.support.servers import serve_in_thread
from tests.support.stub_upstream import TEXT_MODEL, StubUpstream

pytestmark = pytest.mark.anyio

SECRET = "sk-header"
KEY = ApiKey("k1", "t1")


class CountingKeys:
    """Knows one secret; counts the lookups; ``down`` makes every lookup a 503."""

    def __init__(self) -> None:
        self.lookups = 0
        self.down = False

    async def authenticate(self, secret: str) -> ApiKey:
        self.lookups += 1
        if self.down:
            raise QuotaBackendUnavailable("The key store is unreachable.")
        if secret != SECRET:
            raise AuthenticationFailed("Unknown API key.")
        return KEY


class Recorder:
    """An ASGI app that answers 204 and records the key the middleware left in the scope."""

    def __init__(self) -> None:
        self.keys: list[ApiKey | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.keys.append(auth.remembered(scope))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def unreadable() -> Message:
    raise AssertionError("the body was read")


def scope_for(path: str, authorization: str | None = None) -> dict[str, Any]:
    headers = [(b"content-length", b"1000000")]
    if authorization is not None:
        headers.append((b"authorization", authorization.encode()))
    return {"type": "http", "method": "POST", "path": path, "headers": headers}


async def call(
    keys: KeyStore, path: str, authorization: str | None = None
) -> tuple[Recorder, list[Message]]:
    app, sent = Recorder(), []

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = HeaderAuthMiddleware(app, keys=lambda: keys)
    await middleware(scope_for(path, authorization), unreadable, send)
    return app, sent


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic abc", "Bearer "])
async def test_a_request_without_a_valid_key_is_refused_before_its_body(
    authorization: str | None,
) -> None:
    keys = CountingKeys()
    app, sent = await call(keys, "/v1/chat/completions", authorization)
    assert app.keys == []
    assert sent[0]["status"] == 401
    body = json.loads(sent[1]["body"])
    assert body["error"]["type"] == "authentication_error"


async def test_a_valid_key_is_kept_in_the_scope_for_the_handlers() -> None:
    app, sent = await call(CountingKeys(), "/v1/files", f"Bearer {SECRET}")
    assert app.keys == [KEY]
    assert sent[0]["status"] == 204


async def test_a_key_store_that_cannot_answer_is_a_503_before_the_body() -> None:
    keys = CountingKeys()
    keys.down = True
    app, sent = await call(keys, "/v1/completions", f"Bearer {SECRET}")
    assert (app.keys, sent[0]["status"]) == ([], 503)


@pytest.mark.parametrize(
    "path", ["/v1/models", "/v1/models/gemma-3-270m", "/healthz", "/admin/keys"]
)
async def test_public_and_non_api_paths_pass_without_a_key(path: str) -> None:
    keys = CountingKeys()
    app, sent = await call(keys, path)
    assert (app.keys, sent[0]["status"], keys.lookups) == ([None], 204, 0)


async def test_without_keys_nothing_is_checked() -> None:
    app, sent = await call(auth.AnonymousKeys(), "/v1/chat/completions")
    assert (app.keys, sent[0]["status"]) == ([None], 204)


def test_which_paths_need_a_key() -> None:
    needing = ["/v1/chat/completions", "/v1/batches/b1/cancel", "/v1/modelsx"]
    assert [needs_key(p) for p in needing] == [True, True, True]
    assert [needs_key(p) for p in ("/v1/models", "/metrics")] == [False, False]


async def test_authenticate_reuses_the_key_the_headers_gave() -> None:
    keys = CountingKeys()
    scope: dict[str, Any] = scope_for("/v1/completions")
    auth.remember(scope, KEY)
    assert await auth.authenticate(Request(scope), keys) == KEY
    assert keys.lookups == 0


@pytest.fixture
def keyed_gateway(stub: StubUpstream) -> Iterator[tuple[str, CountingKeys]]:
    keys = CountingKeys()
    settings = gateway_settings(stub.base_url, quota={"enabled": True})
    app = create_app(settings, key_store=keys, quota_gate=RecordingGate())
    with serve_in_thread(app) as url:
        yield url, keys


def test_a_keyed_request_is_authenticated_once(keyed_gateway: tuple[str, CountingKeys]) -> None:
    url, keys = keyed_gateway
    chat = {"model": TEXT_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {SECRET}"}
    answer = httpx.post(f"{url}/v1/chat/completions", json=chat, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert keys.lookups == 1
    refused = httpx.post(f"{url}/v1/chat/completions", content=b"{not json", timeout=30)
    assert refused.status_code == 401  # the key is checked before the body is parsed
    metrics = httpx.get(f"{url}/metrics", timeout=30).text
    counted = [line for line in metrics.splitlines() if 'status="401"' in line]
    assert [line for line in counted if 'route="/v1/chat/completions"' in line], counted
