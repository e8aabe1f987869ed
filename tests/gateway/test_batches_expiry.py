"""Expiry in the Batch API: batches past their 24 hours, files past their ``expires_at``.

Real gateways on the shared Redis, as in test_batches_jobs; time is moved, never waited
for: the Batch API's shared ``Clock`` gets a source a day (or an hour) ahead of the
machine's, and the supervisor (polling every 0.2 s) acts on the next look.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI
from openai import BadRequestError, OpenAI

from gateway.batches.expiry import EXPIRED_CODE, expire_unanswered
from tests.gateway.batches_support import (
    TEXT_MODEL,
    TOKENS_PER_LINE,
    ScriptedEngine,
    auth,
    batch_file,
    chat_line,
    create_batch,
    create_key,
    day_used,
    finished,
    lines_of,
    running_gateway,
    service,
    settings,
    upload,
    wait_for,
)
from tests.support.shared_redis import SHARED_REDIS_URL, unique_prefix
from tests.support.stub_upstream import StubUpstream

HOUR = 3600
DAY = 24 * HOUR


@pytest.fixture
def prefix() -> Iterator[str]:
    with unique_prefix("batches-expiry") as name:
        yield name


def _ahead(app: FastAPI, seconds: int) -> None:
    """From now on the Batch API's clock reads ``seconds`` later than the machine's."""
    service(app).clock.source = lambda: time.time() + seconds


def _wait_until(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _expired_lines(http: httpx.Client, key: dict[str, str], file_id: str) -> list[str]:
    lines = lines_of(http, key, file_id)
    assert all(r["error"]["code"] == EXPIRED_CODE and r["response"] is None for r in lines)
    return sorted(r["custom_id"] for r in lines)


def test_a_running_batch_expires_at_once_keeping_its_answers(
    stub: StubUpstream, tmp_path: Path, prefix: str
) -> None:
    engine = ScriptedEngine(block=2, pause_after=1, resume=lambda: False)
    with running_gateway(settings(stub.base_url, prefix, tmp_path), engine) as (app, http):
        key = create_key(http, tokens_per_day=10_000)
        created = create_batch(http, key, upload(http, key, batch_file(10))["id"])
        assert created["expires_at"] == created["created_at"] + DAY
        assert created["expired_at"] is None
        wait_for(http, key, created["id"], lambda b: b["request_counts"]["completed"] >= 2)
        _ahead(app, DAY)  # the job sees the deadline passed and aborts the block in flight
        batch = wait_for(http, key, created["id"], finished)
        assert engine.aborted.is_set()
        assert batch["status"] == "expired"
        assert batch["expired_at"] >= batch["expires_at"]
        assert batch["request_counts"] == {"total": 10, "completed": 2, "failed": 8}
        answered = lines_of(http, key, batch["output_file_id"])
        assert sorted(r["custom_id"] for r in answered) == [f"c-{i}" for i in range(2)]
        expired = _expired_lines(http, key, batch["error_file_id"])
        assert expired == [f"c-{i}" for i in range(2, 10)]
        assert batch["usage"]["total_tokens"] == 2 * TOKENS_PER_LINE
        assert day_used(prefix, key["id"]) == 2 * TOKENS_PER_LINE
        refused = http.post(f"/v1/batches/{created['id']}/cancel", headers=auth(key))
        assert refused.json()["error"]["code"] == "batch_not_cancellable"
    assert not (tmp_path / "jobs" / f"{created['id']}.jsonl").exists()


def test_a_batch_waiting_for_a_runner_expires_without_running(
    stub: StubUpstream, tmp_path: Path, prefix: str
) -> None:
    go: list[bool] = []
    engine = ScriptedEngine(block=2, pause_after=0, resume=lambda: bool(go))
    gateway_settings = settings(stub.base_url, prefix, tmp_path, max_concurrent_jobs=1)
    with running_gateway(gateway_settings, engine) as (app, http):
        key = create_key(http, tokens_per_day=10_000)
        first = create_batch(http, key, upload(http, key, batch_file(2))["id"])["id"]
        wait_for(http, key, first, lambda _: bool(engine.calls))  # holds the only slot
        second = create_batch(http, key, upload(http, key, batch_file(3))["id"])["id"]
        _ahead(app, DAY)
        batch = wait_for(http, key, second, finished)
        assert batch["status"] == "expired"
        assert batch["in_progress_at"] is None
        assert batch["request_counts"] == {"total": 3, "completed": 0, "failed": 3}
        assert batch["output_file_id"] is None
        assert _expired_lines(http, key, batch["error_file_id"]) == ["c-0", "c-1", "c-2"]
        assert day_used(prefix, key["id"]) == 0
        go.append(True)
        wait_for(http, key, first, finished)
    assert engine.calls == [(TEXT_MODEL, ["c-0", "c-1"])]  # the second batch never ran


def test_a_runner_finishes_an_expiry_its_predecessor_began(
    stub: StubUpstream, tmp_path: Path, prefix: str
) -> None:
    gateway_settings = settings(stub.base_url, prefix, tmp_path)
    first = ScriptedEngine(block=2, pause_after=1, resume=lambda: False)
    with running_gateway(gateway_settings, first) as (_, http):
        key = create_key(http)
        batch_id = create_batch(http, key, upload(http, key, batch_file(5))["id"])["id"]
        wait_for(http, key, batch_id, lambda b: b["request_counts"]["completed"] >= 2)
    # as if a runner had died after marking the batch expiring, before ending it
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        marked = {"status": "finalizing", "finalizing_at": 1, "expiring_at": 1}
        client.hset(f"{prefix}{{batches}}:batch:{batch_id}", mapping=marked)
    finally:
        client.close()
    second = ScriptedEngine()
    with running_gateway(gateway_settings, second) as (_, http):
        batch = wait_for(http, key, batch_id, finished)
        assert batch["status"] == "expired"
        assert batch["request_counts"] == {"total": 5, "completed": 2, "failed": 3}
        assert _expired_lines(http, key, batch["error_file_id"]) == ["c-2", "c-3", "c-4"]
    assert second.calls == []


def test_output_files_expire_after_output_expires_after(
    stub: StubUpstream, tmp_path: Path, prefix: str
) -> None:
    with running_gateway(settings(stub.base_url, prefix, tmp_path), ScriptedEngine()) as (
        app,
        http,
    ):
        key = create_key(http)
        source = upload(http, key, batch_file(2))
        body = {
            "input_file_id": source["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "output_expires_after": {"anchor": "created_at", "seconds": HOUR},
        }
        created = http.post("/v1/batches", json=body, headers=auth(key)).json()
        batch = wait_for(http, key, created["id"], finished)
        output_id = batch["output_file_id"]
        output = http.get(f"/v1/files/{output_id}", headers=auth(key)).json()
        assert output["expires_at"] == output["created_at"] + HOUR
        assert source["expires_at"] == source["created_at"] + 30 * DAY  # OpenAI's default

        _ahead(app, HOUR)
        assert http.get(f"/v1/files/{output_id}", headers=auth(key)).status_code == 404
        content = http.get(f"/v1/files/{output_id}/content", headers=auth(key))
        assert content.status_code == 404
        listed = http.get("/v1/files", headers=auth(key)).json()["data"]
        assert [f["id"] for f in listed] == [source["id"]]
        _wait_until(lambda: not (tmp_path / "files" / output_id).exists(), "output purged")
        assert http.get(f"/v1/files/{source['id']}", headers=auth(key)).status_code == 200


@pytest.mark.parametrize(
    "policy",
    [
        {"anchor": "created_at", "seconds": 60},
        {"anchor": "created_at", "seconds": 30 * DAY + 1},
        {"anchor": "completed_at", "seconds": HOUR},
        {"seconds": HOUR},
    ],
)
def test_bad_output_expires_after_is_400(
    stub: StubUpstream, tmp_path: Path, prefix: str, policy: dict[str, Any]
) -> None:
    with running_gateway(settings(stub.base_url, prefix, tmp_path), ScriptedEngine()) as (_, http):
        key = create_key(http)
        body = {
            "input_file_id": upload(http, key, batch_file(1))["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
            "output_expires_after": policy,
        }
        answer = http.post("/v1/batches", json=body, headers=auth(key))
        assert answer.status_code == 400, answer.text
        assert http.get("/v1/batches", headers=auth(key)).json()["data"] == []


def test_uploads_take_expires_after_as_the_openai_client_sends_it(
    stub: StubUpstream, tmp_path: Path, prefix: str
) -> None:
    with running_gateway(settings(stub.base_url, prefix, tmp_path), ScriptedEngine()) as (_, http):
        key = create_key(http)
        client = OpenAI(
            base_url=str(http.base_url.join("/v1")),
            api_key=key["authorization"].removeprefix("Bearer "),
            max_retries=0,
        )
        content = ("input.jsonl", batch_file(1))
        uploaded = client.files.create(
            file=content, purpose="batch", expires_after={"anchor": "created_at", "seconds": 7200}
        )
        assert uploaded.expires_at == uploaded.created_at + 7200
        assert client.files.retrieve(uploaded.id).expires_at == uploaded.expires_at
        with pytest.raises(BadRequestError) as refused:
            client.files.create(
                file=content, purpose="batch", expires_after={"anchor": "created_at", "seconds": 60}
            )
        assert refused.value.body["param"] == "expires_after"  # type: ignore[index]
        assert list(tmp_path.joinpath("tmp").iterdir()) == []


def _upload_expiring(http: httpx.Client, key: dict[str, str], content: bytes) -> str:
    """An upload that expires in an hour, sent as curl's ``-F expires_after[...]=`` are."""
    policy = {"expires_after[anchor]": "created_at", "expires_after[seconds]": str(HOUR)}
    answer = http.post(
        "/v1/files",
        files={"file": ("input.jsonl", content, "application/jsonl")},
        data={"purpose": "batch", **policy},
        headers=auth(key),
    )
    assert answer.status_code == 200, answer.text
    file_id: str = answer.json()["id"]
    return file_id


