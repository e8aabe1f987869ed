"""The end of a batch: its journal split into output and error files, its final status.

Finalizing can run twice (a runner that died while finalizing, a race with a cancel):
the output files have ids fixed by the batch id, so a second pass rewrites the same
files, and only the status change that is still allowed happens.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

import anyio

from gateway.batches.files import FileStorage
from gateway.batches.objects import (
    ACTIVE,
    OUTPUT_PURPOSE,
    BatchRecord,
    Counts,
    FileRecord,
    batch_error,
    counts_fields,
    output_file_ids,
)
from gateway.batches.store import BatchStore
from gateway.batches.tally import split_journal

log = logging.getLogger(__name__)


def now() -> int:
    return int(time.time())


class Finalizer:
    """Ends batches: output files from the journal, then the final status."""

    def __init__(self, store: BatchStore, storage: FileStorage) -> None:
        self.store = store
        self.storage = storage

    async def _output_files(self, record: BatchRecord) -> tuple[Counts, dict[str, str]]:
        out_id, err_id = output_file_ids(record.id)
        counts: Counts = await anyio.to_thread.run_sync(
            split_journal,
            self.storage.journal(record.id),
            self.storage.path(out_id),
            self.storage.path(err_id),
            record.counts.total,
        )
        kept = {}
        for field, file_id, kind in (("output", out_id, "output"), ("error", err_id, "errors")):
            path = self.storage.path(file_id)
            if path.exists():
                name = f"{record.id}_{kind}.jsonl"
                size = path.stat().st_size
                await self.store.put_file(
                    FileRecord(file_id, record.owner, OUTPUT_PURPOSE, name, size, now())
                )
                kept[f"{field}_file_id"] = file_id
        return counts, kept

    async def finalize(
        self,
        record: BatchRecord,
        status: str,
        *,
        allowed: Sequence[str],
        errors: list[dict[str, str | int | None]] | None = None,
    ) -> None:
        """Write the output and error files and end the batch in ``status`` (if ``allowed``)."""
        counts, files = await self._output_files(record)
        fields: dict[str, str | int] = {
            f"{status}_at": now(),
            "output_file_id": "",
            "error_file_id": "",
            **files,
            **counts_fields(counts),
        }
        if errors is not None:
            fields["errors"] = json.dumps(errors)
        before = await self.store.transition(record.id, status, allowed, fields)
        if before in allowed:
            self.storage.journal(record.id).unlink(missing_ok=True)
            log.info("batch %s %s: %s", record.id, status, counts.request_counts())

    async def fail(self, record: BatchRecord, code: str, message: str) -> None:
        """End the batch as failed with one error (from any unfinished status)."""
        log.warning("batch %s failed: %s", record.id, message)
        errors = [batch_error(code, message)]
        await self.finalize(record, "failed", allowed=sorted(ACTIVE), errors=errors)
