"""The end of a batch: its journal split into output and error files, its final status.

Finalizing can run twice (a runner that died while finalizing, a race with a cancel):
the output files have ids fixed by the batch id, so a second pass rewrites the same
files, and only the status change that is still allowed happens.

Before the final status, the batch's key is charged what the journal holds beyond what
the batch was charged (``charges``): a runner that died between journalling a block and
charging it leaves that to this reconcile, and a second pass finds nothing owed.

An expiry (``expire``) first claims the batch with the same atomic status change
(``validating | in_progress -> finalizing``, marked ``expiring_at``), so a cancel or the
runner's own ending cannot also win; it then journals the ``batch_expired`` lines and
ends the batch ``expired``. A runner that dies in between leaves it ``finalizing`` with
the mark, and the next one finishes the expiry (``finish_expiry``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import replace

import anyio

from gateway.batches.charges import BatchCharges
from gateway.batches.clock import Clock
from gateway.batches.expiry import expire_unanswered
from gateway.batches.files import FileStorage
from gateway.batches.objects import (
    ACTIVE,
    EXPIRABLE,
    OUTPUT_PURPOSE,
    BatchRecord,
    Counts,
    FileRecord,
    batch_error,
    counts_fields,
    output_file_ids,
)
from gateway.batches.store import BatchStore
from gateway.batches.tally import Usage, split_journal
from gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)


class Finalizer:
    """Ends batches: output files from the journal, its tokens charged, the final status."""

    def __init__(
        self,
        store: BatchStore,
        storage: FileStorage,
        clock: Clock,
        charges: BatchCharges,
        metrics: GatewayMetrics,
    ) -> None:
        self.store = store
        self.storage = storage
        self.clock = clock
        self.charges = charges
        self.metrics = metrics

    def _output_record(self, record: BatchRecord, file_id: str, kind: str) -> FileRecord:
        created = self.clock.now()
        ttl = record.output_expires_after
        return FileRecord(
            file_id,
            record.owner,
            OUTPUT_PURPOSE,
            f"{record.id}_{kind}.jsonl",
            self.storage.path(file_id).stat().st_size,
            created,
            None if ttl is None else created + ttl,
        )

    async def _output_files(self, record: BatchRecord) -> tuple[Counts, Usage, dict[str, str]]:
        out_id, err_id = output_file_ids(record.id)
        counts, usage = await anyio.to_thread.run_sync(
            split_journal,
            self.storage.journal(record.id),
            self.storage.path(out_id),
            self.storage.path(err_id),
            record.counts.total,
        )
        kept = {}
        for field, file_id, kind in (("output", out_id, "output"), ("error", err_id, "errors")):
            if self.storage.path(file_id).exists():
                await self.store.put_file(self._output_record(record, file_id, kind))
                kept[f"{field}_file_id"] = file_id
        return counts, usage, kept

    async def finalize(
        self,
        record: BatchRecord,
        status: str,
        *,
        allowed: Sequence[str],
        errors: list[dict[str, str | int | None]] | None = None,
    ) -> None:
        """Write the output and error files and end the batch in ``status`` (if ``allowed``).

        The journal's tokens not charged yet are charged before the status changes.
        """
        counts, usage, files = await self._output_files(record)
        await self.charges.settle_owner(record, usage)
        fields: dict[str, str | int] = {
            f"{status}_at": self.clock.now(),
            "output_file_id": "",
            "error_file_id": "",
            **files,
            **counts_fields(counts),
        }
        if errors is not None:
            fields["errors"] = json.dumps(errors)
        before = await self.store.transition(record.id, status, allowed, fields)
        if before in allowed:
            self.metrics.batches_finished.labels(status).inc()
            self.storage.journal(record.id).unlink(missing_ok=True)
            log.info("batch %s %s: %s", record.id, status, counts.request_counts())

    async def fail(self, record: BatchRecord, code: str, message: str) -> None:
        """End the batch as failed with one error (from any unfinished status)."""
        log.warning("batch %s failed: %s", record.id, message)
        errors = [batch_error(code, message)]
        await self.finalize(record, "failed", allowed=sorted(ACTIVE), errors=errors)

    async def expire(self, record: BatchRecord) -> None:
        """End a batch past its window as ``expired`` (see the module docstring)."""
        now = self.clock.now()
        fields = {"finalizing_at": now, "expiring_at": now}
        before = await self.store.transition(record.id, "finalizing", EXPIRABLE, fields)
        if before in EXPIRABLE:
            await self.finish_expiry(record)
        elif before == "cancelling":  # the cancel came first: it ends as cancelled
            await self.finalize(record, "cancelled", allowed=["cancelling"])

    async def finish_expiry(self, record: BatchRecord) -> None:
        """The ``batch_expired`` lines, then ``finalizing -> expired``."""
        total = await anyio.to_thread.run_sync(
            expire_unanswered,
            self.storage.path(record.input_file_id),
            self.storage.journal(record.id),
        )
        counted = replace(record, counts=Counts(total=max(total, record.counts.total)))
        await self.finalize(counted, "expired", allowed=["finalizing"])
