"""Which jobs this gateway process runs: leases on unfinished batches, renewed while they run.

Every replica's supervisor looks at the unfinished batches (oldest first) when woken
(a batch was created or cancelled here, a job ended) and every ``poll_interval``, and
takes the lease of those nobody holds, up to ``max_concurrent_jobs``. A held lease is
renewed every third of ``lease_ttl``; a runner that finds its lease gone stops at the
next block. So a batch whose runner died (gateway killed, node lost) is resumed by the
first supervisor that looks after its lease expired - the restarted gateway included -
and a job left by a clean shutdown (its lease released) is resumed at once.

Each look also publishes how many unfinished batches stand in each status
(``gateway_batches_active``). Jobs only start once the model list is known (``ready``):
routing a batch's lines against an empty list would refuse them all. Before each look,
the ``Sweeper`` expires batches past their completion window that nobody runs, and
purges expired files.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import Counter
from collections.abc import Callable

import anyio
from anyio.abc import TaskGroup

from gateway.batches.jobs import JobContext, run_job
from gateway.batches.settings import BatchSettings
from gateway.batches.sweeper import Sweeper
from gateway.errors import ServiceUnavailable

log = logging.getLogger(__name__)


class Supervisor:
    """Runs the batch jobs of one gateway process."""

    def __init__(self, ctx: JobContext, settings: BatchSettings, ready: Callable[[], bool]) -> None:
        self.ctx = ctx
        self.settings = settings
        self.ready = ready
        self.token = secrets.token_hex(12)
        self.sweeper = Sweeper(ctx, self.token, settings.lease_ttl)
        self.running: set[str] = set()
        self._wake = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()

    def wake(self) -> None:
        """Look for batches to run now (rather than at the next poll)."""
        self._wake.set()

    async def run(self) -> None:
        """Claim and run jobs until cancelled."""
        async with anyio.create_task_group() as group:
            while True:
                await self._claim(group)
                with anyio.move_on_after(self.settings.poll_interval):
                    await self._wake.wait()
                self._wake = anyio.Event()

    async def stop(self) -> None:
        """Ask running jobs to stop at their next block; wait up to ``shutdown_grace``."""
        self.ctx.stopping.set()
        with anyio.move_on_after(self.settings.shutdown_grace):
            await self._idle.wait()

    async def _claim(self, group: TaskGroup) -> None:
        if self.ctx.stopping.is_set():
            return
        try:
            await self.sweeper.sweep(self.running)
            if not self.ready():
                return
            active = await self.ctx.store.active_ids()
            self.ctx.metrics.set_active_batches(Counter(await self.ctx.store.statuses(active)))
            waiting = [b for b in active if b not in self.running]
            for batch_id in waiting:
                if len(self.running) >= self.settings.max_concurrent_jobs:
                    return
                if await self.ctx.store.claim(batch_id, self.token, self.settings.lease_ttl):
                    self.running.add(batch_id)
                    self._idle = anyio.Event()
                    group.start_soon(self._hold, batch_id)
        except ServiceUnavailable as exc:
            log.warning("cannot look for batches to run: %s", exc.message)

    async def _hold(self, batch_id: str) -> None:
        lost = threading.Event()
        thread_done = threading.Event()
        thread_done.set()
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._renew, batch_id, lost)
                try:
                    await run_job(self.ctx, batch_id, lost, thread_done)
                except ServiceUnavailable as exc:
                    log.warning("batch %s paused: %s", batch_id, exc.message)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._let_go(batch_id, thread_done)

    async def _let_go(self, batch_id: str, thread_done: threading.Event) -> None:
        """Release the lease, unless an abandoned thread still runs the job (it expires)."""
        self.running.discard(batch_id)
        if not self.running:
            self._idle.set()
        if not thread_done.is_set():
            return
        try:
            await self.ctx.store.release(batch_id, self.token)
        except ServiceUnavailable:
            log.warning("could not release the lease of batch %s; it expires", batch_id)
        self.wake()

    async def _renew(self, batch_id: str, lost: threading.Event) -> None:
        ttl = self.settings.lease_ttl
        while True:
            await anyio.sleep(ttl / 3)
            try:
                held = await self.ctx.store.renew(batch_id, self.token, ttl)
            except ServiceUnavailable:
                continue
            if not held:
                log.warning("lost the lease of batch %s; its next runner resumes it", batch_id)
                lost.set()
                return
