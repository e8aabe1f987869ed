"""File and batch metadata in Redis, and the leases that give each running job one runner.

Layout (under the quota ``key_prefix``, one hash tag so a Redis Cluster keeps it on
one slot and the scripts stay legal)::

    {prefix}{batches}:file:<id>              STRING  the file's JSON record
    {prefix}{batches}:files:<owner>          ZSET    file id -> time filed (all purposes)
    {prefix}{batches}:files:<owner>:<purpose> ZSET   the same, one purpose
    {prefix}{batches}:expiring               ZSET    file id -> its expires_at
    {prefix}{batches}:stored:<owner>         HASH    files, bytes: what the owner keeps
    {prefix}{batches}:sizes:<owner>          HASH    file id -> bytes counted in ``stored``
    {prefix}{batches}:batch:<id>             HASH    the batch (``BatchRecord.to_hash``)
    {prefix}{batches}:batches:<owner>        ZSET    batch id -> time created
    {prefix}{batches}:active                 ZSET    unfinished batch id -> created_at
    {prefix}{batches}:lease:<id>             STRING  the runner holding the job (expires)

Status changes go through ``transition.lua``: a change happens only from the statuses
the caller allows, so a cancel and a runner finishing the job cannot both win. A lease
is taken with ``SET NX PX`` and renewed or released only by its holder's token; a
runner that dies stops renewing, and its job is free again ``lease_ttl`` later.

A file is filed and counted in its owner's ``stored`` in one call (``put_file.lua``),
which refuses an upload past the owner's limits, so two uploads racing for the last
room cannot both pass; ``delete_file.lua`` frees it, once however often it runs.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

from redis.asyncio import Redis

from gateway.batches.objects import (
    COMPLETION_WINDOW_SECONDS,
    TERMINAL,
    BatchRecord,
    Counts,
    FileRecord,
    counts_fields,
)
from gateway.errors import ServiceUnavailable, StorageLimitExceeded
from gateway.quotas.client import BACKEND_ERRORS, bounded

T = TypeVar("T")

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class BatchStoreUnavailable(ServiceUnavailable):
    """Redis, which holds the batch metadata, is down or slow."""

    default_code = "batch_store_unavailable"


@dataclass(frozen=True, slots=True)
class StoredFiles:
    """What one owner keeps: how many files, how many bytes (``None`` limits: unlimited)."""

    files: int = 0
    bytes: int = 0
    max_files: int | None = None
    max_bytes: int | None = None

    def over(self, size: int) -> str | None:
        """The limit (``files`` or ``bytes``) one more file of ``size`` bytes passes, if any."""
        if self.max_files is not None and self.files + 1 > self.max_files:
            return "files"
        if self.max_bytes is not None and self.bytes + size > self.max_bytes:
            return "bytes"
        return None

    def refusal(self, limit: str, size: int) -> StorageLimitExceeded:
        """The error of an upload of ``size`` bytes that ``limit`` refuses."""
        if limit == "files":
            return StorageLimitExceeded(
                f"This API key keeps {self.files} files, the most it may; delete files "
                "before uploading more.",
                param="file",
                code="too_many_files",
            )
        return StorageLimitExceeded(
            f"This API key keeps {self.bytes} bytes of files; {size} more would pass its "
            f"limit of {self.max_bytes}. Delete files before uploading more.",
            param="file",
        )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _script(redis: Redis, name: str) -> Any:
    return redis.register_script(resources.files("gateway.batches").joinpath(name).read_text())


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class BatchStore:
    """Files, batches and job leases of every gateway replica, in one Redis."""

    def __init__(self, redis: Redis, *, prefix: str, timeout: float) -> None:
        self._redis = redis
        self._timeout = timeout
        self._base = f"{prefix}{{batches}}:"
        self._transition = _script(redis, "transition.lua")
        self._put_file = _script(redis, "put_file.lua")
        self._delete_file = _script(redis, "delete_file.lua")
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def _key(self, *parts: str) -> str:
        return self._base + ":".join(parts)

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await bounded(call, self._timeout)
        except BACKEND_ERRORS as exc:
            raise BatchStoreUnavailable("The batch store is unavailable.") from exc

    async def _page(
        self, index: str, *, after: str | None, limit: int, descending: bool = True
    ) -> tuple[list[str], bool]:
        """Ids of one page of an index (newest first unless ascending), and whether more follow."""
        start = 0
        if after:
            rank = self._redis.zrevrank if descending else self._redis.zrank
            found: Any = await self._call(rank(index, after))
            if found is None:
                return [], False
            start = int(found) + 1
        span = self._redis.zrevrange if descending else self._redis.zrange
        ids = [_text(i) for i in await self._call(span(index, start, start + limit))]
        return ids[:limit], len(ids) > limit

    # files

    async def put_file(
        self, record: FileRecord, *, max_files: int | None = None, max_bytes: int | None = None
    ) -> None:
        """File ``record`` and count it for its owner; ``StorageLimitExceeded`` past a limit."""
        expires = "" if record.expires_at is None else str(record.expires_at)
        args = [
            record.id,
            record.dumps(),
            repr(time.time()),
            expires,
            record.size,
            _limit(max_files),
            _limit(max_bytes),
        ]
        reply = await self._call(self._put_file(keys=self._file_keys(record), args=args))
        status, files, stored = (int(v) for v in reply)
        if status:
            usage = StoredFiles(files, stored, max_files, max_bytes)
            raise usage.refusal("files" if status == 1 else "bytes", record.size)

    async def stored_files(
        self, owner: str, *, max_files: int | None = None, max_bytes: int | None = None
    ) -> StoredFiles:
        """What ``owner`` keeps now, with the limits it is held to."""
        found: Any = await self._call(
            self._redis.hmget(self._key("stored", owner), "files", "bytes")
        )
        files, stored = (int(v or 0) for v in found)
        return StoredFiles(files, stored, max_files, max_bytes)

    def _file_indexes(self, record: FileRecord) -> tuple[str, str]:
        owned = self._key("files", record.owner)
        return owned, f"{owned}:{record.purpose}"

    def _file_keys(self, record: FileRecord) -> list[str]:
        return [
            self._key("file", record.id),
            *self._file_indexes(record),
            self._key("expiring"),
            self._key("stored", record.owner),
            self._key("sizes", record.owner),
        ]

    async def get_file(self, file_id: str) -> FileRecord | None:
        raw = await self._call(self._redis.get(self._key("file", file_id)))
        return None if raw is None else FileRecord.loads(raw)

    async def delete_file(self, record: FileRecord) -> None:
        """Delete the record and free what it counted for its owner (once)."""
        await self._call(self._delete_file(keys=self._file_keys(record), args=[record.id]))

    async def expired_file_ids(self, now: int) -> list[str]:
        """Files whose ``expires_at`` has come (soonest first)."""
        found = await self._call(self._redis.zrangebyscore(self._key("expiring"), "-inf", now))
        return [_text(i) for i in found]

    async def list_files(
        self, owner: str, *, purpose: str | None, after: str | None, limit: int, descending: bool
    ) -> tuple[list[FileRecord], bool]:
        index = self._key("files", owner) + (f":{purpose}" if purpose else "")
        ids, more = await self._page(index, after=after, limit=limit, descending=descending)
        raws = (
            await self._call(self._redis.mget([self._key("file", i) for i in ids])) if ids else []
        )
        return [FileRecord.loads(r) for r in raws if r is not None], more

    # batches

    async def create_batch(self, record: BatchRecord) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            fields: Any = record.to_hash()
            pipe.hset(self._key("batch", record.id), mapping=fields)
            pipe.zadd(self._key("batches", record.owner), {record.id: time.time()})
            pipe.zadd(self._key("active"), {record.id: record.created_at})
            await self._call(pipe.execute())

    async def get_batch(self, batch_id: str) -> BatchRecord | None:
        data: Any = await self._call(self._redis.hgetall(self._key("batch", batch_id)))
        return BatchRecord.from_hash(data) if data else None

    async def list_batches(
        self, owner: str, *, after: str | None, limit: int
    ) -> tuple[list[BatchRecord], bool]:
        ids, more = await self._page(self._key("batches", owner), after=after, limit=limit)
        found = [await self.get_batch(i) for i in ids]
        return [b for b in found if b is not None], more

    async def active_ids(self) -> list[str]:
        """Unfinished batches, oldest first."""
        return [_text(i) for i in await self._call(self._redis.zrange(self._key("active"), 0, -1))]

    async def statuses(self, batch_ids: Sequence[str]) -> list[str]:
        """The status of each batch (one pipelined call; "" for a batch gone)."""
        if not batch_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for batch_id in batch_ids:
                pipe.hget(self._key("batch", batch_id), "status")
            found: list[Any] = await self._call(pipe.execute())
        return ["" if v is None else _text(v) for v in found]

    async def overdue_ids(self, now: int) -> list[str]:
        """Unfinished batches past their completion window at ``now``, oldest first."""
        latest = now - COMPLETION_WINDOW_SECONDS
        found = await self._call(self._redis.zrangebyscore(self._key("active"), "-inf", latest))
        return [_text(i) for i in found]

    async def transition(
        self,
        batch_id: str,
        status: str,
        allowed: Iterable[str],
        fields: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Set ``status`` (and ``fields``) if the batch is in an ``allowed`` status.

        Returns the status before the call: the change happened iff it is in ``allowed``.
        """
        pairs = [str(v) for item in (fields or {}).items() for v in item]
        args = [batch_id, status, " ".join(allowed), "1" if status in TERMINAL else "0", *pairs]
        keys = [self._key("batch", batch_id), self._key("active")]
        before = await self._call(self._transition(keys=keys, args=args))
        return None if before is None else _text(before)

    async def set_counts(self, batch_id: str, counts: Counts) -> None:
        fields: Any = counts_fields(counts)
        await self._call(self._redis.hset(self._key("batch", batch_id), mapping=fields))

    # leases

    async def claim(self, batch_id: str, token: str, ttl: float) -> bool:
        name = self._key("lease", batch_id)
        return bool(await self._call(self._redis.set(name, token, nx=True, px=_ms(ttl))))

    async def renew(self, batch_id: str, token: str, ttl: float) -> bool:
        keys = [self._key("lease", batch_id)]
        return bool(await self._call(self._renew(keys=keys, args=[token, _ms(ttl)])))

    async def release(self, batch_id: str, token: str) -> None:
        await self._call(self._release(keys=[self._key("lease", batch_id)], args=[token]))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))
