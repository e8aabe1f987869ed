"""An interactive key's request starts ahead of batch-class requests already waiting.

Through the gateway to the real 270M engine (``max_num_seqs`` 8, priority scheduling). The
first event of a stream leaves the engine with its first token, so the order of first
events is the order the requests started in.

- In the engine (the gateway's fair share off): batch-class streams fill every slot and
  queue more than one slot-wave behind them; an interactive stream sent last starts before
  batch streams that were waiting before it, where first come, first served would start it
  after every one of them.
- In the gateway (fair share on, as deployed): batch-class streams may hold only part of
  the slots, so an interactive stream sent while more of them wait starts before all of them.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import GatewaySettings
from serving.catalog import load_catalog
from serving.runner import LocalServing
from tests.integration.conftest import TEXT_MODEL
from tests.support.servers import serve_in_thread
from tests.support.shared_redis import SHARED_REDIS_URL, delete_prefix

pytestmark = pytest.mark.integration

ADMIN = "admin-key-for-priority-e2e"
TOKENS = 128  # every batch answer runs to exactly this length (min_tokens = max_tokens)


@contextmanager
def _gateway(serve_stack: LocalServing, fair_share: bool) -> Iterator[str]:
    prefix = f"test-priority-e2e-{uuid.uuid4().hex[:10]}:"
    settings = GatewaySettings.model_validate(
        {
            "upstream_url": re.sub(r"/v1/?$", "", serve_stack.base_url),
            "admin_key": ADMIN,
            "quota": {"redis_url": SHARED_REDIS_URL, "key_prefix": prefix, "timeout": 2.0},
            "fair_share": {"enabled": fair_share},
        }
    )
    try:
        with serve_in_thread(create_app(settings)) as url:
            yield url
    finally:
        delete_prefix(prefix)


@pytest.fixture
def engine_ordered(serve_stack: LocalServing) -> Iterator[str]:
    with _gateway(serve_stack, fair_share=False) as url:
        yield url


@pytest.fixture
def gateway_ordered(serve_stack: LocalServing) -> Iterator[str]:
    with _gateway(serve_stack, fair_share=True) as url:
        yield url


def _key(url: str, priority_class: str) -> str:
    created = httpx.post(
        f"{url}/admin/keys",
        json={"tenant": f"priority-{priority_class}", "priority_class": priority_class},
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


@dataclass
class Stream:
    sent: float = 0.0
    first_event: float | None = None
    error: str | None = None


def _stream(url: str, secret: str, out: Stream, max_tokens: int) -> None:
    body = {
        "model": TEXT_MODEL,
        "messages": [{"role": "user", "content": "Count slowly from one to one hundred."}],
        "max_tokens": max_tokens,
        "min_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    headers = {"authorization": f"Bearer {secret}"}
    out.sent = time.monotonic()
    try:
        with (
            httpx.Client(timeout=600) as client,
            client.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers) as r,
        ):
            if r.status_code != 200:
                out.error = f"{r.status_code} {r.read()!r}"
                return
            for line in r.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:]).get("choices"):
                    out.first_event = out.first_event or time.monotonic()
    except httpx.HTTPError as exc:
        out.error = repr(exc)


def _start(url: str, secret: str, streams: list[Stream], tokens: int) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=_stream, args=(url, secret, s, tokens), daemon=True)
        for s in streams
    ]
    for thread in threads:
        thread.start()
    return threads


def test_the_engine_starts_an_interactive_request_ahead_of_queued_batch_ones(
    engine_ordered: str,
) -> None:
    gateway = engine_ordered
    slots = load_catalog().variants[TEXT_MODEL].engines["cpu"].max_num_seqs
    batch_key, interactive_key = _key(gateway, "batch"), _key(gateway, "interactive")

    # Every slot taken, then more than another slot-wave queued behind them.
    running = [Stream() for _ in range(slots)]
    queued = [Stream() for _ in range(slots + 4)]
    threads = _start(gateway, batch_key, running, TOKENS)
    deadline = time.monotonic() + 300
    while any(s.first_event is None and s.error is None for s in running):
        assert time.monotonic() < deadline, "the engine never started the first batch streams"
        time.sleep(0.05)
    threads += _start(gateway, batch_key, queued, TOKENS)
    time.sleep(1.0)  # the queued streams reach the engine's waiting queue
    waiting = [s for s in queued if s.first_event is None]
    interactive = Stream()
    _stream(gateway, interactive_key, interactive, 4)
    for thread in threads:
        thread.join(timeout=600)

    errors = [s.error for s in [*running, *queued, interactive] if s.error]
    assert not errors, errors
    assert len(waiting) > slots, "too few batch requests were still queued to tell the orders"
    assert interactive.first_event is not None
    ahead = [
        s for s in waiting if s.first_event is not None and s.first_event < interactive.first_event
    ]
    behind = [
        s for s in waiting if s.first_event is not None and s.first_event > interactive.first_event
    ]
    # First come, first served would start every waiting batch stream before it; by priority
    # it takes the first slot that frees, so at least a slot-wave of them starts after it.
    assert len(behind) >= len(waiting) - slots + 1, (len(ahead), len(behind))

    metrics = httpx.get(f"{gateway}/metrics").text
    assert re.search(
        r'gateway_time_to_first_token_seconds_count\{[^}]*priority_class="interactive"[^}]*\} 1\.0',
        metrics,
    ), "the interactive stream's time to first token is not counted under its class"


def test_the_gateway_starts_an_interactive_request_before_every_waiting_batch_one(
    gateway_ordered: str,
) -> None:
    gateway = gateway_ordered
    slots = load_catalog().variants[TEXT_MODEL].engines["cpu"].max_num_seqs
    batch_key, interactive_key = _key(gateway, "batch"), _key(gateway, "interactive")
    flood = [Stream() for _ in range(slots + 4)]
    threads = _start(gateway, batch_key, flood, TOKENS)
    deadline = time.monotonic() + 300
    while not any(s.first_event or s.error for s in flood):
        assert time.monotonic() < deadline, "the engine never started the batch streams"
        time.sleep(0.05)
    time.sleep(1.5)  # every stream the gateway lets through has started
    waiting = [s for s in flood if s.first_event is None]
    interactive = Stream()
    _stream(gateway, interactive_key, interactive, 4)
    for thread in threads:
        thread.join(timeout=600)

    errors = [s.error for s in [*flood, interactive] if s.error]
    assert not errors, errors
    assert waiting, "the batch class took every slot"
    assert interactive.first_event is not None
    starts = sorted(s.first_event for s in waiting if s.first_event is not None)
    assert len(starts) == len(waiting)
    assert interactive.first_event < starts[0]

    metrics = httpx.get(f"{gateway}/metrics").text
    waited = re.search(
        r'gateway_queue_time_seconds_count\{model="gemma-3-270m",priority_class="batch"\} (\S+)',
        metrics,
    )
    assert waited is not None
    assert float(waited.group(1)) == len(flood)
