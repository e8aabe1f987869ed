"""The Batch API end to end on the real stack: files -> batches -> poll -> download.

The gateway runs in this process in front of the session's cpu-full Serve application,
with its default batch engine: Ray Data LLM's Serve deployment processor sending the
lines to the running Gemma 3 270M deployment over the session's Ray cluster. The
official ``openai`` client drives it; a second key is told 404 for the first key's
batch and files, and the first key's daily tokens are charged the engine's usage.
A cancelled batch, and a gateway shutting down, abort the block in flight in the engine
(its running requests drop to none within seconds of 1500-token lines).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from openai import NotFoundError, OpenAI

from gateway.app import create_app
from gateway.settings import GatewaySettings
from serving.runner import LocalServing, unfinished_requests
from tests.gateway.batches_support import day_used
from tests.integration.conftest import TEXT_MODEL
from tests.support.servers import serve_in_thread
from tests.support.shared_redis import SHARED_REDIS_URL, delete_prefix

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

ADMIN = "admin-key-for-batches-e2e"
MAX_TOKENS = 4
QUESTIONS = ["Count to three.", "Name a colour.", "Say hello.", "What is water?"]


def _settings(serve_stack: LocalServing, prefix: str, files_dir: Path) -> GatewaySettings:
    """A gateway on the session's Serve app, its keys and batches under ``prefix``."""
    return GatewaySettings.model_validate(
        {
            "upstream_url": re.sub(r"/v1/?$", "", serve_stack.base_url),
            "admin_key": ADMIN,
            "quota": {"redis_url": SHARED_REDIS_URL, "key_prefix": prefix, "timeout": 2.0},
            "batches": {
                "files_dir": str(files_dir),
                "serve_app": serve_stack.app_name,
                "poll_interval": 0.5,
                "block_size": 2,
            },
        }
    )


