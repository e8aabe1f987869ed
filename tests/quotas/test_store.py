"""API keys in Redis: created once, stored as a hash, authenticated, revoked, limited."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable

import pytest
import redis

from gateway.errors import AuthenticationFailed, NotFound
from gateway.priority import PriorityClass
from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.protocol import Limits
from gateway.quotas.settings import QuotaSettings
from tests.quotas.conftest import SHARED_REDIS_URL

pytestmark = pytest.mark.anyio


def stored_values(prefix: str) -> list[bytes]:
    """Every key name and value written under a prefix."""
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        found: list[bytes] = []
        for name in client.scan_iter(match=f"{prefix}*"):
            found.append(name)
            kind = client.type(name)
            if kind == b"string":
                found.append(client.get(name) or b"")
            elif kind == b"zset":
                found.extend(client.zrange(name, 0, -1))
        return found
    finally:
        client.close()


async def test_create_then_authenticate(backend: RedisQuotaBackend) -> None:
    limits = Limits(requests_per_minute=10, tokens_per_minute=1000)
    secret, key = await backend.keys.create(
        tenant="acme", limits=limits, allowed_models=["gemma-3-270m"]
    )
    assert secret.startswith("gsk-")
    assert len(secret) >= 40
    found = await backend.keys.authenticate(secret)
    assert found.key_id == key.key_id
    assert found.tenant == "acme"
    assert found.limits == limits
    assert found.allowed_models == frozenset({"gemma-3-270m"})
    assert found.allowed_capabilities is None
    assert found.hint == secret[-4:]


async def test_secrets_are_random(backend: RedisQuotaBackend) -> None:
    first, _ = await backend.keys.create(tenant="acme")
    second, _ = await backend.keys.create(tenant="acme")
    assert first != second


async def test_only_the_hash_is_stored(backend: RedisQuotaBackend, key_prefix: str) -> None:
    secret, _ = await backend.keys.create(tenant="acme")
    written = b"\n".join(stored_values(key_prefix))
    assert secret.encode() not in written
    assert secret[4:].encode() not in written
    assert hashlib.sha256(secret.encode()).hexdigest().encode() in written


@pytest.mark.parametrize(
    "presented", ["", "not-a-key", "gsk-" + "x" * 43, "Bearer gsk-abc", "gsk-" + "y" * 400]
)
async def test_unknown_or_malformed_secrets_fail(
    backend: RedisQuotaBackend, presented: str
) -> None:
    with pytest.raises(AuthenticationFailed):
        await backend.keys.authenticate(presented)


async def test_revoked_key_is_refused(backend: RedisQuotaBackend) -> None:
    secret, key = await backend.keys.create(tenant="acme")
    await backend.keys.authenticate(secret)
    revoked = await backend.keys.revoke(key.key_id)
    assert revoked.revoked
    with pytest.raises(AuthenticationFailed):
        await backend.keys.authenticate(secret)
    again = await backend.keys.revoke(key.key_id)
    assert again.revoked_at == revoked.revoked_at
    assert (await backend.keys.get(key.key_id)).revoked


async def test_revocation_holds_on_another_replica(
    backend: RedisQuotaBackend, make_settings: Callable[..., QuotaSettings]
) -> None:
    other = RedisQuotaBackend.from_settings(make_settings(failure_policy="fail-open"))
    try:
        secret, key = await backend.keys.create(tenant="acme")
        await other.keys.authenticate(secret)
        await backend.keys.revoke(key.key_id)
        with pytest.raises(AuthenticationFailed):
            await other.keys.authenticate(secret)
    finally:
        await other.aclose()


async def test_a_key_cache_bounds_how_late_a_revocation_arrives(
    backend: RedisQuotaBackend, make_settings: Callable[..., QuotaSettings]
) -> None:
    caching = RedisQuotaBackend.from_settings(make_settings(key_cache_seconds=0.5))
    try:
        secret, key = await backend.keys.create(tenant="acme")
        await caching.keys.authenticate(secret)
        await backend.keys.revoke(key.key_id)  # on another replica
        assert (await caching.keys.authenticate(secret)).key_id == key.key_id  # from the cache
        await asyncio.sleep(0.6)
        with pytest.raises(AuthenticationFailed):
            await caching.keys.authenticate(secret)

        own, mine = await caching.keys.create(tenant="acme")
        await caching.keys.authenticate(own)
        await caching.keys.revoke(mine.key_id)  # through this replica: at once
        with pytest.raises(AuthenticationFailed):
            await caching.keys.authenticate(own)
    finally:
        await caching.aclose()


async def test_list_get_and_set_limits(backend: RedisQuotaBackend) -> None:
    _, a = await backend.keys.create(tenant="acme", name="a")
    _, b = await backend.keys.create(tenant="globex", name="b")
    assert [k.key_id for k in await backend.keys.list()] == [a.key_id, b.key_id]
    assert [k.key_id for k in await backend.keys.list(tenant="globex")] == [b.key_id]

    override = {"gemma-3-270m": Limits(requests_per_minute=2)}
    changed = await backend.keys.set_limits(a.key_id, Limits(tokens_per_day=500), override)
    assert changed.limits == Limits(tokens_per_day=500)
    fetched = await backend.keys.get(a.key_id)
    assert fetched.model_limits == override
    assert fetched.limits_for("gemma-3-270m") == Limits(requests_per_minute=2)
    assert fetched.limits_for("other") == Limits(tokens_per_day=500)

    kept = await backend.keys.set_limits(a.key_id, Limits(requests_per_minute=1))
    assert kept.model_limits == override
    assert kept.priority_class is PriorityClass.STANDARD
    batch = await backend.keys.set_limits(a.key_id, kept.limits, None, PriorityClass.BATCH)
    assert (batch.model_limits, batch.limits) == (override, kept.limits)
    assert (await backend.keys.get(a.key_id)).priority_class is PriorityClass.BATCH


async def test_unknown_key_id_is_not_found(backend: RedisQuotaBackend) -> None:
    with pytest.raises(NotFound):
        await backend.keys.get("key_missing")
    with pytest.raises(NotFound):
        await backend.keys.revoke("key_missing")
    with pytest.raises(NotFound):
        await backend.keys.set_limits("key_missing", Limits())


async def test_secret_never_in_repr_or_logs(
    backend: RedisQuotaBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret, key = await backend.keys.create(tenant="acme")
    found = await backend.keys.authenticate(secret)
    await backend.keys.revoke(key.key_id)
    with pytest.raises(AuthenticationFailed) as refused:
        await backend.keys.authenticate(secret)
    assert caplog.records, "creating and revoking a key is logged"
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret[4:] not in record.getMessage()
    for shown in (repr(key), repr(found), str(key), repr(refused.value), str(refused.value)):
        assert secret not in shown
        assert secret[4:] not in shown
