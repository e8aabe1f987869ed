"""One admitted request's quota reservation, finished exactly once.

``settle`` (real usage) or ``release`` (nothing used) frees the request's engine slot
(``gateway.fair_share``), if it holds one, and runs in a shielded cancel
scope, so a cancelled request (client gone, server shutting down) still frees its
lease; the first call wins and later calls do nothing. A quota backend that fails
while finishing is logged, never raised into the response: the lease expires on
its own after ``lease_ttl``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from gateway.fair_share import Slot
from gateway.quotas.protocol import Admission, QuotaGate
from gateway.telemetry import spans

log = logging.getLogger(__name__)


class Ticket:
    """An ``Admission`` plus the gate that granted it."""

    def __init__(
        self,
        gate: QuotaGate,
        admission: Admission,
        *,
        timeout: float,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.gate = gate
        self.admission = admission
        self._timeout = timeout
        self._tracer = tracer or trace.NoOpTracer()
        self.finished: str | None = None
        self.slot: Slot | None = None

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.admission.headers)

    async def settle(self, used_tokens: int) -> None:
        await self._finish("settle", used_tokens)

    async def release(self) -> None:
        await self._finish("release", 0)

    async def _finish(self, how: str, used_tokens: int) -> None:
        if self.finished is not None:
            return
        self.finished = how
        if self.slot is not None:
            self.slot.release()
        name = spans.QUOTA_SETTLE if how == "settle" else spans.QUOTA_RELEASE
        attributes: dict[str, AttributeValue] = {
            spans.RESPONSE_MODEL: self.admission.model,
            spans.QUOTA_TOKENS: used_tokens,
        }
        with (
            self._tracer.start_as_current_span(name, attributes=attributes),
            anyio.CancelScope(shield=True),
            anyio.move_on_after(self._timeout),
        ):
            try:
                if how == "settle":
                    await self.gate.settle(self.admission, max(0, used_tokens))
                else:
                    await self.gate.release(self.admission)
            except Exception as exc:  # the lease expires by itself
                log.warning("quota %s failed for %s: %s", how, self.admission.key_id, exc)

    async def renew(self) -> None:
        """Extend the lease once; a failure is logged (the next renewal may succeed)."""
        try:
            await self.gate.renew(self.admission)
        except Exception as exc:
            log.warning("lease renewal failed for %s: %s", self.admission.key_id, exc)

    @asynccontextmanager
    async def renewing(self, interval: float) -> AsyncIterator[None]:
        """Keep the concurrency lease alive while the body runs.

        A timer, not a task: nearly every body (sending a request and reading the
        answer's head) ends long before the first renewal is due, and a task group per
        request cost more than the wait it guards. The body's own error is re-raised as
        itself.
        """
        renewal = _Renewal(self, interval)
        try:
            yield
        finally:
            await renewal.stop()


class _Renewal:
    """Renews a ticket every ``interval`` seconds from the event loop's timer until stopped.

    A renewal runs as a task only when one is due; ``stop`` cancels the timer and any
    renewal under way, and waits for that renewal to end.
    """

    def __init__(self, ticket: Ticket, interval: float) -> None:
        self._ticket = ticket
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._timer = self._loop.call_later(interval, self._due)

    def _due(self) -> None:
        self._task = self._loop.create_task(self._renew())

    async def _renew(self) -> None:
        await self._ticket.renew()
        if not self._stopped:
            self._timer = self._loop.call_later(self._interval, self._due)

    async def stop(self) -> None:
        self._stopped = True
        self._timer.cancel()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait((task,))
