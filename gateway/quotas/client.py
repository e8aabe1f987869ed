"""The Redis client shared by the key store and the quota gate of one gateway process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.quotas.settings import QuotaSettings

T = TypeVar("T")

#: What a Redis call raises when the server is down, slow or restarting.
BACKEND_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


def create_redis(settings: QuotaSettings) -> Redis:
    """A pooled client whose every wait is bounded by the settings' timeouts.

    One immediate retry replaces a pooled connection that died with a restarted
    Redis, so service recovers on its own; callers still bound each call with
    ``settings.timeout`` in total (see ``bounded``).
    """
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.max_connections,
        timeout=settings.timeout,
        socket_timeout=settings.timeout,
        socket_connect_timeout=settings.connect_timeout,
        retry=Retry(NoBackoff(), retries=1),
    )
    return Redis.from_pool(pool)


async def bounded(call: Awaitable[T], seconds: float) -> T:
    """Await one Redis call for at most ``seconds`` in all (raises ``TimeoutError``)."""
    async with asyncio.timeout(seconds):
        return await call
