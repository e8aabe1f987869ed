"""A small keep-alive HTTP/1.1 load generator on bare asyncio streams (no client library).

Each of ``concurrency`` connections sends the same prepared request again and again and
times it until its whole response (``content-length`` or chunked) has arrived, so the
generator costs little next to the servers it measures.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else float("nan")
        cuts = statistics.quantiles(self.latencies, n=1000, method="inclusive")
        return cuts[min(len(cuts) - 1, max(0, round(q * 1000) - 1))] * 1000


def build_request(url: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    parts = urlsplit(url)
    lines = [
        f"POST {parts.path} HTTP/1.1",
        f"host: {parts.netloc}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    status = int((await reader.readline()).split(b" ", 2)[1])
    length, chunked = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        await reader.readexactly(length)
        return status
    while size := int((await reader.readline()).split(b";")[0], 16):
        await reader.readexactly(size + 2)
    await reader.readline()
    return status


async def _connection(url: str, raw: bytes, result: LoadResult, more: Callable[[], bool]) -> None:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        while more():
            started = time.perf_counter()
            writer.write(raw)
            status = await _read_response(reader)
            if status == 200:
                result.latencies.append(time.perf_counter() - started)
            else:
                result.errors += 1
    finally:
        writer.close()


async def run_count(url: str, raw: bytes, *, concurrency: int, requests: int) -> LoadResult:
    """Send ``requests`` requests over ``concurrency`` connections."""
    result = LoadResult()
    left = [requests]

    def more() -> bool:
        left[0] -= 1
        return left[0] >= 0

    started = time.perf_counter()
    await asyncio.gather(*(_connection(url, raw, result, more) for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


async def run_for(url: str, raw: bytes, *, concurrency: int, seconds: float) -> LoadResult:
    """Keep ``concurrency`` connections busy for ``seconds``."""
    result = LoadResult()
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _connection(url, raw, result, lambda: time.perf_counter() < deadline)
            for _ in range(concurrency)
        )
    )
    result.seconds = time.perf_counter() - started
    return result
