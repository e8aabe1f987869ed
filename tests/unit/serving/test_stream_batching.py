"""serving.stream_batching: when each batch of a stream leaves the replica."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator

import pytest

from serving.stream_batching import leading_edge_batches

pytestmark = pytest.mark.anyio

INTERVAL = 0.2


async def _timed(schedule: list[tuple[float, str]]) -> AsyncGenerator[str, None]:
    """Items at the given offsets (seconds) from the first read."""
    start = asyncio.get_running_loop().time()
    for at, item in schedule:
        await asyncio.sleep(max(0.0, start + at - asyncio.get_running_loop().time()))
        yield item


async def _collect(source: AsyncGenerator[str, None]) -> list[tuple[float, list[str]]]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    return [(loop.time() - start, batch) async for batch in leading_edge_batches(source, INTERVAL)]


async def test_the_first_chunk_leaves_at_once_and_the_next_ones_together() -> None:
    got = await _collect(_timed([(0.05, "a"), (0.07, "b"), (0.09, "c"), (0.12, "d")]))
    assert [batch for _, batch in got] == [["a"], ["b", "c", "d"]]
    assert got[0][0] < 0.05 + INTERVAL / 2  # not held for a tick
    assert got[1][0] >= got[0][0] + INTERVAL * 0.95  # the rest waited for the interval


async def test_a_chunk_after_a_pause_leaves_at_once() -> None:
    got = await _collect(_timed([(0.0, "a"), (0.5, "b")]))
    assert [batch for _, batch in got] == [["a"], ["b"]]
    assert got[1][0] < 0.5 + INTERVAL / 2


async def test_at_most_one_batch_per_interval_under_a_fast_source() -> None:
    got = await _collect(_timed([(i * 0.01, str(i)) for i in range(60)]))
    assert [item for _, batch in got for item in batch] == [str(i) for i in range(60)]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(got)]
    assert all(gap >= INTERVAL * 0.95 for gap in gaps)
    assert 3 <= len(got) <= 5


async def test_a_source_error_comes_after_what_it_sent() -> None:
    async def failing() -> AsyncGenerator[str, None]:
        yield "a"
        raise RuntimeError("engine died")

    batches = leading_edge_batches(failing(), INTERVAL)
    assert await anext(batches) == ["a"]
    with pytest.raises(RuntimeError, match="engine died"):
        await anext(batches)


async def test_closing_the_batches_cancels_the_source() -> None:
    cancelled = asyncio.Event()

    async def endless() -> AsyncGenerator[str, None]:
        try:
            while True:
                yield "x"
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    batches = leading_edge_batches(endless(), INTERVAL)
    assert await anext(batches) == ["x"]
    await batches.aclose()
    await asyncio.wait_for(cancelled.wait(), timeout=2)
