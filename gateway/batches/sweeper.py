"""What the supervisor does besides running jobs: ending what time has run out on.

Each look for work (``Supervisor``) first sweeps:

- batches past their completion window (the ``active`` index by ``created_at``) that no
  runner holds: the sweeper takes the lease like a runner, so it never races one, expires
  the batch (``Finalizer.expire``) and lets the lease go. A batch that a runner holds is
  left to it: the runner expires it at its next block (``jobs.BlockControl``). So a batch
  waiting behind ``max_concurrent_jobs`` still expires on time.
- files past their ``expires_at``: metadata and bytes are deleted (they already answer
  404 from that second, ``BatchService.file``), except the input of a batch that has not
  finished, which a job may still read: it goes at the first sweep after that batch ends.

Every replica sweeps; leases and idempotent deletes make doing it twice harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from gateway.batches.jobs import JobContext
from gateway.errors import ServiceUnavailable

log = logging.getLogger(__name__)


class Sweeper:
    """Expires overdue batches nobody runs and purges expired files."""

    def __init__(self, ctx: JobContext, token: str, lease_ttl: float) -> None:
        self.ctx = ctx
        self.token = token
        self.lease_ttl = lease_ttl

    async def sweep(self, running: Collection[str]) -> None:
        """One pass; ``running`` are the batches this process runs (their runners expire them)."""
        now = self.ctx.clock.now()
        for batch_id in await self.ctx.store.overdue_ids(now):
            if batch_id not in running:
                try:
                    await self._expire(batch_id, now)
                except ServiceUnavailable:
                    raise
                except Exception:  # one broken batch must not stop the others expiring
                    log.exception("could not expire batch %s", batch_id)
        await self._purge(now)

    async def _expire(self, batch_id: str, now: int) -> None:
        store = self.ctx.store
        record = await store.get_batch(batch_id)
        if record is None or not record.overdue(now):
            return  # ending anyway (finalizing, cancelling): its runner finishes it
        if not await store.claim(batch_id, self.token, self.lease_ttl):
            return  # a runner holds it and expires it at its next block
        try:
            record = await store.get_batch(batch_id)
            if record is not None and record.overdue(now):
                log.info("batch %s passed its completion window; expiring it", batch_id)
                await self.ctx.finalizer.expire(record)
        finally:
            await store.release(batch_id, self.token)

    async def _inputs_in_use(self) -> set[str]:
        found = set()
        for batch_id in await self.ctx.store.active_ids():
            batch = await self.ctx.store.get_batch(batch_id)
            if batch is not None:
                found.add(batch.input_file_id)
        return found

    async def _purge(self, now: int) -> None:
        expired = await self.ctx.store.expired_file_ids(now)
        if not expired:
            return
        in_use = await self._inputs_in_use()
        for file_id in expired:
            record = await self.ctx.store.get_file(file_id)
            if record is None or file_id in in_use:
                continue
            await self.ctx.store.delete_file(record)
            self.ctx.storage.delete(file_id)
            log.info("file %s expired; deleted", file_id)
