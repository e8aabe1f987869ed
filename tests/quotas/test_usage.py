"""A key's usage on a real Redis: the ledgers per model and the quota windows per scope."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import pytest

from gateway.errors import RateLimited
from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.protocol import Limits
from gateway.quotas.settings import QuotaSettings
from gateway.quotas.usage import KeyUsage

pytestmark = pytest.mark.anyio


def per_model(usage: KeyUsage) -> dict[str, tuple[int, int, int, int, int]]:
    """model -> (minute requests, minute tokens, day requests, day tokens, day batch tokens)."""
    return {
        model: (m.requests, m.tokens, d.requests, d.tokens, d.batch_tokens)
        for model, (m, d) in usage.models.items()
    }


async def test_ledgers_count_admitted_requests_and_settled_tokens_per_model(
    backend: RedisQuotaBackend,
) -> None:
    _, key = await backend.keys.create(tenant="acme")  # no limits: the ledgers still count
    gate = backend.gate
    first = await gate.admit(key, "m1", 100)
    await gate.settle(first, 30)
    await gate.settle(first, 30)  # settling twice counts once
    await gate.settle(await gate.admit(key, "m1", 100), 12)
    await gate.release(await gate.admit(key, "m2", 100))  # a request, no tokens
    in_flight = await gate.admit(key, "m3", 100)

    usage = await gate.usage(key)
    assert per_model(usage) == {
        "m1": (2, 42, 2, 42, 0),
        "m2": (1, 0, 1, 0, 0),
        "m3": (1, 0, 1, 0, 0),
    }
    own = usage.limits[0]
    assert own.model is None
    assert own.requests_per_minute.limit is None
    assert own.requests_per_minute.remaining is None
    assert own.requests_per_minute.used == 4
    assert own.tokens_per_day.used == 42
    assert own.max_concurrent.used == 1  # m3 is still in flight
    await gate.settle(in_flight, 5)
    after = await gate.usage(key)
    assert per_model(after)["m3"] == (1, 5, 1, 5, 0)
    assert after.limits[0].max_concurrent.used == 0


async def test_refused_requests_are_not_counted(backend: RedisQuotaBackend) -> None:
    _, key = await backend.keys.create(tenant="acme", limits=Limits(requests_per_minute=1))
    await backend.gate.settle(await backend.gate.admit(key, "m1", 10), 10)
    with pytest.raises(RateLimited):
        await backend.gate.admit(key, "m1", 10)
    usage = await backend.gate.usage(key)
    assert per_model(usage) == {"m1": (1, 10, 1, 10, 0)}
    rpm = usage.limits[0].requests_per_minute
    assert (rpm.limit, rpm.used, rpm.remaining) == (1, 1, 0)
    assert 0 < rpm.resets_in <= 60


async def test_limit_windows_read_what_admission_sees(backend: RedisQuotaBackend) -> None:
    limits = Limits(
        requests_per_minute=5, tokens_per_minute=1000, tokens_per_day=5000, max_concurrent=3
    )
    _, key = await backend.keys.create(tenant="acme", limits=limits)
    gate = backend.gate
    await gate.settle(await gate.admit(key, "m1", 300), 120)
    held = await gate.admit(key, "m1", 200)  # its reservation counts until it settles

    own = (await gate.usage(key)).limits[0]
    assert (own.requests_per_minute.used, own.requests_per_minute.remaining) == (2, 3)
    assert (own.tokens_per_minute.used, own.tokens_per_minute.remaining) == (320, 680)
    assert (own.tokens_per_day.used, own.tokens_per_day.remaining) == (320, 4680)
    assert (own.max_concurrent.used, own.max_concurrent.remaining) == (1, 2)
    assert 0 < own.tokens_per_day.resets_in <= 86_400
    # the remaining figures are what the next admission is held to
    assert held.headers["x-ratelimit-remaining-tokens"] == "680"
    await gate.settle(held, 50)
    own = (await gate.usage(key)).limits[0]
    assert own.tokens_per_minute.used == own.tokens_per_day.used == 170


async def test_a_per_model_override_has_its_own_window_and_the_key_sums_its_models(
    backend: RedisQuotaBackend,
) -> None:
    _, key = await backend.keys.create(
        tenant="acme",
        limits=Limits(tokens_per_day=10_000),
        model_limits={"big": Limits(tokens_per_minute=400)},
    )
    gate = backend.gate
    await gate.settle(await gate.admit(key, "small", 50), 40)
    await gate.settle(await gate.admit(key, "big", 50), 25)

    usage = await gate.usage(key)
    assert per_model(usage) == {"big": (1, 25, 1, 25, 0), "small": (1, 40, 1, 40, 0)}
    own, big = usage.limits
    assert own.model is None
    assert own.tokens_per_day.used == 40
    assert big.model == "big"
    assert (big.tokens_per_minute.limit, big.tokens_per_minute.used) == (400, 25)
    assert big.tokens_per_day.limit is None
    assert big.tokens_per_day.used == 25


async def test_batch_charges_are_counted_once_as_batch_tokens(backend: RedisQuotaBackend) -> None:
    _, key = await backend.keys.create(tenant="acme")
    gate = backend.gate
    await gate.settle(await gate.admit(key, "m1", 10), 10)
    await gate.charge_total(key, "m1", "batch_a", 70, keep=60)
    await gate.charge_total(key, "m1", "batch_a", 70, keep=60)  # a resumed job: nothing more
    await gate.charge_total(key, "m1", "batch_a", 90, keep=60)
    await gate.charge(key, "m2", 5)

    usage = await gate.usage(key)
    assert per_model(usage) == {"m1": (1, 100, 1, 100, 90), "m2": (0, 5, 0, 5, 5)}


async def test_the_minute_ledger_starts_again_in_the_next_minute(
    make_settings: Callable[..., QuotaSettings],
) -> None:
    backend = RedisQuotaBackend.from_settings(make_settings(window_seconds=1.0))
    try:
        _, key = await backend.keys.create(tenant="acme")
        await backend.gate.settle(await backend.gate.admit(key, "m1", 10), 7)
        first = await backend.gate.usage(key)
        assert per_model(first) == {"m1": (1, 7, 1, 7, 0)}
        await anyio.sleep(max(0.0, first.minute[1] - time.time()) + 0.2)
        later = await backend.gate.usage(key)
        assert later.minute[0] >= first.minute[1]
        assert per_model(later) == {"m1": (0, 0, 1, 7, 0)}
    finally:
        await backend.aclose()


async def test_one_keys_usage_never_holds_anothers(backend: RedisQuotaBackend) -> None:
    _, mine = await backend.keys.create(tenant="acme")
    _, theirs = await backend.keys.create(tenant="acme")
    await backend.gate.settle(await backend.gate.admit(theirs, "m1", 10), 9)
    await backend.gate.settle(await backend.gate.admit(mine, "m1", 10), 3)
    body = (await backend.gate.usage(mine)).to_dict()
    assert body["key_id"] == mine.key_id
    assert body["data"] == [
        {
            "model": "m1",
            "minute": {"requests": 1, "tokens": 3, "batch_tokens": 0},
            "day": {"requests": 1, "tokens": 3, "batch_tokens": 0},
        }
    ]
