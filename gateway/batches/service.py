"""What the ``/v1/files`` and ``/v1/batches`` routes do, for one authenticated key.

Every file and batch belongs to the API key that created it: any other key is told
``404`` for it, exactly as for an id that does not exist, and lists show a key only
its own. A batch's output and error files belong to the batch's key. An expired file is
gone as well: 404, and left out of lists, from its ``expires_at`` on (the supervisor's
sweep deletes it later; ``gateway.batches.expiry``).

What a key keeps (its uploads and its batches' output files) is held to
``max_files_per_key`` and ``max_bytes_per_key``: an upload past either is refused (400,
``StorageLimitExceeded``) and nothing of it is kept; deleting a file, or the sweep of an
expired one, frees its room.
"""

from __future__ import annotations

import os

from fastapi import Request
from pydantic import BaseModel, ConfigDict

from batch.lines import ENDPOINTS
from gateway.batches.charges import TokenCharger
from gateway.batches.clock import Clock
from gateway.batches.expiry import ExpiresAfter
from gateway.batches.files import FileStorage, Upload, declared_file_bytes, receive_upload
from gateway.batches.objects import (
    INPUT_PURPOSE,
    BatchRecord,
    FileRecord,
    new_batch_id,
    new_file_id,
)
from gateway.batches.settings import BatchSettings
from gateway.batches.store import BatchStore, StoredFiles
from gateway.batches.supervisor import Supervisor
from gateway.errors import InvalidRequest, NotFound, QuotaExhausted
from gateway.quotas.protocol import ApiKey, KeyStore

COMPLETION_WINDOW = "24h"
MAX_METADATA = 16


class CreateBatch(BaseModel):
    """The body of ``POST /v1/batches``."""

    model_config = ConfigDict(extra="forbid")

    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = None
    output_expires_after: ExpiresAfter | None = None


def _check_metadata(metadata: dict[str, str] | None) -> None:
    if metadata is None:
        return
    if len(metadata) > MAX_METADATA:
        raise InvalidRequest(f"metadata has more than {MAX_METADATA} keys.", param="metadata")
    for key, value in metadata.items():
        if len(key) > 64 or len(value) > 512:
            raise InvalidRequest(
                "metadata keys have at most 64 characters, values at most 512.",
                param="metadata",
            )


def _check_batch(body: CreateBatch) -> None:
    if body.endpoint not in ENDPOINTS:
        raise InvalidRequest(
            f"endpoint must be one of {', '.join(ENDPOINTS)}.",
            param="endpoint",
            code="unsupported_endpoint",
        )
    if body.completion_window != COMPLETION_WINDOW:
        raise InvalidRequest(
            f"completion_window must be '{COMPLETION_WINDOW}'.", param="completion_window"
        )
    _check_metadata(body.metadata)


