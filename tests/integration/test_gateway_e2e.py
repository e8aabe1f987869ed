"""The gateway in front of the real cpu-full stack, driven by the official openai client."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from gateway.app import create_app
from gateway.settings import GatewaySettings
from serving.runner import LocalServing, unfinished_requests
from tests.integration.conftest import AUDIO_MODEL, MEDIA_MODEL, TEXT_MODEL, VISION_MODEL
from tests.integration.media_checks import video_part
from tests.support.media import png_data_url, wav_base64, wav_bytes
from tests.support.servers import serve_in_thread
from tests.support.tools import WEATHER_TOOL

pytestmark = pytest.mark.integration

USER = {"role": "user", "content": "Say hello in one word."}


def _root(base_url: str) -> str:
    return re.sub(r"/v1/?$", "", base_url)


@pytest.fixture(scope="module")
def gateway_url(serve_stack: LocalServing) -> Iterator[str]:
    settings = GatewaySettings.model_validate(
        {
            "upstream_url": _root(serve_stack.base_url),
            "quota": {"enabled": False},
            # the fixture's engine samples 4 frames of 70 soft tokens (catalog cpu profile)
            "media": {"video_tokens": 400},
        }
    )
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def client(gateway_url: str) -> OpenAI:
    return OpenAI(base_url=gateway_url + "/v1", api_key="unused", timeout=300, max_retries=0)


def routed(gateway_url: str, served: str, capability: str) -> float:
    text = httpx.get(gateway_url + "/metrics").text
    pattern = rf'gateway_routed_requests_total\{{[^}}]*served="{re.escape(served)}"[^}}]*\}} (\S+)'
    return sum(
        float(v) for line, v in _matches(text, pattern) if f'capability="{capability}"' in line
    )


def _matches(text: str, pattern: str) -> list[tuple[str, str]]:
    return [(m.group(0), m.group(1)) for m in re.finditer(pattern, text)]


def test_text_chat(client: OpenAI) -> None:
    answer = client.chat.completions.create(model=TEXT_MODEL, messages=[USER], max_tokens=8)
    assert answer.model == TEXT_MODEL
    assert answer.choices[0].message.content
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0


def test_stream(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model=TEXT_MODEL, messages=[USER], max_tokens=8, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert all(c.usage is None for c in chunks)


def test_image_chat_routes_to_a_vision_model(client: OpenAI, gateway_url: str) -> None:
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "Describe."},
            {"type": "image_url", "image_url": {"url": png_data_url()}},
        ],
    }
    answer = client.chat.completions.create(model="auto", messages=[message], max_tokens=4)
    assert answer.model == VISION_MODEL
    assert routed(gateway_url, VISION_MODEL, "vision") >= 1


def test_audio_chat_routes_to_the_audio_model(client: OpenAI, gateway_url: str) -> None:
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "Transcribe."},
            {"type": "input_audio", "input_audio": {"data": wav_base64(1.0), "format": "wav"}},
        ],
    }
    answer = client.chat.completions.create(model="auto", messages=[message], max_tokens=4)
    assert answer.model == AUDIO_MODEL
    assert routed(gateway_url, AUDIO_MODEL, "audio") >= 1


def test_video_chat_routes_to_the_video_model(
    client: OpenAI, gateway_url: str, tmp_path: Path
) -> None:
    """A real MP4 (made here), validated by the gateway, then decoded by the engine."""
    message = {"role": "user", "content": [{"type": "text", "text": "What happens?"}]}
    message["content"].append(video_part(tmp_path, frames=4))  # the fixture samples 4
    before = routed(gateway_url, MEDIA_MODEL, "video")
    answer = client.chat.completions.create(model="auto", messages=[message], max_tokens=4)
    assert answer.model == MEDIA_MODEL
    assert answer.usage is not None
    assert answer.usage.prompt_tokens >= 4 * 70  # four sampled frames, 70 soft tokens each
    assert routed(gateway_url, MEDIA_MODEL, "video") == before + 1


def test_auto_text_goes_to_the_smallest_model(client: OpenAI, gateway_url: str) -> None:
    answer = client.chat.completions.create(model="auto", messages=[USER], max_tokens=4)
    assert answer.model == TEXT_MODEL
    assert routed(gateway_url, TEXT_MODEL, "text") >= 1


def test_transcription(client: OpenAI) -> None:
    result = client.audio.transcriptions.create(
        model="auto", file=("clip.wav", wav_bytes(1.0), "audio/wav")
    )
    assert isinstance(result.text, str)


def test_translation(client: OpenAI, gateway_url: str) -> None:
    """Served by the engine's transcription into English (Serve has no translations route)."""
    before = routed(gateway_url, AUDIO_MODEL, "audio")
    result = client.audio.translations.create(
        model="auto", file=("clip.wav", wav_bytes(1.0), "audio/wav")
    )
    assert isinstance(result.text, str)
    assert routed(gateway_url, AUDIO_MODEL, "audio") == before + 1


