"""The Batch API end to end on the real stack: files -> batches -> poll -> download.

The gateway runs in this process in front of the session's cpu-dev Serve application,
with its default batch engine: Ray Data LLM's Serve deployment processor sending the
lines to the running Gemma 3 270M deployment over the session's Ray cluster. The
official ``openai`` client drives it; a second key is told 404 for the first key's
batch and files, and the first key's daily tokens are charged the engine's usage.
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
from openai import NotFoundError, OpenAI

from gateway.app import create_app
from gateway.settings import GatewaySettings
from serving.runner import LocalServing
from tests.gateway.batches_support import day_used
from tests.integration.conftest import TEXT_MODEL
from tests.support.servers import serve_in_thread
from tests.support.shared_redis import SHARED_REDIS_URL, delete_prefix

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

ADMIN = "admin-key-for-batches-e2e"
MAX_TOKENS = 4
QUESTIONS = ["Count to three.", "Name a colour.", "Say hello.", "What is water?"]


@pytest.fixture(scope="module")
def gateway(
    serve_stack: LocalServing, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """The gateway's URL and its Redis key prefix."""
    prefix = f"test-batches-e2e-{uuid.uuid4().hex[:10]}:"
    settings = GatewaySettings.model_validate(
        {
            "upstream_url": re.sub(r"/v1/?$", "", serve_stack.base_url),
            "admin_key": ADMIN,
            "quota": {"redis_url": SHARED_REDIS_URL, "key_prefix": prefix, "timeout": 2.0},
            "batches": {
                "files_dir": str(tmp_path_factory.mktemp("batch-files")),
                "serve_app": serve_stack.app_name,
                "poll_interval": 0.5,
                "block_size": 2,
            },
        }
    )
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
