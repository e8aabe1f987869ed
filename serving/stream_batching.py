"""Streamed answers leave the engine replica in batches, and the first of a pause at once.

Ray Serve LLM batches each stream's chunks between the engine replica and the proxy: every
``stream_batching_interval_ms`` (50 ms by default) it sends what arrived since the last
tick, so a replica sends a stream at most 20 messages a second however fast the engine
writes tokens. Its ticks start with the stream, though, so the first token waits for the
tick after it: up to a whole interval added to every time to first token.

``leading_edge_batches`` keeps the bound and drops that wait: a chunk that arrives when
the stream has sent nothing for an interval goes at once (the first token, or the first
after a pause); chunks that follow within the interval go together at its end. Errors of
the source come out after what it sent; closing the batches cancels the source, as Ray's
batcher does (so a client that leaves still aborts the engine's request).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def _drain(queue: asyncio.Queue[object], items: list[T]) -> bool:
    """Move what ``queue`` holds into ``items``; whether the source has ended."""
    while not queue.empty():
        item = queue.get_nowait()
        if item is _DONE:
            return True
        items.append(item)  # type: ignore[arg-type]
    return False


async def leading_edge_batches(
    source: AsyncIterator[T], interval_s: float
) -> AsyncGenerator[list[T], None]:
    """``source``'s items in lists: one at least ``interval_s`` after the previous list."""
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def read() -> None:
        try:
            async for item in source:
                queue.put_nowait(item)
        finally:
            queue.put_nowait(_DONE)

    loop = asyncio.get_running_loop()
    reader = asyncio.create_task(read())
    sent_at = float("-inf")
    try:
        while True:
            first = await queue.get()
            done = first is _DONE
            items: list[T] = [] if done else [first]  # type: ignore[list-item]
            if not done:
                wait = sent_at + interval_s - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                done = _drain(queue, items)
            if items:
                yield items
                sent_at = loop.time()
            if done:
                await reader  # the source's error, if it ended with one
                return
    finally:
        if not reader.done():
            reader.cancel()
