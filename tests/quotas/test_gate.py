"""Admission in one process: exact limits, sliding windows, reservations, leases, headers."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis

from gateway.errors import QuotaExhausted, RateLimited
from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.keys import ScopeKeys
from gateway.quotas.protocol import Admission, ApiKey, Limits
from gateway.quotas.settings import QuotaSettings
from tests.quotas.conftest import SHARED_REDIS_URL

pytestmark = pytest.mark.anyio
MODEL = "gemma-3-270m"


def api_key(**limits: int) -> ApiKey:
    return ApiKey(key_id=f"key_{uuid.uuid4().hex[:8]}", tenant="t", limits=Limits(**limits))


@pytest.fixture
async def short(make_settings: Callable[..., QuotaSettings]) -> AsyncIterator[RedisQuotaBackend]:
    """A backend whose "minute" is one second and whose leases live one second."""
    settings = make_settings(window_seconds=1.0, lease_ttl=1.0, lease_renew_interval=0.25)
    quota_backend = RedisQuotaBackend.from_settings(settings)
    yield quota_backend
    await quota_backend.aclose()


async def try_admit(backend: RedisQuotaBackend, key: ApiKey, tokens: int) -> Admission | None:
    try:
        return await backend.gate.admit(key, MODEL, tokens)
    except RateLimited:
        return None


def token_sum(prefix: str, key: ApiKey) -> int:
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        raw = client.get(ScopeKeys(prefix, key.key_id).admit[3])
        return int(raw or 0)
    finally:
        client.close()


def day_used(prefix: str, key: ApiKey) -> int:
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        raw = client.hget(ScopeKeys(prefix, key.key_id).admit[5], "used")
        return int(raw or 0)
    finally:
        client.close()


async def test_concurrent_requests_admit_exactly_the_limit(backend: RedisQuotaBackend) -> None:
    key = api_key(requests_per_minute=37)
    results = await asyncio.gather(*(try_admit(backend, key, 1) for _ in range(150)))
    assert sum(r is not None for r in results) == 37


async def test_concurrent_tokens_admit_exactly_the_limit(backend: RedisQuotaBackend) -> None:
    key = api_key(tokens_per_minute=1000)
    results = await asyncio.gather(*(try_admit(backend, key, 30) for _ in range(120)))
    assert sum(r is not None for r in results) == 1000 // 30


def redis_time() -> float:
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        seconds, micros = client.time()
        return seconds + micros / 1_000_000
    finally:
        client.close()


async def test_no_burst_at_a_window_boundary(short: RedisQuotaBackend) -> None:
    """A fixed window would admit twice the limit across its edge; the sliding log never does."""
    key = api_key(requests_per_minute=5)
    now = redis_time()
    await asyncio.sleep((0.8 - now % 1.0) % 1.0)  # 0.2 s before a whole second
    first = [await short.gate.admit(key, MODEL, 0) for _ in range(5)]
    await asyncio.sleep(0.4)  # a whole second has begun: a fixed window would reopen
    assert await try_admit(short, key, 0) is None
    await asyncio.sleep(first[-1].admitted_at + 1.05 - redis_time())
    again = [await try_admit(short, key, 0) for _ in range(6)]
    assert sum(a is not None for a in again) == 5
    times = sorted(a.admitted_at for a in [*first, *again] if a is not None)
    for t in times:
        assert sum(1 for u in times if t - 1.0 < u <= t) <= 5


async def test_settle_replaces_reservation_by_usage(
    backend: RedisQuotaBackend, key_prefix: str
) -> None:
    key = api_key(tokens_per_minute=1000, tokens_per_day=5000)
    admission = await backend.gate.admit(key, MODEL, 600)
    assert token_sum(key_prefix, key) == 600
    assert day_used(key_prefix, key) == 600
    with pytest.raises(RateLimited):
        await backend.gate.admit(key, MODEL, 500)
    await backend.gate.settle(admission, 120)
    assert token_sum(key_prefix, key) == 120
    assert day_used(key_prefix, key) == 120
    await backend.gate.settle(admission, 120)  # twice is harmless
    await backend.gate.release(admission)
    assert token_sum(key_prefix, key) == 120
    second = await backend.gate.admit(key, MODEL, 880)
    assert second.headers["x-ratelimit-remaining-tokens"] == "0"


async def test_release_returns_the_reservation(backend: RedisQuotaBackend, key_prefix: str) -> None:
    key = api_key(tokens_per_minute=1000, tokens_per_day=5000)
    admission = await backend.gate.admit(key, MODEL, 900)
    await backend.gate.release(admission)
    assert token_sum(key_prefix, key) == 0
    assert day_used(key_prefix, key) == 0
    await backend.gate.admit(key, MODEL, 1000)


async def test_settle_after_lease_expiry_still_counts_usage(
    short: RedisQuotaBackend, key_prefix: str
) -> None:
    key = api_key(tokens_per_day=5000)
    admission = await short.gate.admit(key, MODEL, 800)
    await asyncio.sleep(1.2)  # the lease (1 s) is gone
    await short.gate.settle(admission, 50)
    assert day_used(key_prefix, key) == 50


async def test_tokens_per_day_exhausted(backend: RedisQuotaBackend) -> None:
    key = api_key(tokens_per_day=100)
    await backend.gate.admit(key, MODEL, 80)
    with pytest.raises(QuotaExhausted) as refused:
        await backend.gate.admit(key, MODEL, 30)
    assert refused.value.error_type == "insufficient_quota"
    assert 0 < refused.value.retry_after <= 86400


async def test_request_larger_than_a_limit_has_no_retry_after(
    backend: RedisQuotaBackend,
) -> None:
    key = api_key(tokens_per_minute=100)
    with pytest.raises(RateLimited) as refused:
        await backend.gate.admit(key, MODEL, 101)
    assert refused.value.code == "request_too_large"
    assert "retry-after" not in refused.value.headers


async def test_concurrency_leases(short: RedisQuotaBackend) -> None:
    key = api_key(max_concurrent=2)
    a = await short.gate.admit(key, MODEL, 0)
    await short.gate.admit(key, MODEL, 0)
    with pytest.raises(RateLimited) as refused:
        await short.gate.admit(key, MODEL, 0)
    assert "concurrent" in refused.value.message
    await short.gate.release(a)
    await short.gate.admit(key, MODEL, 0)


async def test_leases_expire_and_renew_keeps_one_alive(short: RedisQuotaBackend) -> None:
    key = api_key(max_concurrent=2)
    kept = await short.gate.admit(key, MODEL, 0)
    await short.gate.admit(key, MODEL, 0)  # never renewed
    for _ in range(6):  # 1.5 s, past the 1 s TTL
        await asyncio.sleep(0.25)
        await short.gate.renew(kept)
    await short.gate.admit(key, MODEL, 0)  # the unrenewed lease expired
    with pytest.raises(RateLimited):  # the renewed one still holds
        await short.gate.admit(key, MODEL, 0)


async def test_per_model_override_uses_its_own_counters(backend: RedisQuotaBackend) -> None:
    key = ApiKey(
        key_id=f"key_{uuid.uuid4().hex[:8]}",
        tenant="t",
        limits=Limits(requests_per_minute=1),
        model_limits={"big": Limits(requests_per_minute=3)},
    )
    await backend.gate.admit(key, MODEL, 0)
    with pytest.raises(RateLimited):
        await backend.gate.admit(key, MODEL, 0)
    for _ in range(3):
        await backend.gate.admit(key, "big", 0)
    with pytest.raises(RateLimited):
        await backend.gate.admit(key, "big", 0)


async def test_headers_follow_openai(backend: RedisQuotaBackend) -> None:
    key = api_key(requests_per_minute=3, tokens_per_minute=1000)
    first = await backend.gate.admit(key, MODEL, 100)
    second = await backend.gate.admit(key, MODEL, 250)
    assert first.headers["x-ratelimit-limit-requests"] == "3"
    assert first.headers["x-ratelimit-remaining-requests"] == "2"
    assert first.headers["x-ratelimit-limit-tokens"] == "1000"
    assert first.headers["x-ratelimit-remaining-tokens"] == "900"
    assert first.headers["x-ratelimit-reset-requests"] == "1m0s"
    assert second.headers["x-ratelimit-remaining-requests"] == "1"
    assert second.headers["x-ratelimit-remaining-tokens"] == "650"
    reset = second.headers["x-ratelimit-reset-tokens"]
    assert reset == "1m0s"
    unlimited = await backend.gate.admit(api_key(), MODEL, 10)
    assert not any(h.startswith("x-ratelimit") for h in unlimited.headers)


async def test_retry_after_is_the_time_until_admissible(short: RedisQuotaBackend) -> None:
    key = api_key(requests_per_minute=2)
    first = await short.gate.admit(key, MODEL, 0)
    await asyncio.sleep(0.3)
    await short.gate.admit(key, MODEL, 0)
    with pytest.raises(RateLimited) as refused:
        await short.gate.admit(key, MODEL, 0)
    retry = refused.value.retry_after
    assert retry == pytest.approx(first.admitted_at + 1.0 - (first.admitted_at + 0.3), abs=0.1)
    assert refused.value.headers["retry-after-ms"] == str(math.ceil(retry * 1000))
    await asyncio.sleep(max(0.0, retry - 0.15))
    assert await try_admit(short, key, 0) is None  # not yet
    await asyncio.sleep(0.3)
    assert await try_admit(short, key, 0) is not None  # now


async def test_retry_after_for_tokens_waits_for_enough_to_leave(
    short: RedisQuotaBackend,
) -> None:
    key = api_key(tokens_per_minute=100)
    first = await short.gate.admit(key, MODEL, 60)
    await asyncio.sleep(0.4)
    second = await short.gate.admit(key, MODEL, 30)
    with pytest.raises(RateLimited) as refused:
        await short.gate.admit(key, MODEL, 50)  # needs the first 60 to leave
    expected = first.admitted_at + 1.0 - second.admitted_at
    assert refused.value.retry_after == pytest.approx(expected, abs=0.1)
    with pytest.raises(RateLimited) as refused_more:
        await short.gate.admit(key, MODEL, 95)  # needs both to leave
    assert refused_more.value.retry_after == pytest.approx(1.0, abs=0.1)
