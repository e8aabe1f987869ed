"""One batch job run by the gateway: validate, run (or resume) on the engine, finalize.

``run_job`` takes a batch from wherever it stands::

    validating -> in_progress -> finalizing -> completed
    validating | in_progress | finalizing -> failed   (input gone, key revoked, engine
                                                       error, the key's day of tokens spent)
    validating | in_progress -> cancelling -> cancelled
    validating | in_progress -> finalizing -> expired   (past its window: ``expiry``)

The run itself is ``batch.runner.run_batch`` in a worker thread with the journal
``jobs/<batch id>.jsonl``: a job that resumes (after a restart, or on another replica)
skips every line its journal already answers. Between blocks ``BlockControl`` publishes
the counts, charges the owner's day what the journal holds beyond what the batch was
charged (``charges``: a block journalled by a runner that died before charging it is
charged by the next reconcile, none twice), and ends the run when the batch is
cancelled, past its window, the day's tokens are spent, or this runner must stop
(shutdown or lost lease; the job is then left as it is for the next runner). While a
block is in flight the job looks every ``stop_check_interval`` whether it must end, and
if so aborts the engine's requests (``BatchEngine.abort``): the block comes back without
them, and the run ends at once. Before a variant starts it reconciles the whole journal.
Finalizing splits the journal into the output and error files, which belong to the
batch's owner, and reconciles once more.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio import from_thread

from batch.engine import BatchEngine, EngineResult
from batch.requests import RequestPlanner
from batch.runner import Progress, read_lines, run_batch
from gateway.batches.charges import BatchCharges, KeyLookup
from gateway.batches.clock import Clock
from gateway.batches.files import FileStorage
from gateway.batches.finalize import Finalizer
from gateway.batches.guard import (
    GuardedEngine,
    JobCancelled,
    JobExpired,
    JobInterrupted,
    JobStopped,
)
from gateway.batches.objects import ACTIVE, BatchRecord, Counts, counts_fields
from gateway.batches.store import BatchStore
from gateway.batches.tally import JournalTally, Usage
from gateway.errors import NotFound, QuotaExhausted, ServiceUnavailable
from gateway.metrics import GatewayMetrics
from gateway.quotas.gate import DayCharge
from gateway.quotas.protocol import ApiKey

log = logging.getLogger(__name__)

EngineFactory = Callable[[], BatchEngine]


@dataclass
class JobContext:
    """What every job of one gateway process shares."""

    store: BatchStore
    storage: FileStorage
    keys: KeyLookup
    charges: BatchCharges
    engines: EngineFactory
    planner_for: Callable[[ApiKey, str], RequestPlanner]
    finalizer: Finalizer
    limiter: anyio.CapacityLimiter
    stopping: threading.Event
    clock: Clock
    metrics: GatewayMetrics
    stop_check_interval: float = 0.5


class BlockControl:
    """The ``JobControl`` of one run: its calls cross from the job's thread to the loop.

    What it charges is read from the journal (``tally``, shared with the run's
    ``StoreProgress``), never from the blocks: the journal is what a resumed job skips.
    """

    def __init__(
        self,
        ctx: JobContext,
        batch_id: str,
        key: ApiKey,
        lost: threading.Event,
        tally: JournalTally,
    ) -> None:
        self.ctx = ctx
        self.batch_id = batch_id
        self.key = key
        self.lost = lost
        self.tally = tally
        self._engine: GuardedEngine | None = None
        self._aborting = False
        self._engine_lock = threading.Lock()

    def engine(self) -> GuardedEngine:
        """The run's engine (built in the job's thread); aborted at once if the run must end."""
        engine = GuardedEngine(self.ctx.engines(), self)
        with self._engine_lock:
            self._engine = engine
            aborting = self._aborting
        if aborting:
            engine.abort()
        return engine

    def abort(self) -> None:
        """Abort the engine's requests in flight (from any thread; the engine may not exist yet)."""
        with self._engine_lock:
            self._aborting = True
            engine = self._engine
        if engine is not None:
            engine.abort()

    async def abort_when_stopped(self) -> None:
        """Beside the job's thread: abort the engine once the run must end."""
        while True:
            await anyio.sleep(self.ctx.stop_check_interval)
            try:
                stopped = await self.stopped()
            except ServiceUnavailable:
                continue  # the store is away: the next block's check decides
            if stopped is not None:
                break
        log.info(
            "batch %s must stop (%s): aborting its requests in flight",
            self.batch_id,
            type(stopped).__name__,
        )
        await anyio.to_thread.run_sync(self.abort)

    async def stopped(self) -> JobStopped | None:
        """Why the run must end now (the day's tokens aside), or None."""
        if self.ctx.stopping.is_set() or self.lost.is_set():
            return JobInterrupted(self.batch_id)
        record = await self.ctx.store.get_batch(self.batch_id)
        if record is None or record.status == "cancelling":
            return JobCancelled(self.batch_id)
        if record.overdue(self.ctx.clock.now()):
            return JobExpired(self.batch_id)
        return None

    async def _check(self, day: DayCharge) -> None:
        stopped = await self.stopped()
        if stopped is not None:
            raise stopped
        if day.exhausted:
            raise QuotaExhausted(
                "The API key's tokens per day are spent; the batch stopped.",
                retry_after=day.reset,
            )

    async def _before(self, variant: str, usage: Usage) -> None:
        charges = self.ctx.charges
        await charges.settle_all(self.key, self.batch_id, usage)
        await self._check(await charges.settle(self.key, self.batch_id, usage, variant))

    async def _after(self, variant: str, usage: Usage, more: bool) -> None:
        day = await self.ctx.charges.settle(self.key, self.batch_id, usage, variant)
        if more:
            await self._check(day)

    def _usage(self) -> Usage:
        """The journal's usage now (read in the job's thread)."""
        self.tally.update()
        return dict(self.tally.usage)

    def before(self, variant: str) -> None:
        from_thread.run(self._before, variant, self._usage())

    def after(self, variant: str, block: Sequence[EngineResult], more: bool) -> None:
        from_thread.run(self._after, variant, self._usage(), more)


