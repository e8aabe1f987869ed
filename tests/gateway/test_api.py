"""The gateway over real HTTP, driven by the official openai client, in front of the stub."""

from __future__ import annotations

import json

import httpx
from openai import OpenAI

from tests.support.media import png_data_url, wav_base64, wav_bytes
from tests.support.stub_upstream import ANSWER, TRANSCRIPT, StubUpstream

USER = {"role": "user", "content": "Say hello."}


def image_message() -> dict:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": png_data_url()}},
        ],
    }


def audio_message() -> dict:
    return {
        "role": "user",
        "content": [
            {"type": "text", "text": "Transcribe."},
            {"type": "input_audio", "input_audio": {"data": wav_base64(1.0), "format": "wav"}},
        ],
    }


def metric(http: httpx.Client, name: str, **labels: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_chat(openai_client: OpenAI) -> None:
    answer = openai_client.chat.completions.create(model="gemma-3-270m", messages=[USER])
    assert answer.choices[0].message.content == ANSWER
    assert answer.model == "gemma-3-270m"
    assert answer.usage is not None
    assert answer.usage.total_tokens == 12


def test_stream_without_usage_drops_the_usage_chunk(
    openai_client: OpenAI, stub: StubUpstream
) -> None:
    chunks = list(openai_client.chat.completions.create(model="auto", messages=[USER], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == ANSWER
    assert all(c.usage is None for c in chunks)
    sent = {"include_usage": True, "continuous_usage_stats": True}
    assert stub.requests[-1][1]["stream_options"] == sent


def test_stream_with_usage(openai_client: OpenAI) -> None:
    chunks = list(
        openai_client.chat.completions.create(
            model="auto", messages=[USER], stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 12


def test_stream_keeps_per_chunk_usage_only_when_asked(http: httpx.Client) -> None:
    def usages(stream_options: dict[str, bool]) -> list[object]:
        body = {"model": "auto", "messages": [USER], "stream": True}
        answer = http.post("/v1/chat/completions", json={**body, "stream_options": stream_options})
        events = [line[6:] for line in answer.text.splitlines() if line.startswith("data: {")]
        return [json.loads(e).get("usage") for e in events if json.loads(e)["choices"]]

    asked = usages({"include_usage": True, "continuous_usage_stats": True})
    assert [u["total_tokens"] for u in asked[:-1]] == [8, 9, 10, 11, 12]
    assert all(u is None for u in usages({"include_usage": True}))


def test_completions(openai_client: OpenAI) -> None:
    answer = openai_client.completions.create(model="gemma-3", prompt="Once", max_tokens=8)
    assert answer.choices[0].text == ANSWER
    assert answer.model == "gemma-3-270m"
    streamed = openai_client.completions.create(model="gemma-3", prompt="Once", stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices).strip() == ANSWER


def test_models_lists_variants_adapters_and_aliases(openai_client: OpenAI) -> None:
    listed = {m.id: m for m in openai_client.models.list()}
    assert {"gemma-3-270m", "gemma-3-270m:tiny-lora", "tiny-random-gemma-3n", "auto"} <= set(listed)
    auto = listed["auto"].model_extra or {}
    assert auto["metadata"]["kind"] == "alias"
    assert set(auto["metadata"]["capabilities"]) == {
        "embeddings",
        "text",
        "tools",
        "vision",
        "audio",
        "transcription",
    }


def test_auto_routes_by_capability(openai_client: OpenAI, http: httpx.Client) -> None:
    cases = [
        (USER, "gemma-3-270m", "text"),
        (image_message(), "tiny-random-gemma-3-vision", "vision"),
        (audio_message(), "tiny-random-gemma-3n", "audio"),
    ]
    for message, served, capability in cases:
        raw = openai_client.chat.completions.with_raw_response.create(
            model="auto", messages=[message]
        )
        assert raw.parse().model == served
        assert raw.headers["x-gemma-model"] == served
        assert (
            metric(
                http,
                "gateway_routed_requests_total",
                requested="auto",
                served=served,
                capability=capability,
            )
            == 1
        )


def test_media_reaches_upstream_normalised(openai_client: OpenAI, stub: StubUpstream) -> None:
    openai_client.chat.completions.create(model="auto", messages=[audio_message()])
    part = stub.requests[-1][1]["messages"][0]["content"][1]
    assert part["input_audio"]["format"] == "wav"


def test_fallback_to_next_candidate(
    openai_client: OpenAI, http: httpx.Client, stub: StubUpstream
) -> None:
    stub.knobs.unavailable = {"tiny-random-gemma-3-vision"}
    raw = openai_client.chat.completions.with_raw_response.create(
        model="auto", messages=[image_message()]
    )
    assert raw.headers["x-gemma-model"] == "tiny-random-gemma-3n"
    assert raw.parse().model == "tiny-random-gemma-3n"
    assert (
        metric(
            http, "gateway_fallbacks_total", requested="auto", failed="tiny-random-gemma-3-vision"
        )
        == 1
    )
    # The failed model is now tried last, so the next request goes straight to the other one.
    openai_client.chat.completions.create(model="auto", messages=[image_message()])
    assert [b["model"] for _, b in stub.requests[-1:]] == ["tiny-random-gemma-3n"]


def test_no_candidate_left_is_503(http: httpx.Client, stub: StubUpstream) -> None:
    stub.knobs.unavailable = {"tiny-random-gemma-3n"}
    response = http.post(
        "/v1/chat/completions", json={"model": "auto", "messages": [audio_message()]}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_healthy_upstream"


def test_upstream_refusal_passes_through(http: httpx.Client, stub: StubUpstream) -> None:
    stub.cards.append({**stub.cards[0], "id": "ghost"})  # listed, but the stub has no such model
    http.post("/v1/chat/completions", json={"model": "auto", "messages": [USER]})
    assert http.get("/readyz").status_code == 200


def test_transcription(openai_client: OpenAI, stub: StubUpstream) -> None:
    result = openai_client.audio.transcriptions.create(
        model="auto", file=("clip.wav", wav_bytes(1.0), "audio/wav")
    )
    assert result.text == TRANSCRIPT
    path, fields = stub.requests[-1]
    assert path == "/v1/audio/transcriptions"
    assert fields["model"] == "tiny-random-gemma-3n"
    assert stub.uploads[-1][:4] == b"RIFF"


def test_translation_is_a_transcription_into_english(
    openai_client: OpenAI, stub: StubUpstream
) -> None:
    text = openai_client.audio.translations.create(
        model="auto",
        file=("clip.wav", wav_bytes(1.0), "audio/wav"),
        response_format="text",
        extra_body={"language": "de"},
    )
    assert TRANSCRIPT in str(text)
    path, fields = stub.requests[-1]
    assert path == "/v1/audio/transcriptions"
    assert (fields["model"], fields["language"]) == ("tiny-random-gemma-3n", "en")
    assert fields["response_format"] == "text"


def test_health_ready_metrics(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200
    checks = ready.json()["checks"]
    assert (checks["upstream"], checks["quota"], checks["down"]) == (True, True, {})
    assert checks["required_capabilities"] == {"text": True}
    assert checks["capabilities"]["audio"] is True
    metrics = http.get("/metrics").text
    assert "gateway_routed_requests_total" in metrics
    assert 'gateway_capability_up{capability="vision"} 1.0' in metrics
    assert "gateway_quota_backend_up 1.0" in metrics


def test_not_ready_without_upstream() -> None:
    from gateway.app import create_app
    from tests.gateway.conftest import gateway_settings
    from tests.support.servers import free_port, serve_in_thread

    app = create_app(gateway_settings(f"http://127.0.0.1:{free_port()}"))
    with serve_in_thread(app) as url:
        response = httpx.get(url + "/readyz")
        assert response.status_code == 503
        refused = httpx.post(
            url + "/v1/chat/completions", json={"model": "auto", "messages": [USER]}
        )
        assert refused.status_code == 404  # no model known yet
        assert json.loads(refused.text)["error"]["code"] == "model_not_found"
