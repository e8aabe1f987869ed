"""Transcriptions and translations on every audio variant, through the running gateway.

The stub lists Gemma 3n (``transcription``: vLLM's endpoint serves it) and a Gemma 4
variant with audio only (served through chat), the Gemma 4 one the smaller of the two.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from gateway.app import create_app
from gateway.quotas.protocol import ApiKey
from gateway.routing import AUDIO_TOKENS
from tests.gateway.conftest import gateway_settings
from tests.gateway.test_quota_path import SECRET, RecordingGate, finishes
from tests.support.media import wav_bytes
from tests.support.servers import serve_in_thread
from tests.support.stub_upstream import (
    ANSWER,
    AUDIO_MODEL,
    GEMMA_4_MODEL,
    TRANSCRIPT,
    StubUpstream,
    gemma_4_cards,
)

CHAT = "/v1/chat/completions"
TRANSCRIPTIONS = "/v1/audio/transcriptions"


def clip(seconds: float = 1.0) -> tuple[str, bytes, str]:
    return ("clip.wav", wav_bytes(seconds), "audio/wav")


@pytest.fixture
def stub() -> Iterator[StubUpstream]:
    cards = gemma_4_cards()
    sizes = {AUDIO_MODEL: 7.85, GEMMA_4_MODEL: 5.1}
    for card in cards:
        if card["id"] in sizes:
            card["metadata"]["params_b"] = sizes[card["id"]]
    with StubUpstream(cards) as upstream:
        yield upstream


def sent_chat(stub: StubUpstream) -> dict[str, Any]:
    path, body = stub.requests[-1]
    assert path == CHAT
    return body


def instruction(body: dict[str, Any]) -> str:
    text, audio = body["messages"][0]["content"]
    assert audio["type"] == "input_audio"
    assert audio["input_audio"]["format"] == "wav"
    assert base64.b64decode(audio["input_audio"]["data"])[:4] == b"RIFF"
    assert text["type"] == "text"
    return str(text["text"])


def test_a_transcription_variant_is_served_by_the_endpoint(
    openai_client: OpenAI, stub: StubUpstream
) -> None:
    result = openai_client.audio.transcriptions.create(model=AUDIO_MODEL, file=clip())
    assert result.text == TRANSCRIPT
    path, fields = stub.requests[-1]
    assert (path, fields["model"]) == (TRANSCRIPTIONS, AUDIO_MODEL)


def test_an_audio_variant_is_served_through_chat(openai_client: OpenAI, stub: StubUpstream) -> None:
    result = openai_client.audio.transcriptions.create(
        model=GEMMA_4_MODEL, file=clip(), language="de"
    )
    assert result.text == ANSWER
    body = sent_chat(stub)
    assert body["model"] == GEMMA_4_MODEL
    assert instruction(body) == "Transcribe this audio into German:"
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["temperature"] == 0.0
    assert body["max_completion_tokens"] == 1024  # the default cap, reserved and sent
    assert "stream" not in body


def test_chat_takes_english_by_default_and_the_form_sampling(
    openai_client: OpenAI, stub: StubUpstream
) -> None:
    openai_client.audio.transcriptions.create(
        model=GEMMA_4_MODEL, file=clip(), temperature=0.3, extra_body={"max_tokens": 40}
    )
    body = sent_chat(stub)
    assert instruction(body) == "Transcribe this audio into English:"
    assert (body["temperature"], body["max_completion_tokens"]) == (0.3, 40)


def test_json_text_and_verbose_json_answers(http: httpx.Client) -> None:
    def post(**fields: str) -> httpx.Response:
        data = {"model": GEMMA_4_MODEL, **fields}
        response = http.post(TRANSCRIPTIONS, data=data, files={"file": clip(2.0)})
        assert response.status_code == 200, response.text
        assert response.headers["x-gemma-model"] == GEMMA_4_MODEL
        return response

    usage = {"type": "tokens", "input_tokens": 7, "output_tokens": 5, "total_tokens": 12}
    assert post().json() == {"text": ANSWER, "usage": usage}
    text = post(response_format="text")
    assert text.headers["content-type"].startswith("text/plain")
    assert text.text == ANSWER
    verbose = post(response_format="verbose_json", language="fr").json()
    assert verbose == {"task": "transcribe", "language": "french", "duration": 2.0, "text": ANSWER}


def test_translations_through_chat_ask_for_english(
    openai_client: OpenAI, stub: StubUpstream
) -> None:
    result = openai_client.audio.translations.create(model=GEMMA_4_MODEL, file=clip())
    assert result.text == ANSWER
    assert instruction(sent_chat(stub)) == "Translate this audio into English:"
    openai_client.audio.translations.create(
        model=GEMMA_4_MODEL, file=clip(), extra_body={"language": "de"}
    )
    assert instruction(sent_chat(stub)) == "Translate this audio from German into English:"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "srt"}, "response_format"),
        ({"response_format": "vtt"}, "response_format"),
        ({"timestamp_granularities[]": "word"}, "timestamp_granularities"),
        ({"language": "xx"}, "language"),
    ],
)
def test_what_chat_cannot_give_is_a_400_naming_the_field(
    http: httpx.Client, stub: StubUpstream, fields: dict[str, str], param: str
) -> None:
    data = {"model": GEMMA_4_MODEL, **fields}
    response = http.post(TRANSCRIPTIONS, data=data, files={"file": clip()})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert not stub.requests  # refused before any upstream work
    auto = http.post(TRANSCRIPTIONS, data={**data, "model": "auto"}, files={"file": clip()})
    assert auto.headers["x-gemma-model"] == AUDIO_MODEL  # the endpoint's variant may
    assert stub.requests[-1][0] == TRANSCRIPTIONS


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"response_format": "xml"}, "response_format"),
        ({"temperature": "hot"}, "temperature"),
        ({"max_completion_tokens": "5000"}, "max_completion_tokens"),
        ({"stream": "maybe"}, "stream"),
    ],
)
def test_invalid_fields_are_400_on_every_variant(
    http: httpx.Client, fields: dict[str, str], param: str
) -> None:
    for model in (AUDIO_MODEL, GEMMA_4_MODEL):
        response = http.post(
            TRANSCRIPTIONS, data={"model": model, **fields}, files={"file": clip()}
        )
        assert response.status_code == 400
        assert response.json()["error"]["param"] == param


def test_auto_prefers_the_endpoint_then_falls_back_to_chat(
    http: httpx.Client, stub: StubUpstream
) -> None:
    def served() -> str:
        response = http.post(TRANSCRIPTIONS, data={"model": "auto"}, files={"file": clip()})
        assert response.status_code == 200, response.text
        return response.headers["x-gemma-model"]

    assert served() == AUDIO_MODEL  # though the Gemma 4 variant is smaller
    assert stub.requests[-1][0] == TRANSCRIPTIONS
    stub.knobs.unavailable = {AUDIO_MODEL}
    assert served() == GEMMA_4_MODEL
    assert stub.requests[-1][0] == CHAT


def test_a_stream_through_chat_is_a_transcription_stream(
    openai_client: OpenAI, stub: StubUpstream
) -> None:
    events = list(
        openai_client.audio.transcriptions.create(model=GEMMA_4_MODEL, file=clip(), stream=True)
    )
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    assert "".join(deltas).strip() == ANSWER
    done = events[-1]
    assert done.type == "transcript.text.done"
    assert done.text == ANSWER
    assert done.usage is not None
    assert done.usage.total_tokens == 12
    assert sent_chat(stub)["stream_options"]["include_usage"] is True


def test_a_stream_ends_with_done_and_carries_no_chat_chunks(http: httpx.Client) -> None:
    data = {"model": GEMMA_4_MODEL, "stream": "true"}
    response = http.post(TRANSCRIPTIONS, data=data, files={"file": clip()})
    assert response.headers["content-type"].startswith("text/event-stream")
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    types = {json.loads(line)["type"] for line in lines[:-1]}
    assert types == {"transcript.text.delta", "transcript.text.done"}


class AudioKeys:
    async def authenticate(self, secret: str) -> ApiKey:
        assert secret == SECRET
        return ApiKey("k1", "t1", allowed_capabilities=frozenset({"text", "audio"}))


@pytest.fixture
def gate() -> RecordingGate:
    return RecordingGate()


@pytest.fixture
def keyed(stub: StubUpstream, gate: RecordingGate) -> Iterator[httpx.Client]:
    settings = gateway_settings(stub.base_url, quota={"enabled": True, "default_max_tokens": 100})
    app = create_app(settings, key_store=AudioKeys(), quota_gate=gate)
    with (
        serve_in_thread(app) as url,
        httpx.Client(base_url=url, timeout=30, headers={"authorization": f"Bearer {SECRET}"}) as c,
    ):
        yield c


def test_chat_usage_is_what_is_settled(keyed: httpx.Client, gate: RecordingGate) -> None:
    data = {"model": GEMMA_4_MODEL, "max_completion_tokens": "30"}
    response = keyed.post(TRANSCRIPTIONS, data=data, files={"file": clip()})
    assert response.status_code == 200, response.text
    assert response.headers["x-ratelimit-limit-requests"] == "10"
    admit = gate.calls[0]
    assert admit[:2] == ("admit", GEMMA_4_MODEL)
    assert admit[2] == AUDIO_TOKENS + 30  # the prompt estimate plus the form's max tokens
    assert finishes(gate) == [("settle", GEMMA_4_MODEL, 12)]


def test_a_chat_stream_settles_its_usage(keyed: httpx.Client, gate: RecordingGate) -> None:
    data = {"model": GEMMA_4_MODEL, "stream": "true"}
    with keyed.stream("POST", TRANSCRIPTIONS, data=data, files={"file": clip()}) as response:
        assert response.read().endswith(b"data: [DONE]\n\n")
    assert finishes(gate) == [("settle", GEMMA_4_MODEL, 12)]


def test_a_broken_chat_stream_ends_with_an_error_and_no_done(
    http: httpx.Client, stub: StubUpstream
) -> None:
    stub.knobs.fail_after_chunks = 2
    data = {"model": GEMMA_4_MODEL, "stream": "true"}
    response = http.post(TRANSCRIPTIONS, data=data, files={"file": clip()})
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    events = [json.loads(line) for line in lines[:-1]]
    assert [e.get("type") for e in events[:2]] == ["transcript.text.delta"] * 2
    assert events[-1]["error"]["type"] == "upstream_error"
    assert all(e.get("type") != "transcript.text.done" for e in events)