class StoreProgress(Progress):
    """Publishes the journal's counts to the batch record after every block.

    The lines this run journalled are counted in ``gateway_batch_lines_total`` (those of
    earlier runs, read back at the start, are not counted again).
    """

    def __init__(
        self, store: BatchStore, batch_id: str, tally: JournalTally, metrics: GatewayMetrics
    ) -> None:
        self.store = store
        self.batch_id = batch_id
        self.tally = tally
        self.metrics = metrics
        self._seen: Counts | None = None

    def start(self, total: int, initial: int) -> None:
        self.tally.restart()
        self.advance(initial, 0)

    def advance(self, lines: int, tokens: int) -> None:
        counts = self.tally.update()
        if self._seen is not None:
            self.metrics.batch_lines.labels("completed").inc(
                counts.completed - self._seen.completed
            )
            self.metrics.batch_lines.labels("failed").inc(counts.failed - self._seen.failed)
        self._seen = counts
        from_thread.run(self.store.set_counts, self.batch_id, counts)


def count_requests(path: Path) -> int:
    return sum(1 for _ in read_lines(path))


async def _owner(ctx: JobContext, record: BatchRecord) -> ApiKey | None:
    try:
        key: ApiKey | None = await ctx.keys.get(record.owner)
    except NotFound:
        key = None
    if key is None or key.revoked:
        await ctx.finalizer.fail(
            record, "invalid_api_key", "The API key that created this batch was revoked."
        )
        return None
    return key