def test_an_expired_input_is_purged_only_once_its_batch_ends(
    stub: StubUpstream, tmp_path: Path, prefix: str
) -> None:
    go: list[bool] = []
    engine = ScriptedEngine(block=1, pause_after=1, resume=lambda: bool(go))
    with running_gateway(settings(stub.base_url, prefix, tmp_path), engine) as (app, http):
        key = create_key(http)
        source = _upload_expiring(http, key, batch_file(3))
        canary = _upload_expiring(http, key, batch_file(1))
        batch_id = create_batch(http, key, source)["id"]
        wait_for(http, key, batch_id, lambda b: b["request_counts"]["completed"] >= 1)
        _ahead(app, HOUR)
        assert http.get(f"/v1/files/{source}", headers=auth(key)).status_code == 404
        _wait_until(lambda: not (tmp_path / "files" / canary).exists(), "a sweep purged it")
        assert (tmp_path / "files" / source).exists()  # the same sweep kept the one in use
        go.append(True)
        batch = wait_for(http, key, batch_id, finished)
        assert batch["status"] == "completed"
        _wait_until(lambda: not (tmp_path / "files" / source).exists(), "input purged")


def test_expiry_owes_every_unanswered_line_once(tmp_path: Path) -> None:
    source, journal = tmp_path / "input.jsonl", tmp_path / "journal.jsonl"
    lines = [chat_line("a"), chat_line("b"), chat_line("b"), "{torn", chat_line("c")]
    source.write_text("\n".join(lines) + "\n")
    answered = {"id": "batch_req_1", "custom_id": "a", "response": {}, "error": None}
    journal.write_text(json.dumps(answered) + "\n")
    assert expire_unanswered(source, journal) == 5
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    codes = [(r["custom_id"], (r["error"] or {}).get("code")) for r in records]
    assert codes == [
        ("a", None),
        ("b", EXPIRED_CODE),
        ("b", "duplicate_custom_id"),
        ("line-4", EXPIRED_CODE),
        ("c", EXPIRED_CODE),
    ]
    assert expire_unanswered(source, journal) == 5  # a second pass owes nothing more
    assert len(journal.read_text().splitlines()) == 5
    assert expire_unanswered(tmp_path / "gone.jsonl", journal) == 0
