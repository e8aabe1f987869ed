"""Keys and quotas through the gateway, on a real Redis, in front of the stub upstream.

Keys are created through the admin API and used with the ``openai`` client; each
test keeps its counters under its own key prefix on the shared Redis, or on the
private ``redis_server`` when it stops and restarts Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import anyio
import httpx
import openai
import pytest
from openai import OpenAI

from gateway.app import create_app
from gateway.priority import PriorityClass, engine_priority
from tests.gateway.conftest import gateway_settings
from tests.support.redis_server import RedisServer
from tests.support.servers import serve_in_thread
from tests.support.shared_redis import SHARED_REDIS_URL, unique_prefix
from tests.support.stub_upstream import ANSWER, TEXT_MODEL, VISION_MODEL, StubUpstream

ADMIN = "admin-secret-for-tests"
USER = {"role": "user", "content": "hi"}
CHAT = {"model": TEXT_MODEL, "messages": [USER], "max_tokens": 10}

Serve = Callable[..., AbstractContextManager[httpx.Client]]


@pytest.fixture
def key_prefix() -> Iterator[str]:
    """A prefix no other test uses; its keys are deleted afterwards (never a FLUSH)."""
    with unique_prefix("gw-quota") as prefix:
        yield prefix


@pytest.fixture
def serve(stub: StubUpstream, key_prefix: str) -> Serve:
    """Start a gateway with quotas on Redis; yields an httpx client for it."""

    @contextmanager
    def start(**quota: Any) -> Iterator[httpx.Client]:
        values = {"redis_url": SHARED_REDIS_URL, "key_prefix": key_prefix, "timeout": 1.0}
        settings = gateway_settings(stub.base_url, quota={**values, **quota}, admin_key=ADMIN)
        with (
            serve_in_thread(create_app(settings)) as url,
            httpx.Client(base_url=url, timeout=30) as client,
        ):
            yield client

    return start


@pytest.fixture
def http(serve: Serve) -> Iterator[httpx.Client]:
    with serve() as client:
        yield client


def create_key(http: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = http.post(
        "/admin/keys", json={"tenant": "t1", **body}, headers={"authorization": f"Bearer {ADMIN}"}
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


def openai_client(http: httpx.Client, secret: str) -> OpenAI:
    return OpenAI(
        base_url=str(http.base_url).rstrip("/") + "/v1", api_key=secret, max_retries=0, timeout=30
    )


def remaining_tokens(response: httpx.Response) -> int:
    return int(response.headers["x-ratelimit-remaining-tokens"])


def test_key_created_through_the_admin_api_works_with_the_openai_client(
    http: httpx.Client,
) -> None:
    key = create_key(http, limits={"requests_per_minute": 10, "tokens_per_minute": 10_000})
    with openai_client(http, key["key"]) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=TEXT_MODEL, messages=[USER], max_tokens=10
        )
        answer = raw.parse()
        chunks = list(client.chat.completions.create(model="auto", messages=[USER], stream=True))
    assert answer.choices[0].message.content == ANSWER
    assert raw.headers["x-ratelimit-limit-requests"] == "10"
    assert raw.headers["x-ratelimit-remaining-requests"] == "9"
    assert raw.headers["x-ratelimit-limit-tokens"] == "10000"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip() == ANSWER


def test_each_request_reaches_the_engine_with_its_keys_class_priority(
    http: httpx.Client, stub: StubUpstream
) -> None:
    for priority_class in PriorityClass:
        key = create_key(http, priority_class=priority_class.value)
        with openai_client(http, key["key"]) as client:
            client.chat.completions.create(model=TEXT_MODEL, messages=[USER], max_tokens=4)
            client.completions.create(model=TEXT_MODEL, prompt="hi", max_tokens=4)
        sent = [body["priority"] for _, body in stub.requests[-2:]]
        assert sent == [engine_priority(priority_class)] * 2
    # A client cannot pick its own priority: the field is not one it may send.
    key = create_key(http, priority_class="batch")
    with openai_client(http, key["key"]) as client, pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model=TEXT_MODEL, messages=[USER], extra_body={"priority": -100}
        )
    assert bad.value.body["param"] == "priority"  # type: ignore[index]


def test_unknown_and_revoked_keys_are_refused_with_401(http: httpx.Client) -> None:
    key = create_key(http)
    unknown_client = openai_client(http, "gsk-" + "x" * 43)
    with unknown_client, pytest.raises(openai.AuthenticationError) as unknown:
        unknown_client.chat.completions.create(model=TEXT_MODEL, messages=[USER])
    assert unknown.value.status_code == 401
    assert http.post("/v1/chat/completions", json=CHAT, headers=bearer(key["key"])).is_success

    revoked = http.post(
        f"/admin/keys/{key['id']}/revoke", headers={"authorization": f"Bearer {ADMIN}"}
    )
    assert revoked.json()["revoked_at"] is not None
    answer = http.post("/v1/chat/completions", json=CHAT, headers=bearer(key["key"]))
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "authentication_error"
    missing = http.post("/v1/chat/completions", json=CHAT)
    assert missing.status_code == 401


def test_a_model_the_key_may_not_use_is_refused_with_403(
    http: httpx.Client, stub: StubUpstream
) -> None:
    key = create_key(http, allowed_models=[VISION_MODEL])
    with openai_client(http, key["key"]) as client:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            client.chat.completions.create(model=TEXT_MODEL, messages=[USER])
        allowed = client.chat.completions.create(model=VISION_MODEL, messages=[USER])
    assert refused.value.status_code == 403
    assert allowed.model == VISION_MODEL
    assert [body["model"] for _, body in stub.requests] == [VISION_MODEL]


def test_a_capability_the_key_may_not_use_is_refused_with_403(http: httpx.Client) -> None:
    key = create_key(http, allowed_capabilities=["vision"])
    answer = http.post("/v1/chat/completions", json=CHAT, headers=bearer(key["key"]))
    assert answer.status_code == 403
    assert answer.json()["error"]["type"] == "permission_error"


@pytest.mark.anyio
async def test_rpm_admits_exactly_the_limit_of_concurrent_requests(http: httpx.Client) -> None:
    limit, clients = 5, 30
    key = create_key(http, limits={"requests_per_minute": limit})
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=30) as client:

        async def call() -> None:
            answers.append(
                await client.post("/v1/chat/completions", json=CHAT, headers=bearer(key["key"]))
            )

        async with anyio.create_task_group() as group:
            for _ in range(clients):
                group.start_soon(call)

    admitted = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert len(admitted) == limit
    assert len(refused) == clients - limit
    for answer in refused:
        assert int(answer.headers["retry-after"]) >= 1
        assert answer.headers["x-ratelimit-limit-requests"] == str(limit)
        assert answer.headers["x-ratelimit-remaining-requests"] == "0"
        assert "x-ratelimit-reset-requests" in answer.headers
        assert answer.json()["error"]["type"] == "rate_limit_exceeded"
    with openai_client(http, key["key"]) as openai_api, pytest.raises(openai.RateLimitError):
        openai_api.chat.completions.create(model=TEXT_MODEL, messages=[USER])


def test_a_finished_stream_is_charged_the_usage_the_upstream_reported(
    http: httpx.Client,
) -> None:
    key = create_key(http, limits={"tokens_per_minute": 100_000})
    body = {**CHAT, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body, headers=bearer(key["key"])) as s:
        after_admission = remaining_tokens(s)
        events = [line for line in s.iter_lines() if line.startswith("data:")]
    assert events[-1] == "data: [DONE]"
    following = http.post("/v1/chat/completions", json=CHAT, headers=bearer(key["key"]))
    # Both reserved the same estimate, so the difference is what the stream was charged.
    assert after_admission - remaining_tokens(following) == 7 + 5


def test_an_abandoned_stream_is_charged_the_usage_reported_so_far_and_frees_its_lease(
    http: httpx.Client, stub: StubUpstream
) -> None:
    stub.knobs.chunk_delay = 0.4
    limits = {"tokens_per_minute": 100_000, "max_concurrent": 1}
    key = create_key(http, limits=limits)
    body = {**CHAT, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body, headers=bearer(key["key"])) as s:
        after_admission = remaining_tokens(s)
        read = 0
        for line in s.iter_lines():
            read += line.startswith("data:")
            if read == 2:
                break
    assert stub.wait_cancelled()
    stub.knobs.chunk_delay = 0.0
    following = until_admitted(http, key["key"])
    reported = stub.reported[-1]["total_tokens"]
    assert reported < 7 + 5
    assert after_admission - remaining_tokens(following) == reported


def until_admitted(http: httpx.Client, secret: str) -> httpx.Response:
    """The next request once the single concurrency slot is free again (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        answer = http.post("/v1/chat/completions", json=CHAT, headers=bearer(secret))
        if answer.status_code != 429 or time.monotonic() > deadline:
            assert answer.status_code == 200, answer.text
            return answer
        time.sleep(0.05)


def test_the_concurrency_lease_is_released_after_a_disconnect(
    http: httpx.Client, stub: StubUpstream
) -> None:
    stub.knobs.chunk_delay = 0.4
    key = create_key(http, limits={"max_concurrent": 1})
    body = {**CHAT, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body, headers=bearer(key["key"])) as s:
        busy = http.post("/v1/chat/completions", json=CHAT, headers=bearer(key["key"]))
        assert busy.status_code == 429
        assert "concurrent" in busy.json()["error"]["message"]
        next(line for line in s.iter_lines() if line.startswith("data:"))
    assert stub.wait_cancelled()
    stub.knobs.chunk_delay = 0.0
    assert until_admitted(http, key["key"]).json()["choices"][0]["message"]["content"] == ANSWER


def test_admin_api_is_absent_without_an_admin_key(stub: StubUpstream, key_prefix: str) -> None:
    quota = {"redis_url": SHARED_REDIS_URL, "key_prefix": key_prefix}
    settings = gateway_settings(stub.base_url, quota=quota)
    with serve_in_thread(create_app(settings)) as url:
        answer = httpx.post(f"{url}/admin/keys", json={"tenant": "t"}, headers=bearer(ADMIN))
    assert answer.status_code == 404


@pytest.fixture
def private_redis(redis_server: RedisServer, redis_url: str) -> Iterator[RedisServer]:
    """The private Redis, running again after the test whatever it did."""
    yield redis_server
    if redis_server.process is None:
        redis_server.start()


def test_redis_outage_fails_closed_and_recovers_after_restart(
    serve: Serve, private_redis: RedisServer
) -> None:
    with serve(redis_url=private_redis.url, timeout=0.5, connect_timeout=0.5) as http:
        key = create_key(http)
        assert http.post("/v1/chat/completions", json=CHAT, headers=bearer(key["key"])).is_success
        assert http.get("/readyz").status_code == 200

        private_redis.stop()
        down = http.post("/v1/chat/completions", json=CHAT, headers=bearer(key["key"]))
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "quota_backend_unavailable"
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["quota"] is False

        private_redis.start()  # an empty Redis: the key must be filed again
        deadline = time.monotonic() + 10
        while http.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the gateway did not see Redis come back"
            time.sleep(0.1)
        again = create_key(http)
        answer = http.post("/v1/chat/completions", json=CHAT, headers=bearer(again["key"]))
        assert answer.status_code == 200


def test_redis_outage_fails_open_for_recently_seen_keys(
    serve: Serve, private_redis: RedisServer
) -> None:
    quota = {"redis_url": private_redis.url, "timeout": 0.5, "failure_policy": "fail-open"}
    with serve(**quota) as http:
        key = create_key(http, limits={"requests_per_minute": 1})
        assert http.post("/v1/chat/completions", json=CHAT, headers=bearer(key["key"])).is_success
        private_redis.stop()
        for _ in range(3):  # untracked: the per-minute limit cannot hold without Redis
            answer = http.post("/v1/chat/completions", json=CHAT, headers=bearer(key["key"]))
            assert answer.status_code == 200
        unknown = http.post("/v1/chat/completions", json=CHAT, headers=bearer("gsk-" + "y" * 43))
        assert unknown.status_code == 503
        ready = http.get("/readyz")  # fail-open: still in the Service, saying what is down
        assert ready.status_code == 200
        assert ready.json()["checks"]["quota"] is False
        gauge = "gateway_quota_backend_up 0.0"
        assert gauge in http.get("/metrics").text


def test_usage_shows_what_each_request_was_charged_and_only_the_callers_own(
    http: httpx.Client,
) -> None:
    key = create_key(http, limits={"tokens_per_day": 100_000})
    other = create_key(http)
    with openai_client(http, key["key"]) as api:
        answers = [
            api.chat.completions.create(model=TEXT_MODEL, messages=[USER], max_tokens=10),
            api.completions.create(model=TEXT_MODEL, prompt="hi", max_tokens=10),
        ]
        charged = sum(a.usage.total_tokens for a in answers if a.usage)
        stream = api.chat.completions.create(
            model=TEXT_MODEL,
            messages=[USER],
            max_tokens=10,
            stream=True,
            stream_options={"include_usage": True},
        )
        charged += sum(c.usage.total_tokens for c in stream if c.usage)
    with openai_client(http, other["key"]) as api:
        api.chat.completions.create(model=TEXT_MODEL, messages=[USER], max_tokens=10)

    mine = http.get("/v1/usage", headers=bearer(key["key"]))
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert body["object"] == "usage"
    assert body["key_id"] == key["id"]
    day = {"requests": 3, "tokens": charged, "batch_tokens": 0}
    assert body["data"] == [{"model": TEXT_MODEL, "minute": day, "day": day}]
    tpd = body["limits"][0]["tokens_per_day"]
    assert (tpd["limit"], tpd["used"], tpd["remaining"]) == (100_000, charged, 100_000 - charged)
    assert body["day"]["start"] <= body["now"] < body["day"]["end"]

    admin = http.get(f"/admin/keys/{key['id']}/usage", headers=bearer(ADMIN))
    assert admin.status_code == 200
    assert admin.json()["data"] == body["data"]
    theirs = http.get("/v1/usage", headers=bearer(other["key"])).json()
    assert theirs["key_id"] == other["id"]
    assert [row["day"]["requests"] for row in theirs["data"]] == [1]
    assert http.get("/v1/usage").status_code == 401
    unknown = http.get("/admin/keys/key_unknown/usage", headers=bearer(ADMIN))
    assert unknown.status_code == 404


def test_usage_is_absent_without_api_keys(stub: StubUpstream) -> None:
    with serve_in_thread(create_app(gateway_settings(stub.base_url))) as url:
        answer = httpx.get(f"{url}/v1/usage")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "usage_disabled"
