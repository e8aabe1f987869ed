"""The cpu-full Serve application through the official ``openai`` client.

These tests check the protocol each Gemma feature rides on (tool calls, structured
outputs, images, audio, LoRA adapters, model metadata), not the wisdom of a 270M base
model or of random-weight fixtures.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openai import OpenAI

from serving.runner import LocalServing
from tests.integration.conftest import AUDIO_MODEL, TEXT_MODEL, VISION_MODEL
from tests.support.media import png_data_url, wav_base64
from tests.support.tools import WEATHER_TOOL

pytestmark = pytest.mark.integration

LORA_MODEL = f"{TEXT_MODEL}:tiny-lora"


def test_models_list_carries_capabilities(serve_stack: LocalServing) -> None:
    body = httpx.get(f"{serve_stack.base_url}/models", timeout=30).json()
    cards = {card["id"]: card["metadata"] for card in body["data"]}
    assert set(cards) >= {TEXT_MODEL, VISION_MODEL, AUDIO_MODEL, LORA_MODEL}
    assert set(cards[TEXT_MODEL]["capabilities"]) == {"text", "tools"}
    assert "vision" in cards[VISION_MODEL]["capabilities"]
    assert {"audio", "video", "reasoning"} <= set(cards[AUDIO_MODEL]["capabilities"])
    assert cards[LORA_MODEL]["base_model_id"] == TEXT_MODEL
    assert cards[TEXT_MODEL]["max_request_context_length"] == 4096


def test_chat_and_streaming_chat_agree(serve_client: OpenAI) -> None:
    messages: Any = [{"role": "user", "content": "Name a color."}]
    whole = serve_client.chat.completions.create(
        model=TEXT_MODEL, messages=messages, max_tokens=12, temperature=0.0
    )
    stream = serve_client.chat.completions.create(
        model=TEXT_MODEL,
        messages=messages,
        max_tokens=12,
        temperature=0.0,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        pieces.extend(c.delta.content or "" for c in chunk.choices)
    assert whole.choices[0].message.content
    assert "".join(pieces) == whole.choices[0].message.content
    assert usage is not None
    assert whole.usage is not None
    assert usage.completion_tokens == whole.usage.completion_tokens


def test_tool_call_round_trip(serve_client: OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = serve_client.chat.completions.create(
        model=TEXT_MODEL,
        messages=messages,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=32,
        temperature=0.0,
    )
    calls = first.choices[0].message.tool_calls
    assert calls
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"] in {"Paris", "Rome", "Oslo"}

    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"celsius": 21}'})
    second = serve_client.chat.completions.create(
        model=TEXT_MODEL,
        messages=messages,
        tools=[WEATHER_TOOL],
        max_tokens=16,  # type: ignore[list-item]
    )
    assert second.choices[0].finish_reason in {"stop", "length", "tool_calls"}
    assert second.usage is not None
    assert second.usage.prompt_tokens > (first.usage.prompt_tokens if first.usage else 0)


def test_json_schema_response_parses(serve_client: OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "enum": ["Paris", "Rome"]},
            "sunny": {"type": "boolean"},
        },
        "required": ["city", "sunny"],
        "additionalProperties": False,
    }
    completion = serve_client.chat.completions.create(
        model=TEXT_MODEL,
        messages=[{"role": "user", "content": "Describe the weather in Paris as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "weather", "schema": schema, "strict": True},
        },
        max_tokens=64,
        temperature=0.0,
    )
    assert completion.choices[0].finish_reason == "stop"
    parsed = json.loads(completion.choices[0].message.content or "")
    assert set(parsed) == {"city", "sunny"}
    assert parsed["city"] in {"Paris", "Rome"}
    assert isinstance(parsed["sunny"], bool)


def test_image_chat_on_the_vision_fixture(serve_client: OpenAI) -> None:
    completion = serve_client.chat.completions.create(
        model=VISION_MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": png_data_url(64, 48)}},
                ],
            }
        ],
        max_tokens=4,
    )
    assert completion.model == VISION_MODEL
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0


def test_text_model_refuses_an_image(serve_client: OpenAI) -> None:
    import openai

    with pytest.raises(openai.BadRequestError):
        serve_client.chat.completions.create(
            model=TEXT_MODEL,
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": png_data_url(8, 8)}}],
                }
            ],
            max_tokens=4,
        )


def test_audio_chat_on_the_media_fixture(serve_client: OpenAI) -> None:
    chat = serve_client.chat.completions.create(
        model=AUDIO_MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "input_audio",
                        "input_audio": {"data": wav_base64(1.0), "format": "wav"},
                    },
                    {"type": "text", "text": "What do you hear?"},
                ],
            }
        ],
        max_tokens=4,
    )
    assert chat.usage is not None
    assert chat.usage.completion_tokens > 0


def test_lora_adapter_answers_under_its_own_id(serve_client: OpenAI) -> None:
    completion = serve_client.completions.create(
        model=LORA_MODEL, prompt="The capital of France is", max_tokens=4, temperature=0.0
    )
    assert completion.model == LORA_MODEL
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