CLOCK = {"type": "function", "function": {"name": "now", "description": "The time."}}
TOOL_CHOICES = {
    "required": "required",
    "named": {"type": "function", "function": {"name": "get_weather"}},
}
#: Gemma 4's <|tool_call>, <tool_call|> and <|"|> ids in the fixture's vocabulary. The grammar
#: accepts them as these special tokens or spelled out in ordinary ones (the same text); a
#: trained Gemma 4 emits the special tokens, and so does the random fixture once biased
#: towards them (vLLM's streaming parser finds calls by these token ids).
SPECIAL_CALL_TOKENS = {"48": 50, "49": 50, "52": 50}


@pytest.mark.parametrize("choice", sorted(TOOL_CHOICES))
def test_gemma4_tool_choice_returns_tool_calls(client: OpenAI, choice: str) -> None:
    """Gemma 4's native call syntax, constrained by ``gemma4_constrained``, read by ``gemma4``.

    The fixture's weights are random: only the grammar makes it call a tool at all.
    """
    request: dict[str, Any] = {
        "model": MEDIA_MODEL,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [WEATHER_TOOL, CLOCK],
        "tool_choice": TOOL_CHOICES[choice],
        "parallel_tool_calls": False,
        "max_tokens": 48,
        "temperature": 0.0,
        "logit_bias": SPECIAL_CALL_TOKENS,
    }
    answer = client.chat.completions.create(**request)
    (call,) = answer.choices[0].message.tool_calls or []
    # OpenAI answers a forced function call with "stop", a chosen one with "tool_calls"
    assert answer.choices[0].finish_reason in {"stop", "tool_calls"}
    names = {"get_weather"} if choice == "named" else {"get_weather", "now"}
    assert call.function.name in names
    arguments = json.loads(call.function.arguments)
    if call.function.name == "get_weather":
        assert arguments["city"] in {"Paris", "Rome", "Oslo"}

    deltas = [
        d
        for chunk in client.chat.completions.create(**request, stream=True)
        for c in chunk.choices
        for d in c.delta.tool_calls or []
    ]
    assert deltas, "no tool call in the stream"
    streamed_name = next(d.function.name for d in deltas if d.function and d.function.name)
    streamed_args = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert (streamed_name, json.loads(streamed_args)) == (call.function.name, arguments)


def _running() -> int:
    """Requests the 270M's vLLM engine is still generating (through its Serve deployment)."""
    return unfinished_requests(TEXT_MODEL)


def test_disconnect_stops_the_engine(gateway_url: str) -> None:
    body = {
        "model": TEXT_MODEL,
        "messages": [USER],
        "max_tokens": 2000,
        "ignore_eos": True,
        "stream": True,
    }
    with (
        httpx.Client(base_url=gateway_url, timeout=300) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        lines = response.iter_lines()  # kept referenced: closing it would disconnect
        first = next(line for line in lines if line.startswith("data: "))
        assert '"error"' not in first
        assert _running() >= 1
    deadline = time.monotonic() + 1.0
    while _running() > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running() == 0
