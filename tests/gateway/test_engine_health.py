"""Dead and silent engines, and clients that leave, through a real gateway and the stub.

The stub's cards say whether each engine answers (``metadata.health``, as the serving
application's ``/v1/models`` does); ``knobs.hang`` makes a model take a request and
never answer it, until the caller hangs up (which the stub records, as vLLM aborts).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway import accounting
from gateway.app import create_app
from gateway.quotas.settings import QuotaSettings
from gateway.routing import audio_needs, chat_needs
from gateway.speech.chat import CHAT_PATH
from tests.gateway.conftest import gateway_settings
from tests.gateway.test_api import image_message, metric
from tests.gateway.test_quota_redis import (
    ADMIN,
    CHAT,
    bearer,
    create_key,
    remaining_tokens,
    until_admitted,
)
from tests.support.media import wav_bytes
from tests.support.servers import serve_in_thread
from tests.support.shared_redis import SHARED_REDIS_URL, unique_prefix
from tests.support.stub_upstream import AUDIO_MODEL, TEXT_MODEL, VISION_MODEL, StubUpstream

USER = {"role": "user", "content": "hi"}
DOWN = {"status": "down", "reason": "EngineDeadError"}


def gateway(stub: StubUpstream, **overrides: Any) -> Iterator[httpx.Client]:
    values = {
        "model_refresh_interval": 0.2,
        "upstream_first_byte_timeout": 30.0,
        "upstream_retry_after": 7,
        **overrides,
    }
    with (
        serve_in_thread(create_app(gateway_settings(stub.base_url, **values))) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        yield client


@pytest.fixture
def http(stub: StubUpstream) -> Iterator[httpx.Client]:
    yield from gateway(stub, ready_capabilities=["text", "audio"])


def set_health(stub: StubUpstream, model_id: str, health: dict[str, str] | None) -> None:
    for card in stub.cards:
        if card["id"] == model_id or card["metadata"].get("base_model_id") == model_id:
            card["metadata"].pop("health", None)
            if health is not None:
                card["metadata"]["health"] = health


def until(predicate: Any, timeout: float = 5.0) -> float:
    """Seconds until ``predicate()`` holds (fails after ``timeout``)."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, "condition not met in time"
        time.sleep(0.05)
    return time.monotonic() - start


def abandon(request: httpx.Request, after: float) -> None:
    """Send ``request``, wait ``after`` seconds without reading an answer, and hang up."""
    url = request.url
    head = [f"{request.method} {url.raw_path.decode()} HTTP/1.1", f"Host: {url.host}"]
    head += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() != "host"]
    with socket.create_connection((url.host, url.port or 80)) as sock:
        sock.sendall("\r\n".join(head).encode() + b"\r\n\r\n" + request.read())
        time.sleep(after)


def test_a_model_whose_engine_is_down_is_skipped_and_readiness_says_which(
    http: httpx.Client, stub: StubUpstream
) -> None:
    image = {"model": "auto", "messages": [USER], "max_tokens": 5}
    assert http.get("/readyz").json()["checks"]["capabilities"]["audio"] is True
    set_health(stub, AUDIO_MODEL, DOWN)
    until(lambda: http.get("/readyz").status_code == 503)
    ready = http.get("/readyz").json()["checks"]
    assert ready["capabilities"]["audio"] is False
    assert ready["required_capabilities"] == {"text": True, "audio": False}
    assert ready["down"] == {AUDIO_MODEL: "EngineDeadError"}
    assert metric(http, "gateway_model_up", model=AUDIO_MODEL) == 0.0
    assert metric(http, "gateway_model_up", model=TEXT_MODEL) == 1.0
    assert metric(http, "gateway_capability_up", capability="audio") == 0.0

    named = http.post("/v1/chat/completions", json={**image, "model": AUDIO_MODEL})
    assert named.status_code == 503
    assert named.headers["retry-after"] == "7"
    assert "EngineDeadError" in named.json()["error"]["message"]
    transcription = http.post(
        "/v1/audio/transcriptions",
        files={"file": ("a.wav", wav_bytes(1.0), "audio/wav")},
        data={"model": "auto"},
    )
    assert transcription.status_code == 503
    assert http.post("/v1/chat/completions", json=image).status_code == 200  # text still up
    assert all(body["model"] != AUDIO_MODEL for _, body in stub.requests)

    set_health(stub, AUDIO_MODEL, None)
    until(lambda: http.get("/readyz").status_code == 200)
    assert metric(http, "gateway_model_up", model=AUDIO_MODEL) == 1.0
    answer = http.post("/v1/chat/completions", json={**image, "model": AUDIO_MODEL})
    assert answer.status_code == 200


