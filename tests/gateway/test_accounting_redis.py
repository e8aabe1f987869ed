"""Reservations hold a key to its tokens per minute against an upstream that uses them all.

The greedy upstream generates every token a request allows (``tests.support.greedy_upstream``)
and answers slowly, so requests sent together are admitted on their reservations alone.
Whatever a request's shape (many prompts, ``best_of`` / ``n``, no cap at all), what the
answered requests used stays within the key's tokens per minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from gateway.app import create_app
from tests.gateway.conftest import gateway_settings
from tests.support.greedy_upstream import greedy_upstream
from tests.support.servers import serve_in_thread
from tests.support.shared_redis import SHARED_REDIS_URL, unique_prefix
from tests.support.stub_upstream import TEXT_MODEL

pytestmark = pytest.mark.anyio
ADMIN = "admin-secret-for-tests"
DEFAULT_MAX_TOKENS = 100
CLIENTS = 8
USER = {"role": "user", "content": "hi"}


@pytest.fixture
def served() -> Iterator[tuple[httpx.Client, list[dict[str, Any]]]]:
    with unique_prefix("accounting") as prefix, greedy_upstream() as (upstream, bodies):
        quota = {
            "redis_url": SHARED_REDIS_URL,
            "key_prefix": prefix,
            "timeout": 2.0,
            "default_max_tokens": DEFAULT_MAX_TOKENS,
        }
        settings = gateway_settings(upstream, quota=quota, admin_key=ADMIN)
        with (
            serve_in_thread(create_app(settings)) as url,
            httpx.Client(base_url=url, timeout=30) as http,
        ):
            yield http, bodies


def secret(http: httpx.Client, tokens_per_minute: int) -> str:
    answer = http.post(
        "/admin/keys",
        json={"tenant": "t1", "limits": {"tokens_per_minute": tokens_per_minute}},
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["key"])


async def send_together(base_url: str, key: str, path: str, body: dict[str, Any]) -> list[Any]:
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def call() -> None:
            headers = {"authorization": f"Bearer {key}"}
            answers.append(await client.post(path, json=body, headers=headers))

        async with anyio.create_task_group() as group:
            for _ in range(CLIENTS):
                group.start_soon(call)
    assert {a.status_code for a in answers} <= {200, 429}, [a.text for a in answers]
    return [a.json()["usage"]["total_tokens"] for a in answers if a.status_code == 200]


CASES = [
    pytest.param(
        "/v1/completions",
        {"model": TEXT_MODEL, "prompt": [f"p{i}" for i in range(5)], "max_tokens": 100},
        1200,
        id="five-prompts",
    ),
    pytest.param(
        "/v1/completions",
        {"model": TEXT_MODEL, "prompt": "p", "max_tokens": 50, "best_of": 8, "n": 2},
        1000,
        id="best-of",
    ),
    pytest.param(
        "/v1/chat/completions",
        {"model": TEXT_MODEL, "messages": [USER], "n": 3},
        800,
        id="chat-without-a-cap",
    ),
]


@pytest.mark.parametrize(("path", "body", "limit"), CASES)
async def test_what_answered_requests_used_stays_within_the_minute(
    served: tuple[httpx.Client, list[dict[str, Any]]],
    path: str,
    body: dict[str, Any],
    limit: int,
) -> None:
    http, sent = served
    key = secret(http, limit)
    used = await send_together(str(http.base_url), key, path, body)
    assert used, "at least one request is admitted"
    assert len(used) < CLIENTS, "the limit refuses some"
    assert sum(used) <= limit
    if "messages" in body:  # the engine was told the cap it was reserved for
        assert {b["max_completion_tokens"] for b in sent} == {DEFAULT_MAX_TOKENS}
