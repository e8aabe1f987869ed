"""Request bodies within their size, bytes in flight and deadlines (plain ASGI)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pydantic
import pytest
from starlette.types import Message, Receive, Scope, Send

from gateway import auth
from gateway.body_limit import BodyLimitMiddleware
from gateway.errors import RequestTimeout
from gateway.quotas.protocol import ApiKey
from gateway.settings import RequestLimits

pytestmark = pytest.mark.anyio

KIB = 1024
UPLOADS = "/v1/files"


def limits(**overrides: Any) -> RequestLimits:
    values = {
        "max_body_bytes": 4 * KIB,
        "peer_body_bytes_in_flight": 8 * KIB,
        "body_bytes_in_flight": 16 * KIB,
        "body_timeout": 5.0,
        "body_stall_timeout": 5.0,
    }
    return RequestLimits.model_validate({**values, **overrides})


class Echo:
    """Reads the whole body, answers 200 with its length; ``hold`` keeps it until set."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.hold = anyio.Event()
        self.hold.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await self.hold.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})


def scope_for(
    *, length: int | None, client: str = "10.0.0.1", key: ApiKey | None = None, path: str = "/v1/x"
) -> dict[str, Any]:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": path,
        "headers": headers,
        "client": (client, 50000),
    }
    if key is not None:
        auth.remember(scope, key)
    return scope


def chunks(*parts: bytes, gap: float = 0.0) -> Receive:
    """A client sending ``parts`` with ``gap`` seconds before each, then waiting to hang up."""
    pending = list(parts)

    async def receive() -> Message:
        if not pending:
            await anyio.sleep_forever()
        await anyio.sleep(gap)
        body = pending.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    return receive


class Answer:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def send(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])

    @property
    def error(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.messages[1]["body"])["error"]
        return body


async def run(middleware: BodyLimitMiddleware, scope: dict[str, Any], receive: Receive) -> Answer:
    answer = Answer()
    await middleware(scope, receive, answer.send)
    return answer


async def test_a_body_within_the_limits_reaches_the_app_whole() -> None:
    app = Echo()
    middleware = BodyLimitMiddleware(app, limits=limits())
    answer = await run(middleware, scope_for(length=None), chunks(b"ab", b"cd", b"e"))
    assert (answer.status, app.bodies) == (200, [b"abcde"])
    assert (middleware.budget.held, middleware.budget.by_peer) == (0, {})


async def test_a_declared_body_over_the_limit_is_refused_unread() -> None:
    async def unreadable() -> Message:
        raise AssertionError("the body was read")

    middleware = BodyLimitMiddleware(Echo(), limits=limits())
    answer = await run(middleware, scope_for(length=4 * KIB + 1), unreadable)
    assert (answer.status, answer.error["code"]) == (413, "payload_too_large")


async def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives() -> None:
    middleware = BodyLimitMiddleware(Echo(), limits=limits())
    answer = await run(middleware, scope_for(length=None), chunks(b"x" * 3 * KIB, b"x" * 2 * KIB))
    assert answer.status == 413


async def test_one_unauthenticated_client_holds_its_share_at_most() -> None:
    app = Echo()
    app.hold = anyio.Event()
    middleware = BodyLimitMiddleware(app, limits=limits())
    answers: list[Answer] = []

    async def upload(client: str, size: int) -> None:
        scope = scope_for(length=size, client=client)
        answers.append(await run(middleware, scope, chunks(b"x" * size)))

    async with anyio.create_task_group() as group:
        for _ in range(2):
            group.start_soon(upload, "10.0.0.1", 4 * KIB)
        await anyio.wait_all_tasks_blocked()
        assert middleware.budget.by_peer == {"10.0.0.1": 8 * KIB}
        refused = await run(middleware, scope_for(length=1, client="10.0.0.1"), chunks(b"x"))
        group.start_soon(upload, "10.0.0.2", 1)
        await anyio.wait_all_tasks_blocked()
        assert middleware.budget.by_peer == {"10.0.0.1": 8 * KIB, "10.0.0.2": 1}
        app.hold.set()
    assert (refused.status, refused.error["code"]) == (429, "peer_body_bytes_in_flight")
    assert refused.headers[b"retry-after"] == b"1"
    assert [a.status for a in answers] == [200, 200, 200]
    assert (middleware.budget.held, middleware.budget.by_peer) == (0, {})


