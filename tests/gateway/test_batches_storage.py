"""Per-key limits on stored files: counted in Redis when filed, refused past them, freed on delete.

Real Redis (the shared one, under a prefix of this test's own) and real HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from gateway.batches.objects import FileRecord
from gateway.batches.store import BatchStore, StoredFiles
from gateway.errors import StorageLimitExceeded
from tests.gateway.batches_support import (
    ScriptedEngine,
    auth,
    batch_file,
    create_key,
    running_gateway,
    settings,
    upload,
)
from tests.support.shared_redis import SHARED_REDIS_URL, unique_prefix
from tests.support.stub_upstream import StubUpstream

MAX_FILES, MAX_BYTES = 3, 4000


@pytest.fixture
def gateway(stub: StubUpstream, tmp_path: Path) -> Iterator[tuple[FastAPI, httpx.Client]]:
    limits = {"max_files_per_key": MAX_FILES, "max_bytes_per_key": MAX_BYTES}
    with unique_prefix("batches-storage") as prefix:
        config = settings(stub.base_url, prefix, tmp_path, **limits)
        with running_gateway(config, ScriptedEngine()) as running:
            yield running


@pytest.fixture
def http(gateway: tuple[FastAPI, httpx.Client]) -> httpx.Client:
    return gateway[1]


def post_file(http: httpx.Client, key: dict[str, str], content: bytes) -> httpx.Response:
    return http.post(
        "/v1/files",
        files={"file": ("input.jsonl", content, "application/jsonl")},
        data={"purpose": "batch"},
        headers=auth(key),
    )


def listed(http: httpx.Client, key: dict[str, str]) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = http.get("/v1/files", headers=auth(key)).json()["data"]
    return data


def refused(answer: httpx.Response, code: str) -> None:
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", "file", code)


def test_the_file_past_the_count_is_refused_and_a_delete_frees_room(
    http: httpx.Client, tmp_path: Path
) -> None:
    key, other = create_key(http), create_key(http)
    kept = [upload(http, key, batch_file(1))["id"] for _ in range(MAX_FILES)]
    refused(post_file(http, key, batch_file(1)), "too_many_files")
    assert len(listed(http, key)) == MAX_FILES
    assert sorted(p.name for p in (tmp_path / "files").iterdir()) == sorted(kept)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert upload(http, other, batch_file(1))["id"]  # another key keeps files of its own

    assert http.delete(f"/v1/files/{kept[0]}", headers=auth(key)).status_code == 200
    assert upload(http, key, batch_file(1))["id"]
    refused(post_file(http, key, batch_file(1)), "too_many_files")


def test_the_bytes_past_the_limit_are_refused(http: httpx.Client) -> None:
    key = create_key(http)
    content = batch_file(15)
    assert MAX_BYTES // 2 < len(content) < MAX_BYTES
    first = upload(http, key, content)
    answer = post_file(http, key, content)
    refused(answer, "file_storage_limit_exceeded")
    assert str(MAX_BYTES) in answer.json()["error"]["message"]
    assert [f["id"] for f in listed(http, key)] == [first["id"]]
    http.delete(f"/v1/files/{first['id']}", headers=auth(key))
    assert upload(http, key, content)["bytes"] == len(content)


@pytest.mark.anyio
async def test_racing_uploads_cannot_both_take_the_last_room(
    http: httpx.Client, tmp_path: Path
) -> None:
    key = create_key(http)
    for _ in range(MAX_FILES - 1):
        upload(http, key, batch_file(1))
    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=str(http.base_url), timeout=30) as client:

        async def race() -> None:
            answer = await client.post(
                "/v1/files",
                files={"file": ("input.jsonl", batch_file(1), "application/jsonl")},
                data={"purpose": "batch"},
                headers=auth(key),
            )
            statuses.append(answer.status_code)

        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(race)
    assert sorted(statuses) == [200] + [400] * 7
    assert len(listed(http, key)) == MAX_FILES
    assert len(list((tmp_path / "files").iterdir())) == MAX_FILES
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.fixture
async def store() -> AsyncIterator[BatchStore]:
    with unique_prefix("batches-stored") as prefix:
        redis = Redis.from_url(SHARED_REDIS_URL)
        try:
            yield BatchStore(redis, prefix=prefix, timeout=2.0)
        finally:
            await redis.aclose()


def record(file_id: str, size: int) -> FileRecord:
    return FileRecord(file_id, "key_1", "batch", "in.jsonl", size, 0)


@pytest.mark.anyio
async def test_a_file_is_counted_once_and_freed_once(store: BatchStore) -> None:
    await store.put_file(record("file-a", 100), max_files=2, max_bytes=300)
    await store.put_file(record("file-a", 150), max_files=2, max_bytes=300)  # written again
    assert await store.stored_files("key_1") == StoredFiles(1, 150)
    await store.put_file(record("file-b", 150), max_files=2, max_bytes=300)
    with pytest.raises(StorageLimitExceeded) as caught:
        await store.put_file(record("file-c", 1), max_files=2, max_bytes=300)
    assert caught.value.code == "too_many_files"
    assert await store.get_file("file-c") is None
    for _ in range(2):
        await store.delete_file(record("file-a", 150))
    assert await store.stored_files("key_1") == StoredFiles(1, 150)
    await store.put_file(record("file-d", 200))  # a batch's output: counted, never refused
    assert await store.stored_files("key_1") == StoredFiles(2, 350)
