"""One key's request limit holds exactly across four gateway worker processes.

``uvicorn --factory gateway.app:create_app_from_env --workers 4`` runs in a
subprocess in front of the stub upstream, with a short quota window. Rounds of
concurrent clients fire at once, each round after the window has emptied; every
request's admission lies between its send and its answer, so any ``limit + 1``
admitted requests sent and answered within one window prove an over-admission.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest

from tests.support.servers import free_port, stop, wait_ready
from tests.support.shared_redis import SHARED_REDIS_URL, delete_prefix
from tests.support.stub_upstream import TEXT_MODEL, StubUpstream

ADMIN = "admin-secret-for-worker-tests"
WORKERS = 4
CLIENTS = 200
LIMIT = 20
WINDOW = 2.0
ROUNDS = 3
ROOT = Path(__file__).resolve().parents[2]
CHAT = {"model": TEXT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@dataclass(frozen=True)
class Call:
    sent: float
    answered: float
    status: int


@pytest.fixture
def gateway_url(stub: StubUpstream) -> Iterator[str]:
    prefix = f"test-gw-workers-{uuid.uuid4().hex[:12]}:"
    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_UPSTREAM_URL": stub.base_url,
        "GATEWAY_ADMIN_KEY": ADMIN,
        "GATEWAY_QUOTA__REDIS_URL": SHARED_REDIS_URL,
        "GATEWAY_QUOTA__KEY_PREFIX": prefix,
        "GATEWAY_QUOTA__WINDOW_SECONDS": str(WINDOW),
        "GATEWAY_QUOTA__TIMEOUT": "5",
        "GATEWAY_QUOTA__CONNECT_TIMEOUT": "5",
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "gateway.app:create_app_from_env"]
    command += ["--workers", str(WORKERS), "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, timeout=120)  # four workers import the app
        yield url
    finally:
        stop(process)
        delete_prefix(prefix)


async def _round(client: httpx.AsyncClient, secret: str) -> list[Call]:
    calls: list[Call] = []
    start = anyio.Event()
    headers = {"authorization": f"Bearer {secret}"}

    async def call() -> None:
        await start.wait()
        sent = time.monotonic()
        answer = await client.post("/v1/chat/completions", json=CHAT, headers=headers)
        calls.append(Call(sent, time.monotonic(), answer.status_code))

    async with anyio.create_task_group() as group:
        for _ in range(CLIENTS):
            group.start_soon(call)
        await anyio.sleep(0.1)
        start.set()
    return calls


def proven_over_admissions(admitted: list[Call], limit: int, window: float) -> int:
    """How many groups of ``limit + 1`` admitted calls were all sent and answered in one window.

    Each admission happened between its call's send and answer, so such a group
    is ``limit + 1`` admissions inside one window: an over-admission.
    """
    found = 0
    ordered = sorted(admitted, key=lambda c: c.sent)
    for i, first in enumerate(ordered):
        answers = sorted(c.answered for c in ordered[i:])
        if len(answers) > limit and answers[limit] - first.sent < window:
            found += 1
    return found


@pytest.mark.anyio
async def test_request_limit_holds_exactly_across_worker_processes(gateway_url: str) -> None:
    # Idle connections are dropped by the client (2 s) before uvicorn drops them (5 s): a
    # connection reused just as the server closes it would fail the round with a ReadError.
    limits = httpx.Limits(
        max_connections=CLIENTS + 10, max_keepalive_connections=CLIENTS + 10, keepalive_expiry=2.0
    )
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60, limits=limits) as client:
        created = await client.post(
            "/admin/keys",
            json={"tenant": "t", "limits": {"requests_per_minute": LIMIT}},
            headers={"authorization": f"Bearer {ADMIN}"},
        )
        assert created.status_code == 201, created.text
        secret = created.json()["key"]
        rounds: list[list[Call]] = []
        for _ in range(ROUNDS):
            rounds.append(await _round(client, secret))
            await anyio.sleep(WINDOW + 0.5)  # the sliding window empties before the next round

    every = [c for calls in rounds for c in calls]
    admitted = [c for c in every if c.status == 200]
    assert {c.status for c in every} == {200, 429}
    assert len(every) == CLIENTS * ROUNDS
    assert proven_over_admissions(admitted, LIMIT, WINDOW) == 0
    for calls in rounds:
        in_round = sum(c.status == 200 for c in calls)
        assert in_round >= 0.99 * LIMIT
        if max(c.answered for c in calls) - min(c.sent for c in calls) < WINDOW:
            assert in_round == LIMIT
    assert sum(c.status == 429 for c in every) > 0
