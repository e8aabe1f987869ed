"""Processes for the multi-process tests: each runs its own backend over the real Redis.

Each runs in its own forked process with its own Redis client and event loop;
settings cross as a dict and the key as its JSON record.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from multiprocessing.synchronize import Barrier, Event
from typing import Any

from gateway.errors import RateLimited
from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.protocol import ApiKey
from gateway.quotas.records import key_from_dict
from gateway.quotas.settings import QuotaSettings

MODEL = "gemma-3-270m"


def _run(settings: dict[str, Any], work: Callable[[RedisQuotaBackend], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        backend = RedisQuotaBackend.from_settings(QuotaSettings.model_validate(settings))
        try:
            return await work(backend)
        finally:
            await backend.aclose()

    return asyncio.run(main())


async def _warm(backend: RedisQuotaBackend, connections: int) -> None:
    """Open the pool's connections and load the scripts before the barrier."""
    await asyncio.gather(*(backend.redis.ping() for _ in range(connections)))


async def _try_admit(backend: RedisQuotaBackend, key: ApiKey, tokens: int) -> float | None:
    try:
        return (await backend.gate.admit(key, MODEL, tokens)).admitted_at
    except RateLimited:
        return None


def race(
    settings: dict[str, Any],
    key: dict[str, Any],
    tokens: int,
    tasks: int,
    barrier: Barrier,
    results: Any,
) -> None:
    """Fire ``tasks`` admissions at once, after every process reached the barrier."""
    api_key = key_from_dict(key)

    async def work(backend: RedisQuotaBackend) -> None:
        await _warm(backend, tasks)
        await asyncio.to_thread(barrier.wait)
        admitted = await asyncio.gather(
            *(_try_admit(backend, api_key, tokens) for _ in range(tasks))
        )
        results.put(sum(a is not None for a in admitted))

    _run(settings, work)


def hold_leases(
    settings: dict[str, Any], key: dict[str, Any], count: int, ready: Event, results: Any
) -> None:
    """Take ``count`` leases, report their admission times, then wait to be killed."""
    api_key = key_from_dict(key)

    async def work(backend: RedisQuotaBackend) -> None:
        times = [(await backend.gate.admit(api_key, MODEL, 0)).admitted_at for _ in range(count)]
        results.put(times)
        ready.set()
        await asyncio.sleep(3600)

    _run(settings, work)


def load(
    settings: dict[str, Any],
    key: dict[str, Any],
    clients: int,
    seconds: float,
    barrier: Barrier,
    results: Any,
) -> None:
    """``clients`` clients that each admit, work a little and settle, or wait Retry-After."""
    api_key = key_from_dict(key)

    async def client(backend: RedisQuotaBackend, deadline: float, times: list[float]) -> None:
        while time.monotonic() < deadline:
            try:
                admission = await backend.gate.admit(api_key, MODEL, 10)
            except RateLimited as refused:
                await asyncio.sleep(min(refused.retry_after, max(0.0, deadline - time.monotonic())))
                continue
            times.append(admission.admitted_at)
            await asyncio.sleep(0.01)
            await backend.gate.settle(admission, 7)

    async def work(backend: RedisQuotaBackend) -> None:
        await _warm(backend, min(clients, 32))
        await asyncio.to_thread(barrier.wait)
        deadline = time.monotonic() + seconds
        times: list[float] = []
        await asyncio.gather(*(client(backend, deadline, times) for _ in range(clients)))
        results.put(times)

    _run(settings, work)
