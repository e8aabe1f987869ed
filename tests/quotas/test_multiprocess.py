"""Several OS processes, each with its own backend, share one key's limits exactly."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis

from gateway.errors import RateLimited
from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.protocol import ApiKey, Limits
from gateway.quotas.records import key_to_dict
from gateway.quotas.settings import QuotaSettings
from tests.quotas import workers
from tests.quotas.conftest import SHARED_REDIS_URL

CTX = multiprocessing.get_context("fork")
PROCESSES = 4
CLIENTS_PER_PROCESS = 50  # 200 concurrent clients


def api_key(**limits: int) -> ApiKey:
    return ApiKey(key_id=f"key_{uuid.uuid4().hex[:8]}", tenant="t", limits=Limits(**limits))


def redis_time() -> float:
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        seconds, micros = client.time()
        return seconds + micros / 1_000_000
    finally:
        client.close()


def run_processes(target: Callable[..., None], *args: Any) -> list[Any]:
    """Run ``target(*args, barrier, results)`` in PROCESSES processes; their results."""
    barrier = CTX.Barrier(PROCESSES)
    results = CTX.Queue()
    procs = [CTX.Process(target=target, args=(*args, barrier, results)) for _ in range(PROCESSES)]
    for proc in procs:
        proc.start()
    try:
        collected = [results.get(timeout=120) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    assert all(proc.exitcode == 0 for proc in procs)
    return collected


@pytest.mark.parametrize(
    ("limits", "tokens", "expected"),
    [
        ({"requests_per_minute": 37}, 1, 37),
        ({"tokens_per_minute": 1000}, 30, 33),
        ({"max_concurrent": 23}, 0, 23),
        ({"requests_per_minute": 50, "tokens_per_minute": 1000}, 40, 25),
    ],
    ids=["rpm", "tpm", "concurrency", "rpm+tpm"],
)
def test_racing_processes_admit_exactly_the_limit(
    make_settings: Callable[..., QuotaSettings],
    limits: dict[str, int],
    tokens: int,
    expected: int,
) -> None:
    settings = make_settings().model_dump()
    key = key_to_dict(api_key(**limits))
    counts = run_processes(workers.race, settings, key, tokens, CLIENTS_PER_PROCESS)
    assert sum(counts) == expected


def test_leases_of_a_killed_process_expire(make_settings: Callable[..., QuotaSettings]) -> None:
    ttl = 1.5
    settings = make_settings(lease_ttl=ttl, lease_renew_interval=0.5)
    key = api_key(max_concurrent=3)
    ready, results = CTX.Event(), CTX.Queue()
    holder = CTX.Process(
        target=workers.hold_leases,
        args=(settings.model_dump(), key_to_dict(key), 3, ready, results),
    )
    holder.start()
    try:
        assert ready.wait(timeout=60)
        taken = results.get(timeout=10)
    finally:
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(timeout=10)
    assert holder.exitcode == -signal.SIGKILL

    async def check() -> None:
        backend = RedisQuotaBackend.from_settings(settings)
        try:
            with pytest.raises(RateLimited) as refused:
                await backend.gate.admit(key, workers.MODEL, 0)
            assert refused.value.retry_after <= settings.concurrency_retry_after
            await asyncio.sleep(max(taken) + ttl + 0.1 - redis_time())
            for _ in range(3):
                await backend.gate.admit(key, workers.MODEL, 0)
        finally:
            await backend.aclose()

    asyncio.run(check())


def test_many_clients_over_several_windows(make_settings: Callable[..., QuotaSettings]) -> None:
    """200 clients in 4 processes for 4 one-second windows: never over, at least 99 % used."""
    window, windows, limit = 1.0, 4, 40
    settings = make_settings(window_seconds=window, timeout=5.0, max_connections=32)
    key = api_key(requests_per_minute=limit)
    run_for = windows * window + 0.5
    batches = run_processes(
        workers.load, settings.model_dump(), key_to_dict(key), CLIENTS_PER_PROCESS, run_for
    )
    times = sorted(t for batch in batches for t in batch)
    over = [t for t in times if sum(1 for u in times if t - window < u <= t) > limit]
    assert over == []
    start = times[0]
    counted = sum(1 for t in times if t < start + windows * window)
    assert counted <= windows * limit
    assert counted >= 0.99 * windows * limit