@pytest.fixture(scope="module")
def gateway(
    serve_stack: LocalServing, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """The gateway's URL and its Redis key prefix."""
    prefix = f"test-batches-e2e-{uuid.uuid4().hex[:10]}:"
    settings = _settings(serve_stack, prefix, tmp_path_factory.mktemp("batch-files"))
    try:
        with serve_in_thread(create_app(settings)) as url:
            yield url, prefix
    finally:
        delete_prefix(prefix)


def _key(gateway: str, tenant: str) -> tuple[str, str]:
    created = httpx.post(
        f"{gateway}/admin/keys",
        json={"tenant": tenant, "limits": {"tokens_per_day": 1_000_000}},
        headers={"authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["key"]


def _client(gateway: str, secret: str) -> OpenAI:
    return OpenAI(base_url=f"{gateway}/v1", api_key=secret, timeout=120, max_retries=0)


def _input(path: Path) -> Path:
    lines = [
        {
            "custom_id": f"q-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": TEXT_MODEL,
                "messages": [{"role": "user", "content": text}],
                "max_tokens": MAX_TOKENS,
                "temperature": 0,
            },
        }
        for i, text in enumerate(QUESTIONS)
    ]
    refused = {"model": "no-such-model", "messages": [{"role": "user", "content": "Hi"}]}
    lines.append({"custom_id": "nope", "url": "/v1/chat/completions", "body": refused})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_files_batches_poll_download_with_the_openai_client(
    gateway: tuple[str, str], tmp_path: Path
) -> None:
    url, prefix = gateway
    owner_id, owner_secret = _key(url, "batch-owner")
    _, other_secret = _key(url, "someone-else")
    client = _client(url, owner_secret)

    with _input(tmp_path / "input.jsonl").open("rb") as source:
        uploaded = client.files.create(file=source, purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 1200
    while batch.status not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, batch
        time.sleep(1)
        batch = client.batches.retrieve(batch.id)

    assert batch.status == "completed", batch.errors
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (5, 4)
    assert batch.request_counts.failed == 1
    assert batch.output_file_id is not None
    assert batch.error_file_id is not None
    output = [
        json.loads(line) for line in client.files.content(batch.output_file_id).text.splitlines()
    ]
    assert sorted(r["custom_id"] for r in output) == [f"q-{i}" for i in range(len(QUESTIONS))]
    tokens = 0
    for record in output:
        assert record["error"] is None
        body = record["response"]["body"]
        assert record["response"]["status_code"] == 200
        assert body["model"] == TEXT_MODEL
        assert isinstance(body["choices"][0]["message"]["content"], str)
        assert 1 <= body["usage"]["completion_tokens"] <= MAX_TOKENS
        assert body["usage"]["prompt_tokens"] > 0
        tokens += body["usage"]["total_tokens"]
    assert any(r["response"]["body"]["choices"][0]["message"]["content"] for r in output)
    (error,) = client.files.content(batch.error_file_id).text.splitlines()
    assert json.loads(error)["custom_id"] == "nope"
    assert json.loads(error)["response"]["status_code"] == 404
    assert batch.usage is not None
    assert batch.usage.total_tokens == tokens
    assert day_used(prefix, owner_id) == tokens

    other = _client(url, other_secret)
    with pytest.raises(NotFoundError):
        other.batches.retrieve(batch.id)
    with pytest.raises(NotFoundError):
        other.files.content(batch.output_file_id)
    with pytest.raises(NotFoundError):
        other.files.retrieve(uploaded.id)
    assert [b.id for b in other.batches.list()] == []
    assert [b.id for b in client.batches.list()] == [batch.id]


LONG_TOKENS = 1500


def _long_lines(path: Path, count: int) -> Path:
    """Lines the engine works on for minutes: an abort is the only way they end soon."""
    body = {
        "model": TEXT_MODEL,
        "messages": [{"role": "user", "content": "Write a long story about a lighthouse."}],
        "max_tokens": LONG_TOKENS,
        "temperature": 1.0,
    }
    lines = [
        {"custom_id": f"long-{i}", "url": "/v1/chat/completions", "body": body}
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _start_long_batch(client: OpenAI, path: Path) -> str:
    with path.open("rb") as source:
        uploaded = client.files.create(file=source, purpose="batch")
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    deadline = time.monotonic() + 900  # Ray Data starts its stage actors first (minutes here)
    while unfinished_requests(TEXT_MODEL) == 0:
        assert time.monotonic() < deadline, "the engine never took the batch's lines"
        time.sleep(0.1)
    return batch.id


def _engine_idle_within(seconds: float) -> float:
    """Seconds until the text engine has no request left (fails past ``seconds``)."""
    started = time.monotonic()
    while unfinished_requests(TEXT_MODEL) > 0:
        assert time.monotonic() - started < seconds, "the engine kept generating the lines"
        time.sleep(0.1)
    return time.monotonic() - started


def test_cancelling_a_batch_aborts_its_block_in_the_engine(
    gateway: tuple[str, str], tmp_path: Path
) -> None:
    url, prefix = gateway
    owner_id, secret = _key(url, "batch-cancel")
    client = _client(url, secret)
    batch_id = _start_long_batch(client, _long_lines(tmp_path / "long.jsonl", 4))
    time.sleep(1.0)  # a second of generation on the block in flight (block_size 2)
    assert client.batches.cancel(batch_id).status == "cancelling"
    _engine_idle_within(3.0)
    deadline = time.monotonic() + 60
    batch = client.batches.retrieve(batch_id)
    while batch.status != "cancelled":
        assert time.monotonic() < deadline, batch
        time.sleep(0.5)
        batch = client.batches.retrieve(batch_id)
    assert batch.request_counts is not None
    # the aborted lines are neither answers nor errors, and nothing was charged for them
    assert (batch.request_counts.completed, batch.request_counts.failed) == (0, 0)
    assert batch.output_file_id is None
    assert batch.error_file_id is None
    assert day_used(prefix, owner_id) == 0


def test_a_stopping_gateway_aborts_its_block_and_leaves_the_batch_to_resume(
    serve_stack: LocalServing, tmp_path: Path
) -> None:
    prefix = f"test-batches-stop-{uuid.uuid4().hex[:10]}:"
    settings = _settings(serve_stack, prefix, tmp_path / "files")
    try:
        with serve_in_thread(create_app(settings)) as url:
            _, secret = _key(url, "batch-stop")
            batch_id = _start_long_batch(_client(url, secret), _long_lines(tmp_path / "l", 2))
            time.sleep(1.0)
            stopping = time.monotonic()
        # the gateway has shut down: its job aborted the lines in flight on its way out
        _engine_idle_within(5.0 - (time.monotonic() - stopping))
        store = redis.Redis.from_url(SHARED_REDIS_URL, decode_responses=True)
        try:
            record = store.hgetall(f"{prefix}{{batches}}:batch:{batch_id}")
            assert record["status"] == "in_progress"  # for the next runner to resume
        finally:
            store.close()
        journal = tmp_path / "files" / "jobs" / f"{batch_id}.jsonl"
        assert not journal.exists() or journal.read_text() == ""
    finally:
        delete_prefix(prefix)