async def _start(ctx: JobContext, record: BatchRecord) -> BatchRecord | None:
    """Validate a batch about to run; the record in progress, or None when it cannot run."""
    source = ctx.storage.path(record.input_file_id)
    if not source.exists():
        await ctx.finalizer.fail(
            record, "file_not_found", f"The input file {record.input_file_id} is gone."
        )
        return None
    if record.status != "validating":
        return record
    total = await anyio.to_thread.run_sync(count_requests, source)
    fields = {"in_progress_at": ctx.clock.now(), **counts_fields(Counts(total=total))}
    if await ctx.store.transition(record.id, "in_progress", ["validating"], fields) != "validating":
        return None  # cancelled meanwhile: the next look finalizes it
    return await ctx.store.get_batch(record.id)


def _run(
    ctx: JobContext, record: BatchRecord, planner: RequestPlanner, control: BlockControl
) -> None:
    run_batch(
        ctx.storage.path(record.input_file_id),
        control.tally.path,
        planner=planner,
        engine_factory=control.engine,
        progress=StoreProgress(ctx.store, record.id, control.tally, ctx.metrics),
    )


async def _after_run(ctx: JobContext, record: BatchRecord) -> None:
    before = await ctx.store.transition(
        record.id, "finalizing", ["in_progress"], {"finalizing_at": ctx.clock.now()}
    )
    if before == "in_progress":
        await ctx.finalizer.finalize(record, "completed", allowed=["finalizing"])
    elif before == "cancelling":
        await ctx.finalizer.finalize(record, "cancelled", allowed=["cancelling"])


async def run_job(
    ctx: JobContext, batch_id: str, lost: threading.Event, thread_done: threading.Event
) -> None:
    """Take one batch (whose lease the caller holds) as far as it goes."""
    record = await ctx.store.get_batch(batch_id)
    if record is None or record.status not in ACTIVE:
        return
    if record.overdue(ctx.clock.now()):
        await ctx.finalizer.expire(record)
        return
    if record.status == "finalizing" and record.expiring_at is not None:
        await ctx.finalizer.finish_expiry(record)
        return
    if record.status in ("cancelling", "finalizing"):
        final = "cancelled" if record.status == "cancelling" else "completed"
        await ctx.finalizer.finalize(record, final, allowed=[record.status])
        return
    key = await _owner(ctx, record)
    started = await _start(ctx, record) if key is not None else None
    if key is None or started is None:
        return
    tally = JournalTally(ctx.storage.journal(batch_id), started.counts.total)
    control = BlockControl(ctx, batch_id, key, lost, tally)
    planner = ctx.planner_for(key, started.endpoint)
    await _run_thread(ctx, started, planner, control, thread_done)


async def _run_aborting(ctx: JobContext, work: Callable[[], None], control: BlockControl) -> None:
    """Run ``work`` in a thread, aborting the engine once the run must end."""
    failure: BaseException | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(control.abort_when_stopped)
        try:
            await anyio.to_thread.run_sync(work, abandon_on_cancel=True, limiter=ctx.limiter)
        except Exception as exc:  # re-raised outside the group, as it came
            failure = exc
        group.cancel_scope.cancel()
    if failure is not None:
        raise failure


async def _run_thread(
    ctx: JobContext,
    record: BatchRecord,
    planner: RequestPlanner,
    control: BlockControl,
    thread_done: threading.Event,
) -> None:
    def work() -> None:
        try:
            _run(ctx, record, planner, control)
        finally:
            thread_done.set()

    thread_done.clear()
    try:
        await _run_aborting(ctx, work, control)
    except JobCancelled:
        await ctx.finalizer.finalize(record, "cancelled", allowed=["cancelling"])
    except JobExpired:
        await ctx.finalizer.expire(record)
    except JobInterrupted:
        log.info("batch %s interrupted; it resumes with its next runner", record.id)
    except ServiceUnavailable as exc:
        log.warning("batch %s paused: %s", record.id, exc.message)
    except QuotaExhausted as exc:
        await ctx.finalizer.fail(record, "insufficient_quota", exc.message)
    except Exception as exc:
        log.exception("batch %s failed", record.id)
        await ctx.finalizer.fail(
            record, "engine_error", f"The batch failed: {type(exc).__name__}: {exc}"
        )
    else:
        await _after_run(ctx, record)
