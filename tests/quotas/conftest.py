"""Fixtures for keys and quotas: the shared Redis under a unique key prefix per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.settings import QuotaSettings
from tests.support.shared_redis import SHARED_REDIS_URL, unique_prefix


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def key_prefix() -> Iterator[str]:
    """A prefix no other test uses; its keys are deleted afterwards (never a FLUSH)."""
    with unique_prefix("quotas") as prefix:
        yield prefix


@pytest.fixture
def make_settings(key_prefix: str) -> Callable[..., QuotaSettings]:
    """QuotaSettings on the shared Redis under this test's prefix, with short windows."""

    def make(**overrides: Any) -> QuotaSettings:
        values: dict[str, Any] = {
            "redis_url": SHARED_REDIS_URL,
            "key_prefix": key_prefix,
            "timeout": 2.0,
            "connect_timeout": 2.0,
            "window_seconds": 60.0,
        }
        values.update(overrides)
        return QuotaSettings(**values)

    return make


@pytest.fixture
async def backend(make_settings: Callable[..., QuotaSettings]) -> AsyncIterator[RedisQuotaBackend]:
    quota_backend = RedisQuotaBackend.from_settings(make_settings())
    yield quota_backend
    await quota_backend.aclose()
