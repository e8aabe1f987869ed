"""Batch jobs in the gateway: cancel, the key's daily tokens, and surviving a restart.

Each test runs real gateways (uvicorn in a thread) on the shared Redis under a prefix of
its own, with an engine double whose pace the test controls; a "restart" is a second app
instance on the same Redis prefix and files directory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.gateway.batches_support import (
    TEXT_MODEL,
    TOKENS_PER_LINE,
    ScriptedEngine,
    auth,
    batch_file,
    create_batch,
    create_key,
    day_used,
    finished,
    lines_of,
    metric,
    running_gateway,
    settings,
    upload,
    wait_for,
)
from tests.support.shared_redis import SHARED_REDIS_URL, unique_prefix
from tests.support.stub_upstream import StubUpstream


def wait_until(condition: Callable[[], float], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def prefix() -> Iterator[str]:
    with unique_prefix("batches-jobs") as name:
        yield name


def test_tokens_are_charged_to_the_key_day(stub: StubUpstream, tmp_path: Path, prefix: str) -> None:
    engine = ScriptedEngine(block=2)
    with running_gateway(settings(stub.base_url, prefix, tmp_path), engine) as (_, http):
        key = create_key(http, tokens_per_day=1000)
        file_id = upload(http, key, batch_file(6))["id"]
        batch = wait_for(http, key, create_batch(http, key, file_id)["id"], finished)
        assert batch["status"] == "completed"
        assert day_used(prefix, key["id"]) == 6 * TOKENS_PER_LINE
        assert batch["usage"]["total_tokens"] == 6 * TOKENS_PER_LINE
        assert metric(http, "gateway_batches_finished_total", status="completed") == 1
        assert metric(http, "gateway_batch_lines_total", outcome="completed") == 6
        other = create_key(http, tokens_per_day=1000)
        assert day_used(prefix, other["id"]) == 0


def test_a_spent_day_stops_the_batch_and_refuses_new_ones(
    stub: StubUpstream, tmp_path: Path, prefix: str
) -> None:
    engine = ScriptedEngine(block=2)
    with running_gateway(settings(stub.base_url, prefix, tmp_path), engine) as (_, http):
        key = create_key(http, tokens_per_day=2 * 2 * TOKENS_PER_LINE)
        file_id = upload(http, key, batch_file(8))["id"]
        batch = wait_for(http, key, create_batch(http, key, file_id)["id"], finished)
        assert batch["status"] == "failed"
        assert batch["errors"]["data"][0]["code"] == "insufficient_quota"
        assert batch["request_counts"] == {"total": 8, "completed": 4, "failed": 0}
        assert len(lines_of(http, key, batch["output_file_id"])) == 4
        assert day_used(prefix, key["id"]) == 4 * TOKENS_PER_LINE
        refused = http.post(
            "/v1/batches",
            json={
                "input_file_id": file_id,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
            headers=auth(key),
        )
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "insufficient_quota"
        assert int(refused.headers["retry-after"]) > 0


def test_cancel_aborts_the_block_in_flight(stub: StubUpstream, tmp_path: Path, prefix: str) -> None:
    engine = ScriptedEngine(block=2, pause_after=1, resume=lambda: False)
    with running_gateway(settings(stub.base_url, prefix, tmp_path), engine) as (_, http):
        key = create_key(http, tokens_per_day=1000)
        file_id = upload(http, key, batch_file(10))["id"]
        batch_id = create_batch(http, key, file_id)["id"]
        wait_for(http, key, batch_id, lambda b: b["request_counts"]["completed"] >= 2)
        assert wait_until(lambda: metric(http, "gateway_batches_active", status="in_progress"))
        answer = http.post(f"/v1/batches/{batch_id}/cancel", headers=auth(key))
        assert answer.status_code == 200
        assert answer.json()["status"] == "cancelling"
        assert answer.json()["cancelling_at"] is not None
        assert engine.aborted.wait(5), "the block in flight was never aborted"
        batch = wait_for(http, key, batch_id, finished)
        assert batch["status"] == "cancelled"
        assert batch["cancelled_at"] is not None
        # the aborted block is neither an output nor an error line, nor charged
        assert batch["request_counts"] == {"total": 10, "completed": 2, "failed": 0}
        assert len(lines_of(http, key, batch["output_file_id"])) == 2
        assert batch["error_file_id"] is None
        assert day_used(prefix, key["id"]) == 2 * TOKENS_PER_LINE
        assert metric(http, "gateway_batches_finished_total", status="cancelled") == 1
        assert metric(http, "gateway_batch_lines_total", outcome="completed") == 2
        assert wait_until(lambda: not metric(http, "gateway_batches_active", status="in_progress"))
        again = http.post(f"/v1/batches/{batch_id}/cancel", headers=auth(key))
        assert again.json()["status"] == "cancelled"
        assert not (tmp_path / "jobs" / f"{batch_id}.jsonl").exists()


def test_a_finished_batch_cannot_be_cancelled(
    stub: StubUpstream, tmp_path: Path, prefix: str
) -> None:
    with running_gateway(settings(stub.base_url, prefix, tmp_path), ScriptedEngine()) as (_, http):
        key = create_key(http)
        batch_id = create_batch(http, key, upload(http, key, batch_file(1))["id"])["id"]
        wait_for(http, key, batch_id, finished)
        answer = http.post(f"/v1/batches/{batch_id}/cancel", headers=auth(key))
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "batch_not_cancellable"


def test_the_input_of_a_running_batch_cannot_be_deleted(
    stub: StubUpstream, tmp_path: Path, prefix: str
) -> None:
    go: list[bool] = []
    engine = ScriptedEngine(block=1, pause_after=1, resume=lambda: bool(go))
    with running_gateway(settings(stub.base_url, prefix, tmp_path), engine) as (_, http):
        key = create_key(http)
        file_id = upload(http, key, batch_file(3))["id"]
        batch_id = create_batch(http, key, file_id)["id"]
        wait_for(http, key, batch_id, lambda b: b["status"] == "in_progress")
        refused = http.delete(f"/v1/files/{file_id}", headers=auth(key))
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "file_in_use"
        go.append(True)
        wait_for(http, key, batch_id, finished)
        assert http.delete(f"/v1/files/{file_id}", headers=auth(key)).status_code == 200


def test_a_restarted_gateway_resumes_the_job_where_it_stopped(
    stub: StubUpstream, tmp_path: Path, prefix: str
) -> None:
    gateway_settings = settings(stub.base_url, prefix, tmp_path)
    first = ScriptedEngine(block=2, pause_after=1, resume=lambda: False)
    with running_gateway(gateway_settings, first) as (_, http):
        key = create_key(http, tokens_per_day=10_000)
        file_id = upload(http, key, batch_file(8))["id"]
        batch_id = create_batch(http, key, file_id)["id"]
        wait_for(http, key, batch_id, lambda b: b["request_counts"]["completed"] >= 2)
    # the first gateway aborted the block in flight as it stopped, and let its lease go
    assert first.aborted.is_set()

    go: list[bool] = []
    second = ScriptedEngine(block=2, pause_after=0, resume=lambda: bool(go))
    with running_gateway(gateway_settings, second) as (_, http):
        stopped = wait_for(http, key, batch_id, lambda _: bool(second.calls))
        assert stopped["status"] == "in_progress"
        assert stopped["request_counts"] == {"total": 8, "completed": 2, "failed": 0}
        assert http.get(f"/v1/files/{file_id}", headers=auth(key)).status_code == 200
        go.append(True)
        batch = wait_for(http, key, batch_id, finished)
    assert batch["status"] == "completed"
    assert batch["request_counts"] == {"total": 8, "completed": 8, "failed": 0}
    assert first.calls == [(TEXT_MODEL, [f"c-{i}" for i in range(8)])]
    assert second.calls == [(TEXT_MODEL, [f"c-{i}" for i in range(2, 8)])]
    with running_gateway(gateway_settings, ScriptedEngine()) as (_, http):
        output = lines_of(http, key, batch["output_file_id"])
    assert sorted(r["custom_id"] for r in output) == [f"c-{i}" for i in range(8)]
    assert day_used(prefix, key["id"]) == 8 * TOKENS_PER_LINE


def test_a_job_whose_runner_died_waits_for_its_lease_then_resumes(
    stub: StubUpstream, tmp_path: Path, prefix: str
) -> None:
    gateway_settings = settings(stub.base_url, prefix, tmp_path)
    first = ScriptedEngine(block=2, pause_after=1, resume=lambda: False)
    with running_gateway(gateway_settings, first) as (_, http):
        key = create_key(http)
        batch_id = create_batch(http, key, upload(http, key, batch_file(6))["id"])["id"]
        wait_for(http, key, batch_id, lambda b: b["request_counts"]["completed"] >= 2)
    # as if the runner had been killed: its lease stands until it expires
    lease = f"{prefix}{{batches}}:lease:{batch_id}"
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        assert client.set(lease, "a-dead-runner")
        second = ScriptedEngine(block=2)
        with running_gateway(gateway_settings, second) as (_, http):
            time.sleep(1.0)  # several looks for work (poll_interval 0.2 s): none may take it
            assert http.get(f"/v1/batches/{batch_id}", headers=auth(key)).json()["status"] == (
                "in_progress"
            )
            assert second.calls == []
            assert client.pexpire(lease, 100)  # the lease runs out
            batch = wait_for(http, key, batch_id, finished)
            assert client.get(lease) is None
    finally:
        client.close()
    assert batch["status"] == "completed"
    assert batch["request_counts"]["completed"] == 6
    assert second.calls == [(TEXT_MODEL, ["c-2", "c-3", "c-4", "c-5"])]
