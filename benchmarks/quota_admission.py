"""Admission latency and Redis round trips per request, next to a no-quota baseline.

Runs, in one process and one run, the same number of requests through:

    no-quota      the request path with quotas off (nothing awaited)
    redis-ping    one bare Redis round trip (the network floor)
    authenticate  RedisKeyStore.authenticate
    admit         RedisQuotaGate.admit (requests, tokens per minute/day, concurrency)
    full          authenticate + admit + settle, as one request does

and prints p50/p99 latency and round trips per request, counted on the client
(every command sent on a connection) and on the server (INFO commandstats deltas
for EVALSHA). By default it starts a private redis-server on a free port so the
server counters are this run's alone. The result is written to results/.

    .venv/bin/python benchmarks/quota_admission.py [--requests 2000] [--concurrency 16]

Latencies are per call with ``--concurrency`` calls in flight, so at 16 they include
the wait behind the other 15 (a PING's p50 is about 16 / its req/s); ``--concurrency 1``
gives the latency of one call alone. The event loop is uvloop's, as in the gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import Connection

from gateway.quotas.backend import RedisQuotaBackend
from gateway.quotas.protocol import ApiKey, Limits
from gateway.quotas.settings import QuotaSettings

MODEL = "gemma-3-270m"
RESULTS = Path(__file__).resolve().parent.parent / "results"


class CountingConnection(Connection):
    """A connection that counts the commands it sends (one per round trip here)."""

    sent = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sent += 1
        await super().send_packed_command(command, check_health)


def start_private_redis() -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found; pass --redis-url")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="gs-bench-redis-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return proc, f"redis://127.0.0.1:{port}/0"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def evalsha_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def measure(
    name: str,
    one: Callable[[], Awaitable[None]],
    redis: Redis,
    requests: int,
    concurrency: int,
) -> dict[str, Any]:
    latencies: list[float] = []
    queue: asyncio.Queue[None] = asyncio.Queue()
    for _ in range(requests):
        queue.put_nowait(None)

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            started = time.perf_counter()
            await one()
            latencies.append(time.perf_counter() - started)

    evalsha_before = await evalsha_calls(redis)
    sent_before = CountingConnection.sent
    wall = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - wall
    sent = CountingConnection.sent - sent_before
    evalsha = await evalsha_calls(redis) - evalsha_before
    return {
        "scenario": name,
        "requests": requests,
        "p50_ms": round(percentile(latencies, 0.50) * 1000, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 3),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 3),
        "throughput_rps": round(requests / wall, 1),
        "round_trips_per_request": round(sent / requests, 3),
        "evalsha_per_request": round(evalsha / requests, 3),
    }


async def run(url: str, requests: int, concurrency: int) -> list[dict[str, Any]]:
    settings = QuotaSettings(
        redis_url=url, key_prefix=f"bench-{uuid.uuid4().hex[:8]}:", timeout=2.0
    )
    backend = RedisQuotaBackend.from_settings(settings)
    backend.redis.connection_pool.connection_class = CountingConnection
    big = 10**9
    limits = Limits(big, big, big, big)
    secret, key = await backend.keys.create(tenant="bench", limits=limits)
    gate = backend.gate

    async def no_quota() -> None:
        return None

    async def ping() -> None:
        await backend.redis.ping()

    async def authenticate() -> None:
        await backend.keys.authenticate(secret)

    async def admit() -> None:
        await gate.admit(key, MODEL, 100)

    async def full() -> None:
        found: ApiKey = await backend.keys.authenticate(secret)
        admission = await gate.admit(found, MODEL, 100)
        await gate.settle(admission, 60)

    await asyncio.gather(*(full() for _ in range(concurrency)))  # scripts, connections
    rows = []
    for name, one in [
        ("no-quota", no_quota),
        ("redis-ping", ping),
        ("authenticate", authenticate),
        ("admit", admit),
        ("full", full),
    ]:
        rows.append(await measure(name, one, backend.redis, requests, concurrency))
    await backend.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--redis-url", help="use this Redis (server counters may be shared)")
    args = parser.parse_args()

    try:
        import uvloop

        uvloop.install()  # the gateway's loop (uvicorn picks uvloop when installed)
    except ImportError:
        pass
    proc = None
    url = args.redis_url
    if url is None:
        proc, url = start_private_redis()
    try:
        rows = asyncio.run(run(url, args.requests, args.concurrency))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)

    header = f"{'scenario':<14}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>10}{'round trips':>13}"
    print(header + f"{'EVALSHA':>9}")
    for row in rows:
        print(
            f"{row['scenario']:<14}{row['p50_ms']:>9.3f}{row['p99_ms']:>9.3f}"
            f"{row['throughput_rps']:>10.1f}{row['round_trips_per_request']:>13.2f}"
            f"{row['evalsha_per_request']:>9.2f}"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"quota_admission-{stamp}.json"
    meta = {
        "benchmark": "quota_admission",
        "when": stamp,
        "python": platform.python_version(),
        "requests": args.requests,
        "concurrency": args.concurrency,
        "private_redis": args.redis_url is None,
    }
    out.write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
