"""Redis down or slow: bounded waits, the declared policy, and recovery on its own."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.errors import AuthenticationFailed, QuotaBackendUnavailable
from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.protocol import ApiKey, Limits
from gateway.quotas.settings import QuotaSettings
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.anyio
MODEL = "gemma-3-270m"
TIMEOUT = 0.5


def api_key() -> ApiKey:
    return ApiKey(f"key_{uuid.uuid4().hex[:8]}", "t", Limits(requests_per_minute=100))


@pytest.fixture
def private_settings(redis_url: str) -> Callable[..., QuotaSettings]:
    def make(**overrides: object) -> QuotaSettings:
        values: dict[str, object] = {
            "redis_url": redis_url,
            "timeout": TIMEOUT,
            "connect_timeout": TIMEOUT,
        }
        values.update(overrides)
        return QuotaSettings.model_validate(values)

    return make


@pytest.fixture
async def closed(
    private_settings: Callable[..., QuotaSettings],
) -> AsyncIterator[RedisQuotaBackend]:
    backend = RedisQuotaBackend.from_settings(private_settings())
    yield backend
    await backend.aclose()


@pytest.fixture
async def open_(private_settings: Callable[..., QuotaSettings]) -> AsyncIterator[RedisQuotaBackend]:
    backend = RedisQuotaBackend.from_settings(private_settings(failure_policy="fail-open"))
    yield backend
    await backend.aclose()


async def test_fail_closed_refuses_then_recovers(
    closed: RedisQuotaBackend, redis_server: RedisServer
) -> None:
    key = api_key()
    secret, _ = await closed.keys.create(tenant="t")
    await closed.gate.admit(key, MODEL, 10)
    assert await closed.healthy()

    redis_server.stop()
    started = time.monotonic()
    with pytest.raises(QuotaBackendUnavailable):
        await closed.gate.admit(key, MODEL, 10)
    assert time.monotonic() - started < TIMEOUT + 1.0
    with pytest.raises(QuotaBackendUnavailable):
        await closed.keys.authenticate(secret)
    assert not await closed.healthy()

    redis_server.start()  # same port, empty: no key, no loaded scripts
    assert await closed.healthy()
    admission = await closed.gate.admit(key, MODEL, 10)
    assert admission.tracked
    with pytest.raises(AuthenticationFailed):
        await closed.keys.authenticate(secret)


async def test_slow_redis_is_bounded_by_the_timeout(
    closed: RedisQuotaBackend, redis_server: RedisServer
) -> None:
    key = api_key()
    await closed.gate.admit(key, MODEL, 10)
    assert redis_server.process is not None
    pid = redis_server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(QuotaBackendUnavailable):
            await closed.gate.admit(key, MODEL, 10)
        assert time.monotonic() - started < TIMEOUT + 1.0
        assert not await closed.healthy()
    finally:
        os.kill(pid, signal.SIGCONT)
    assert await closed.healthy()
    assert (await closed.gate.admit(key, MODEL, 10)).tracked


async def test_fail_open_admits_known_keys_untracked(
    open_: RedisQuotaBackend, redis_server: RedisServer
) -> None:
    secret, created = await open_.keys.create(tenant="t", limits=Limits(requests_per_minute=1))
    other_secret, _ = await open_.keys.create(tenant="t")
    key = await open_.keys.authenticate(secret)
    await open_.gate.admit(key, MODEL, 10)

    redis_server.stop()
    assert (await open_.keys.authenticate(secret)).key_id == created.key_id
    with pytest.raises(QuotaBackendUnavailable):  # never authenticated by this process
        await open_.keys.authenticate(other_secret)
    admission = await open_.gate.admit(key, MODEL, 10)  # over its limit, but untracked
    assert not admission.tracked
    await open_.gate.renew(admission)
    await open_.gate.settle(admission, 5)

    redis_server.start()
    fresh = api_key()
    assert (await open_.gate.admit(fresh, MODEL, 10)).tracked
