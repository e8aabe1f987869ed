"""Decode memory held at once: a semaphore counted in bytes.

Every media part reserves what its decode may allocate (its ``decode_bytes``, read from
its header) before it is decoded, and returns it once decoded. A reservation that does
not fit waits, first come first served, at most ``wait`` seconds; then the request is
refused with 503 ``media_decode_busy`` and ``Retry-After``. Waiting in line keeps a large
part from being overtaken forever by small ones; a part larger than the whole capacity
waits until it can run alone.

The batch planner runs each line in an event loop of its own, possibly from several
threads at once, so the count sits behind a lock and waiters are woken through their
own loop (``call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from gateway.errors import MediaDecodeBusy

#: Decodes take well under a second each: room is usually back within one.
RETRY_AFTER_SECONDS = 1


@dataclass(eq=False)
class _Waiter:
    size: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None] = field(init=False)
    granted: bool = False

    def __post_init__(self) -> None:
        self.future = self.loop.create_future()

    def wake(self) -> None:
        self.loop.call_soon_threadsafe(_resolve, self.future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class DecodeBudget:
    """At most ``capacity`` bytes of decodes at once; a reservation waits up to ``wait`` s."""

    def __init__(self, capacity: int, *, wait: float) -> None:
        self.capacity = capacity
        self.wait = wait
        self._lock = threading.Lock()
        self._reserved = 0
        self._waiting: deque[_Waiter] = deque()

    @property
    def reserved(self) -> int:
        """Bytes reserved by decodes under way now."""
        return self._reserved

    @asynccontextmanager
    async def reserve(self, size: int) -> AsyncIterator[None]:
        """Hold ``size`` bytes (at most the capacity) while the body runs."""
        size = min(max(0, size), self.capacity)
        await self._acquire(size)
        try:
            yield
        finally:
            with self._lock:
                self._give_back(size)

    async def _acquire(self, size: int) -> None:
        with self._lock:
            if not self._waiting and self._reserved + size <= self.capacity:
                self._reserved += size
                return
            waiter = _Waiter(size, asyncio.get_running_loop())
            self._waiting.append(waiter)
        try:
            with anyio.fail_after(self.wait):
                await waiter.future
        except TimeoutError:
            self._abandon(waiter)
            raise MediaDecodeBusy(
                f"The gateway is decoding as much media as it may hold at once; no room "
                f"came free within {self.wait:g} s.",
                headers={"retry-after": str(RETRY_AFTER_SECONDS)},
            ) from None
        except BaseException:
            self._abandon(waiter)
            raise

    def _abandon(self, waiter: _Waiter) -> None:
        """A waiter gave up (timeout, cancel): drop it, or return what it was granted."""
        with self._lock:
            if waiter.granted:
                self._give_back(waiter.size)
            else:
                self._waiting.remove(waiter)
                self._grant()

    def _give_back(self, size: int) -> None:
        self._reserved -= size
        self._grant()

    def _grant(self) -> None:
        """Admit waiters from the head of the line while they fit (the lock is held)."""
        while self._waiting and self._reserved + self._waiting[0].size <= self.capacity:
            waiter = self._waiting.popleft()
            waiter.granted = True
            self._reserved += waiter.size
            waiter.wake()
