"""A gateway with the Batch API on the shared Redis, an in-process engine double, and helpers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from batch.engine import EngineResult
from batch.requests import PromptRequest
from gateway.app import create_app
from gateway.batches.service import BatchService
from gateway.quotas.keys import ScopeKeys
from gateway.settings import GatewaySettings
from tests.support.servers import serve_in_thread
from tests.support.shared_redis import SHARED_REDIS_URL

ADMIN = "admin-key-for-batch-tests"
TEXT_MODEL = "gemma-3-270m"
PROMPT_TOKENS, COMPLETION_TOKENS = 5, 2
TOKENS_PER_LINE = PROMPT_TOKENS + COMPLETION_TOKENS
FINAL = ("completed", "failed", "expired", "cancelled")


class ScriptedEngine:
    """A ``BatchEngine`` answering ``echo <custom_id>`` (5 + 2 tokens), ``block`` per block.

    After ``pause_after`` blocks it waits, before each further block, until ``resume()``
    is true (a test decides when the job may go on) or it is aborted: a block in flight
    when ``abort`` is called, and every later one, comes back aborted.
    """

    def __init__(
        self,
        block: int = 2,
        pause_after: int | None = None,
        resume: Callable[[], bool] = lambda: True,
    ) -> None:
        self.block = block
        self.pause_after = pause_after
        self.resume = resume
        self.calls: list[tuple[str, list[str]]] = []
        self.closed = threading.Event()
        self.aborted = threading.Event()

    def _wait(self) -> None:
        deadline = time.monotonic() + 60
        while not self.resume() and not self.aborted.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError("the test never let the engine go on")
            time.sleep(0.01)

    def run(self, variant: str, requests: Sequence[PromptRequest]) -> Iterator[list[EngineResult]]:
        self.calls.append((variant, [r.custom_id for r in requests]))
        for number, start in enumerate(range(0, len(requests), self.block)):
            if self.pause_after is not None and number >= self.pause_after:
                self._wait()
            chunk = requests[start : start + self.block]
            if self.aborted.is_set():
                yield [EngineResult(r.custom_id, aborted=True) for r in chunk]
                continue
            yield [
                EngineResult(r.custom_id, f"echo {r.custom_id}", PROMPT_TOKENS, COMPLETION_TOKENS)
                for r in chunk
            ]

    def abort(self) -> None:
        self.aborted.set()

    def close(self) -> None:
        self.closed.set()


def settings(upstream_url: str, prefix: str, files_dir: Path, **batches: Any) -> GatewaySettings:
    return GatewaySettings.model_validate(
        {
            "upstream_url": upstream_url,
            "admin_key": ADMIN,
            "quota": {"redis_url": SHARED_REDIS_URL, "key_prefix": prefix, "timeout": 2.0},
            "batches": {
                "files_dir": str(files_dir),
                "poll_interval": 0.2,
                "lease_ttl": 3.0,
                "stop_check_interval": 0.1,
                "max_file_bytes": 64 * 1024,
                "max_lines": 50,
                **batches,
            },
        }
    )


@contextmanager
def running_gateway(
    gateway_settings: GatewaySettings, engine: ScriptedEngine
) -> Iterator[tuple[FastAPI, httpx.Client]]:
    """The app (for its batch service) and a client, until the block ends."""
    app = create_app(gateway_settings, batch_engines=lambda: engine)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield app, client


def service(app: FastAPI) -> BatchService:
    found: BatchService = app.state.batches
    return found


def create_key(client: httpx.Client, **limits: int) -> dict[str, str]:
    """A new API key's id and its ``authorization`` header."""
    created = client.post(
        "/admin/keys",
        json={"tenant": "batch-tests", "limits": limits},
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    return {"id": body["id"], "authorization": f"Bearer {body['key']}"}


def auth(key: dict[str, str]) -> dict[str, str]:
    return {"authorization": key["authorization"]}


def chat_line(custom_id: str, model: str = TEXT_MODEL, **body: Any) -> str:
    payload = {"model": model, "messages": [{"role": "user", "content": "Hi"}], **body}
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": payload}
    )


def batch_file(count: int) -> bytes:
    return ("\n".join(chat_line(f"c-{i}", max_tokens=4) for i in range(count)) + "\n").encode()


def upload(client: httpx.Client, key: dict[str, str], content: bytes) -> dict[str, Any]:
    answer = client.post(
        "/v1/files",
        files={"file": ("input.jsonl", content, "application/jsonl")},
        data={"purpose": "batch"},
        headers=auth(key),
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def create_batch(client: httpx.Client, key: dict[str, str], file_id: str) -> dict[str, Any]:
    answer = client.post(
        "/v1/batches",
        json={
            "input_file_id": file_id,
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
        headers=auth(key),
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def wait_for(
    client: httpx.Client,
    key: dict[str, str],
    batch_id: str,
    done: Callable[[dict[str, Any]], bool],
    timeout: float = 60,
) -> dict[str, Any]:
    """Poll the batch until ``done(batch)``; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}", headers=auth(key)).json()
        if done(batch):
            return batch
        assert time.monotonic() < deadline, f"batch never got there: {batch}"
        time.sleep(0.05)


def finished(batch: dict[str, Any]) -> bool:
    return batch["status"] in FINAL


def lines_of(client: httpx.Client, key: dict[str, str], file_id: str) -> list[dict[str, Any]]:
    content = client.get(f"/v1/files/{file_id}/content", headers=auth(key))
    assert content.status_code == 200, content.text
    return [json.loads(line) for line in content.text.splitlines()]


def day_used(prefix: str, scope: str) -> int:
    """Tokens charged to a quota scope's day so far (a key id, or ``key/model``), from Redis."""
    client = redis.Redis.from_url(SHARED_REDIS_URL)
    try:
        used = client.hget(ScopeKeys(prefix, scope).charge[0], "used")
    finally:
        client.close()
    return int(used or 0)


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    """One sample of the gateway's ``/metrics`` (0 when absent)."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0
