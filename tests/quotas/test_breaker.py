"""The quota breaker: a slow Redis is waited for, a gone one is not, a returned one is used again.

The state machine runs on a hand-driven clock; the outage tests run a redis-server of
their own (stopped, or paused with SIGSTOP so that calls hang) behind ``RedisQuotaBackend``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from redis.exceptions import ResponseError

from gateway.errors import QuotaBackendUnavailable
from gateway.metrics import GatewayMetrics
from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.breaker import BreakerOpen, CircuitBreaker
from gateway.quotas.protocol import ApiKey, Limits
from gateway.quotas.settings import QuotaSettings
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio
MODEL = "gemma-3-270m"
FAILURES, COOLDOWN, DEADLINE = 3, 0.5, 1.0
FAST = 0.05  # an answer from an open breaker takes less than this (seconds)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def answer() -> str:
    return "ok"


async def refuse() -> str:
    raise ConnectionError("refused")


async def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(ConnectionError):
            await breaker.call(refuse(), 1.0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(failures=FAILURES, cooldown=COOLDOWN, clock=clock)


async def test_failures_in_a_row_open_it_and_an_answer_resets_the_count(
    breaker: CircuitBreaker,
) -> None:
    await fail(breaker, FAILURES - 1)
    assert await breaker.call(answer(), 1.0) == "ok"
    await fail(breaker, FAILURES - 1)
    assert breaker.state == "closed"
    await fail(breaker, 1)
    assert breaker.state == "open"
    with pytest.raises(BreakerOpen):  # not sent: the coroutine is closed, never awaited
        await breaker.call(answer(), 1.0)


async def test_an_error_reply_is_an_answer(breaker: CircuitBreaker) -> None:
    async def error_reply() -> None:
        raise ResponseError("WRONGTYPE")

    for _ in range(FAILURES + 1):
        with pytest.raises(ResponseError):
            await breaker.call(error_reply(), 1.0)
    assert breaker.state == "closed"


async def test_after_the_cooldown_one_probe_decides(breaker: CircuitBreaker, clock: Clock) -> None:
    await fail(breaker, FAILURES)
    assert breaker.retry_after() == COOLDOWN
    clock.now += COOLDOWN
    assert breaker.state == "half_open"
    assert breaker.retry_after() == 0
    await fail(breaker, 1)  # the probe failed: open for another cooldown
    assert breaker.state == "open"
    clock.now += COOLDOWN

    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "probe"

    probe = asyncio.create_task(breaker.call(slow(), 1.0))
    await asyncio.sleep(0)
    with pytest.raises(BreakerOpen):  # one probe at a time
        await breaker.call(answer(), 1.0)
    release.set()
    assert await probe == "probe"
    assert breaker.state == "closed"
    assert await breaker.call(answer(), 1.0) == "ok"


async def test_a_cancelled_probe_lets_the_next_call_probe(
    breaker: CircuitBreaker, clock: Clock
) -> None:
    await fail(breaker, FAILURES)
    clock.now += COOLDOWN
    probe = asyncio.create_task(breaker.call(asyncio.sleep(10), 1.0))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert await breaker.call(answer(), 1.0) == "ok"
    assert breaker.state == "closed"


async def test_the_state_is_a_metric(breaker: CircuitBreaker, clock: Clock) -> None:
    metrics = GatewayMetrics()
    metrics.watch_quota_breaker(lambda: breaker.state_value)

    def scraped() -> float | None:
        return metrics.registry.get_sample_value("gateway_quota_breaker_state")

    assert scraped() == 0
    await fail(breaker, FAILURES)
    assert scraped() == 2
    clock.now += COOLDOWN
    assert scraped() == 1


# A redis-server of the test's own


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


def settings(server: RedisServer, **overrides: Any) -> QuotaSettings:
    values: dict[str, Any] = {
        "redis_url": server.url,
        "timeout": DEADLINE,
        "breaker_failures": FAILURES,
        "breaker_cooldown": COOLDOWN,
    }
    return QuotaSettings.model_validate({**values, **overrides})


@pytest.fixture
async def backend(own_redis: RedisServer) -> AsyncIterator[RedisQuotaBackend]:
    made = RedisQuotaBackend.from_settings(settings(own_redis))
    yield made
    await made.aclose()


def api_key() -> ApiKey:
    return ApiKey(f"key_{uuid.uuid4().hex[:8]}", "t", Limits(requests_per_minute=1000))


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        await call()
    except QuotaBackendUnavailable as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


def _resume(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the test may have stopped it for good
        os.kill(pid, signal.SIGCONT)


def pause(server: RedisServer, seconds: float) -> threading.Timer:
    """Stop the server's process for ``seconds``: it answers late, as on busy cores."""
    assert server.process is not None
    pid = server.process.pid
    os.kill(pid, signal.SIGSTOP)
    timer = threading.Timer(seconds, _resume, (pid,))
    timer.start()
    return timer