class BatchService:
    """Files and batches of the keys calling this gateway."""

    def __init__(
        self,
        settings: BatchSettings,
        store: BatchStore,
        storage: FileStorage,
        charger: TokenCharger,
        supervisor: Supervisor,
        keys: KeyStore,
        clock: Clock,
    ) -> None:
        self.keys = keys
        self.clock = clock
        self.settings = settings
        self.store = store
        self.storage = storage
        self.charger = charger
        self.supervisor = supervisor

    # files

    async def stored(self, key: ApiKey) -> StoredFiles:
        """What the key keeps, with its storage limits."""
        return await self.store.stored_files(
            key.key_id,
            max_files=self.settings.max_files_per_key,
            max_bytes=self.settings.max_bytes_per_key,
        )

    async def upload(self, request: Request, key: ApiKey) -> FileRecord:
        """Receive, file and count an upload; past the key's storage limits, refuse it.

        A key at its limits is refused before the body is read; the check that counts is
        the store's, atomic with filing the record, before the bytes are moved in.
        """
        stored, declared = await self.stored(key), declared_file_bytes(request)
        if (limit := stored.over(declared)) is not None:
            raise stored.refusal(limit, declared)
        upload = await receive_upload(request, self.storage, self.settings)
        try:
            return await self._file(key, upload)
        finally:
            upload.path.unlink(missing_ok=True)

    async def _file(self, key: ApiKey, upload: Upload) -> FileRecord:
        created = self.clock.now()
        ttl = upload.expires_after
        record = FileRecord(
            new_file_id(),
            key.key_id,
            INPUT_PURPOSE,
            upload.filename,
            upload.size,
            created,
            None if ttl is None else created + ttl,
        )
        await self.store.put_file(
            record,
            max_files=self.settings.max_files_per_key,
            max_bytes=self.settings.max_bytes_per_key,
        )
        try:
            os.replace(upload.path, self.storage.path(record.id))
        except BaseException:
            await self.store.delete_file(record)
            raise
        return record

    async def file(self, key: ApiKey, file_id: str, *, param: str = "file_id") -> FileRecord:
        """The key's own file (any other key's, an expired one, or none: 404 naming ``param``)."""
        record = await self.store.get_file(file_id)
        if record is None or record.owner != key.key_id or record.expired(self.clock.now()):
            raise NotFound(f"No such File object: {file_id}", param=param)
        return record

    async def delete_file(self, key: ApiKey, file_id: str) -> FileRecord:
        record = await self.file(key, file_id)
        for batch_id in await self.store.active_ids():
            batch = await self.store.get_batch(batch_id)
            if batch is not None and batch.input_file_id == file_id:
                raise InvalidRequest(
                    f"The file is the input of {batch_id}, which has not finished.",
                    param="file_id",
                    code="file_in_use",
                )
        await self.store.delete_file(record)
        self.storage.delete(record.id)
        return record

    async def files(
        self, key: ApiKey, *, purpose: str | None, after: str | None, limit: int, order: str
    ) -> tuple[list[FileRecord], bool]:
        found, more = await self.store.list_files(
            key.key_id, purpose=purpose, after=after, limit=limit, descending=order == "desc"
        )
        now = self.clock.now()
        return [f for f in found if not f.expired(now)], more

    # batches

    async def create(self, key: ApiKey, body: CreateBatch) -> BatchRecord:
        _check_batch(body)
        source = await self.file(key, body.input_file_id, param="input_file_id")
        if source.purpose != INPUT_PURPOSE:
            raise InvalidRequest(
                f"The input file's purpose must be '{INPUT_PURPOSE}'.", param="input_file_id"
            )
        day = await self.charger.charge(key, "", 0)
        if day.exhausted:
            raise QuotaExhausted("This API key's tokens per day are spent.", retry_after=day.reset)
        record = BatchRecord(
            id=new_batch_id(),
            owner=key.key_id,
            endpoint=body.endpoint,
            input_file_id=source.id,
            created_at=self.clock.now(),
            completion_window=body.completion_window,
            metadata=body.metadata,
            output_expires_after=expiry.seconds if (expiry := body.output_expires_after) else None,
        )
        await self.store.create_batch(record)
        self.supervisor.wake()
        return record

    async def batch(self, key: ApiKey, batch_id: str) -> BatchRecord:
        record = await self.store.get_batch(batch_id)
        if record is None or record.owner != key.key_id:
            raise NotFound(f"No such Batch object: {batch_id}", param="batch_id")
        return record

    async def batches(
        self, key: ApiKey, *, after: str | None, limit: int
    ) -> tuple[list[BatchRecord], bool]:
        return await self.store.list_batches(key.key_id, after=after, limit=limit)

    async def cancel(self, key: ApiKey, batch_id: str) -> BatchRecord:
        await self.batch(key, batch_id)
        before = await self.store.transition(
            batch_id,
            "cancelling",
            ["validating", "in_progress"],
            {"cancelling_at": self.clock.now()},
        )
        if before not in ("validating", "in_progress", "cancelling", "cancelled"):
            raise InvalidRequest(
                f"A batch that is {before} cannot be cancelled.",
                param="batch_id",
                code="batch_not_cancellable",
            )
        self.supervisor.wake()
        return await self.batch(key, batch_id)