def test_a_request_waiting_on_an_engine_that_goes_down_is_answered_at_once(
    http: httpx.Client, stub: StubUpstream
) -> None:
    stub.knobs.hang = {VISION_MODEL}
    with httpx.Client(base_url=http.base_url, timeout=30) as other:
        started = time.monotonic()
        set_later = threading.Thread(
            target=lambda: (time.sleep(1.0), set_health(stub, VISION_MODEL, DOWN))
        )
        set_later.start()
        answer = other.post(
            "/v1/chat/completions", json={"model": VISION_MODEL, "messages": [USER]}
        )
        set_later.join()
    waited = time.monotonic() - started
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "7"
    assert waited < 1.0 + 2.0  # the down mark, one poll later, not the 30 s deadline
    assert stub.wait_cancelled(5)  # and the upstream call was closed
    assert stub.cancelled == [VISION_MODEL]


def test_no_first_byte_by_the_deadline_falls_back_or_is_503(stub: StubUpstream) -> None:
    stub.knobs.hang = {VISION_MODEL}
    image_or_audio = {"model": "auto", "messages": [image_message()], "max_tokens": 5}
    for http in gateway(stub, upstream_first_byte_timeout=0.5):
        started = time.monotonic()
        answer = http.post("/v1/chat/completions", json=image_or_audio)
        assert answer.status_code == 200
        assert answer.headers["x-gemma-model"] == AUDIO_MODEL  # the other vision variant
        assert time.monotonic() - started < 0.5 + 1.5
        timed_out = metric(
            http, "gateway_upstream_errors_total", model=VISION_MODEL, kind="unavailable"
        )
        assert timed_out == 1
        stub.knobs.hang = {VISION_MODEL, AUDIO_MODEL}
        started = time.monotonic()
        answer = http.post("/v1/chat/completions", json=image_or_audio)
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "7"
        assert time.monotonic() - started < 2 * 0.5 + 1.5
    assert until(lambda: len(stub.cancelled) == 3) < 5


def test_streams_have_their_own_first_byte_deadline(stub: StubUpstream) -> None:
    stub.knobs.hang = {TEXT_MODEL}  # the stub streams at once: only non-streamed answers hang
    for http in gateway(
        stub, upstream_first_byte_timeout=0.3, upstream_stream_first_byte_timeout=30.0
    ):
        body = {"model": TEXT_MODEL, "messages": [USER], "max_tokens": 5}
        assert http.post("/v1/chat/completions", json=body).status_code == 503
        stream = http.post("/v1/chat/completions", json={**body, "stream": True})
        assert stream.status_code == 200
        assert stream.text.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize("kind", ["chat", "transcription"])
def test_an_abandoned_request_is_cancelled_upstream_and_settled_with_its_reservation(
    stub: StubUpstream, kind: str
) -> None:
    model = TEXT_MODEL if kind == "chat" else AUDIO_MODEL
    with unique_prefix("gw-abandon") as prefix:
        quota = {"redis_url": SHARED_REDIS_URL, "key_prefix": prefix, "timeout": 1.0}
        for http in gateway(stub, quota=quota, admin_key=ADMIN):
            key = create_key(http, limits={"tokens_per_minute": 100_000, "max_concurrent": 1})
            first = http.post("/v1/chat/completions", json=CHAT, headers=bearer(key["key"]))
            assert first.status_code == 200
            stub.knobs.hang = {model}
            started = time.monotonic()
            abandon(_abandoned(http, kind, key["key"]), after=1.0)
            assert stub.wait_cancelled(5)
            assert time.monotonic() - started < 1.0 + 1.0  # gone upstream within 1 s
            stub.knobs.hang = set()
            following = until_admitted(http, key["key"])
            assert metric(http, "gateway_client_disconnects_total", served=model) == 1
    used = first.json()["usage"]["total_tokens"]
    reserved = _reservation(kind)
    # Both ``first`` and ``following`` reserved the same, so the difference is what
    # ``first`` used and what the abandoned request was charged: all it had reserved.
    assert remaining_tokens(first) - remaining_tokens(following) == used + reserved


def _abandoned(http: httpx.Client, kind: str, secret: str) -> httpx.Request:
    headers = {"authorization": f"Bearer {secret}"}
    if kind == "chat":
        return http.build_request("POST", "/v1/chat/completions", json=CHAT, headers=headers)
    return http.build_request(
        "POST",
        "/v1/audio/transcriptions",
        files={"file": ("a.wav", wav_bytes(1.0), "audio/wav")},
        data={"model": AUDIO_MODEL},
        headers=headers,
    )


def _reservation(kind: str) -> int:
    default = QuotaSettings().default_max_tokens
    needs = chat_needs(CHAT) if kind == "chat" else audio_needs()
    return accounting.reservation(needs, accounting.budget(CHAT_PATH, needs, default))
