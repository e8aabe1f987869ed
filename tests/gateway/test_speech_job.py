"""The speech job read from form fields, and the candidates that may serve it: pure rules."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidRequest
from gateway.model_info import ModelInfo
from gateway.routing import AUDIO_TOKENS, Route
from gateway.speech.chat import instruction
from gateway.speech.job import SpeechJob, speech_job, speech_route

AUDIO = frozenset({"text", "audio"})
ENDPOINT = AUDIO | {"transcription"}
SMALL_CHAT = ModelInfo("gemma-4-E2B-it", AUDIO, 8192, 0, params_b=5.1)
ENDPOINT_3N = ModelInfo("gemma-3n-E2B-it", ENDPOINT, 8192, 1, params_b=5.4)
LARGE_CHAT = ModelInfo("gemma-4-E4B-it", AUDIO, 8192, 2, params_b=8.0)


def routed(requested: str, *models: ModelInfo) -> Route:
    return Route(requested, models, SpeechJob("transcribe").needs)


def ids(found: Route) -> list[str]:
    return [m.id for m in found.candidates]


def test_fields_make_a_job() -> None:
    fields = [
        ("model", "auto"),
        ("language", "de"),
        ("response_format", "text"),
        ("temperature", "0.2"),
        ("max_completion_tokens", "64"),
        ("stream", "true"),
    ]
    job = speech_job("transcribe", fields, max_tokens=1024)
    assert job == SpeechJob("transcribe", "de", "text", 0.2, 64, stream=True)
    assert job.needs.max_tokens == 64
    assert job.needs.prompt_tokens == AUDIO_TOKENS
    assert speech_job("translate", [], max_tokens=1024) == SpeechJob("translate")


def test_timestamp_granularities_are_seen_under_either_name() -> None:
    for name in ("timestamp_granularities[]", "timestamp_granularities"):
        assert speech_job("transcribe", [(name, "word")], max_tokens=10).timestamps


def test_auto_puts_the_endpoint_first_and_keeps_size_order_within() -> None:
    found = routed("auto", SMALL_CHAT, ENDPOINT_3N, LARGE_CHAT)
    assert ids(speech_route(found, SpeechJob("transcribe"), ())) == [
        "gemma-3n-E2B-it",
        "gemma-4-E2B-it",
        "gemma-4-E4B-it",
    ]


def test_a_healthy_chat_variant_comes_before_an_unhealthy_endpoint() -> None:
    found = routed("auto", SMALL_CHAT, ENDPOINT_3N)
    order = speech_route(found, SpeechJob("transcribe"), {"gemma-3n-E2B-it"})
    assert ids(order) == ["gemma-4-E2B-it", "gemma-3n-E2B-it"]


def test_a_named_model_stays_first() -> None:
    found = routed("gemma-4-E2B-it", SMALL_CHAT, ENDPOINT_3N)
    assert ids(speech_route(found, SpeechJob("transcribe"), ())) == ids(found)


def test_what_chat_cannot_serve_keeps_only_the_endpoint() -> None:
    srt = SpeechJob("transcribe", response_format="srt")
    found = routed("auto", SMALL_CHAT, ENDPOINT_3N)
    assert ids(speech_route(found, srt, ())) == ["gemma-3n-E2B-it"]
    with pytest.raises(InvalidRequest) as refused:
        speech_route(routed("gemma-4-E2B-it", SMALL_CHAT), srt, ())
    assert refused.value.param == "response_format"


@pytest.mark.parametrize(
    ("job", "text"),
    [
        (SpeechJob("transcribe"), "Transcribe this audio into English:"),
        (SpeechJob("transcribe", "JA"), "Transcribe this audio into Japanese:"),
        (SpeechJob("translate"), "Translate this audio into English:"),
        (SpeechJob("translate", "es"), "Translate this audio from Spanish into English:"),
    ],
)
def test_instructions_use_vllms_gemma_3n_wording(job: SpeechJob, text: str) -> None:
    assert instruction(job) == text