async def test_all_requests_together_hold_the_total_at_most() -> None:
    app = Echo()
    app.hold = anyio.Event()
    middleware = BodyLimitMiddleware(app, limits=limits())
    key = ApiKey("k1", "t1")

    async def upload() -> None:
        scope = scope_for(length=4 * KIB, key=key)  # a keyed request has no per-client share
        assert (await run(middleware, scope, chunks(b"x" * 4 * KIB))).status == 200

    async with anyio.create_task_group() as group:
        for _ in range(4):
            group.start_soon(upload)
        await anyio.wait_all_tasks_blocked()
        assert (middleware.budget.held, middleware.budget.by_peer) == (16 * KIB, {})
        refused = await run(middleware, scope_for(length=1, key=key), chunks(b"x"))
        app.hold.set()
    assert (refused.status, refused.error["code"]) == (503, "body_bytes_in_flight")
    assert refused.headers[b"retry-after"] == b"1"
    assert middleware.budget.held == 0


async def test_a_chunked_body_takes_its_bytes_as_they_arrive() -> None:
    middleware = BodyLimitMiddleware(Echo(), limits=limits(peer_body_bytes_in_flight=4 * KIB))
    middleware.budget.by_peer["10.0.0.1"] = 3 * KIB  # another request of the same client
    middleware.budget.held = 3 * KIB
    answer = await run(middleware, scope_for(length=None), chunks(b"x" * KIB, b"x"))
    assert answer.status == 429
    assert middleware.budget.by_peer == {"10.0.0.1": 3 * KIB}


async def test_a_stalled_body_is_a_408_that_closes_the_connection() -> None:
    middleware = BodyLimitMiddleware(Echo(), limits=limits(body_stall_timeout=0.2))
    with anyio.fail_after(5):
        answer = await run(middleware, scope_for(length=10), chunks(b"x", b"y", gap=0.5))
    assert (answer.status, answer.error["code"]) == (408, "request_timeout")
    assert answer.headers[b"connection"] == b"close"
    assert "paused" in answer.error["message"]
    assert middleware.budget.held == 0


async def test_a_trickled_body_is_cut_at_its_deadline() -> None:
    middleware = BodyLimitMiddleware(
        Echo(), limits=limits(body_timeout=0.5, body_stall_timeout=0.3)
    )
    started = anyio.current_time()
    with anyio.fail_after(5):
        answer = await run(middleware, scope_for(length=100), chunks(*[b"x"] * 100, gap=0.1))
    assert answer.status == 408
    assert "did not arrive within 0.5 s" in answer.error["message"]
    assert anyio.current_time() - started < 1.0


async def test_after_its_body_the_app_may_wait_for_a_hang_up_as_long_as_it_likes() -> None:
    seen: list[Message] = []

    async def listens(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(await receive())
        seen.append(await receive())  # the client's hang-up, later than any body deadline

    async def client() -> Message:
        if seen:
            await anyio.sleep(0.5)
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": b"x", "more_body": False}

    middleware = BodyLimitMiddleware(listens, limits=limits(body_stall_timeout=0.1))
    await run(middleware, scope_for(length=1), client)
    assert [m["type"] for m in seen] == ["http.request", "http.disconnect"]


async def test_an_upload_streamed_by_its_route_has_the_same_deadlines() -> None:
    raised: list[BaseException] = []

    async def streams(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            while (await receive()).get("more_body"):
                pass
        except RequestTimeout as exc:
            raised.append(exc)

    middleware = BodyLimitMiddleware(
        streams, limits=limits(body_stall_timeout=0.1), exempt_paths=(UPLOADS,)
    )
    scope = scope_for(length=100 * KIB, path=UPLOADS)  # over max_body_bytes: the route's own
    await run(middleware, scope, chunks(b"x" * 8 * KIB, b"x", gap=0.3))
    [timeout] = raised
    assert "paused" in str(timeout)
    assert middleware.budget.held == 0


def test_a_budget_smaller_than_one_body_is_refused_at_startup() -> None:
    with pytest.raises(pydantic.ValidationError, match="at least one body"):
        RequestLimits.model_validate({"max_body_bytes": 80 * 1024 * KIB})