async def test_a_slow_redis_within_the_deadline_is_served(
    backend: RedisQuotaBackend, own_redis: RedisServer
) -> None:
    key = api_key()
    await backend.gate.admit(key, MODEL, 10)
    for _ in range(FAILURES + 1):  # more slow calls than it takes to open the breaker
        pause(own_redis, 0.4)
        took, error = await timed(lambda: backend.gate.admit(key, MODEL, 10))
        assert error is None
        assert 0.3 < took < DEADLINE
    assert backend.breaker.state == "closed"


async def test_a_stopped_redis_opens_the_breaker_then_it_closes_on_return(
    backend: RedisQuotaBackend, own_redis: RedisServer
) -> None:
    key = api_key()
    await backend.gate.admit(key, MODEL, 10)
    own_redis.stop()
    for _ in range(FAILURES):
        _, error = await timed(lambda: backend.gate.admit(key, MODEL, 10))
        assert isinstance(error, QuotaBackendUnavailable)
    assert backend.breaker.state == "open"
    for _ in range(20):
        took, error = await timed(lambda: backend.gate.admit(key, MODEL, 10))
        assert isinstance(error, QuotaBackendUnavailable)
        assert took < FAST
        assert error.headers["retry-after"] == "1"  # the cooldown left, rounded up
    assert not await backend.healthy()

    own_redis.start()
    await asyncio.sleep(COOLDOWN)
    admission = await backend.gate.admit(key, MODEL, 10)  # the probe
    assert admission.tracked
    assert backend.breaker.state == "closed"


async def test_a_hung_redis_costs_the_deadline_only_until_the_breaker_opens(
    backend: RedisQuotaBackend, own_redis: RedisServer
) -> None:
    key = api_key()
    await backend.gate.admit(key, MODEL, 10)
    timer = pause(own_redis, 60)
    try:
        waits = [await timed(lambda: backend.gate.admit(key, MODEL, 10)) for _ in range(FAILURES)]
        assert all(DEADLINE * 0.9 < took < DEADLINE + 0.5 for took, _ in waits)
        fast = [await timed(lambda: backend.gate.admit(key, MODEL, 10)) for _ in range(10)]
        assert all(took < FAST and error is not None for took, error in fast)
        assert backend.breaker.state == "open"
    finally:
        timer.cancel()
        assert own_redis.process is not None
        _resume(own_redis.process.pid)
    await asyncio.sleep(COOLDOWN)
    assert (await backend.gate.admit(key, MODEL, 10)).tracked  # the probe finds it again
    assert backend.breaker.state == "closed"


async def test_fail_open_admits_at_once_while_open(own_redis: RedisServer) -> None:
    backend = RedisQuotaBackend.from_settings(settings(own_redis, failure_policy="fail-open"))
    try:
        key = api_key()
        own_redis.stop()
        for _ in range(FAILURES):
            assert not (await backend.gate.admit(key, MODEL, 10)).tracked
        started = time.monotonic()
        admission = await backend.gate.admit(key, MODEL, 10)
        assert not admission.tracked
        assert time.monotonic() - started < FAST
    finally:
        await backend.aclose()
