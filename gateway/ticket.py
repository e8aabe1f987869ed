"""One admitted request's quota reservation, finished exactly once.

``settle`` (real usage) or ``release`` (nothing used) runs in a shielded cancel
scope, so a cancelled request (client gone, server shutting down) still frees its
lease; the first call wins and later calls do nothing. A quota backend that fails
while finishing is logged, never raised into the response: the lease expires on
its own after ``lease_ttl``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

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

    async def keep_alive(self, interval: float) -> None:
        """Renew the lease every ``interval`` seconds until cancelled."""
        while True:
            await anyio.sleep(interval)
            try:
                await self.gate.renew(self.admission)
            except Exception as exc:
                log.warning("lease renewal failed for %s: %s", self.admission.key_id, exc)

    @asynccontextmanager
    async def renewing(self, interval: float) -> AsyncIterator[None]:
        """Keep the concurrency lease alive while the body runs.

        The body's own error is re-raised as itself, not wrapped in an exception group.
        """
        error: Exception | None = None
        async with anyio.create_task_group() as group:
            group.start_soon(self.keep_alive, interval)
            try:
                yield
            except Exception as exc:
                error = exc
            finally:
                group.cancel_scope.cancel()
        if error is not None:
            raise error
