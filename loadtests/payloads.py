"""One OpenAI chat completion body per capability of the mix."""

from __future__ import annotations

from typing import Any

from loadtests.media import png_data_url, wav_base64
from loadtests.mix import STREAMING

CHAT_PATH = "/v1/chat/completions"

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}


def _content(capability: str, prompt: str) -> str | list[dict[str, Any]]:
    if capability == "image":
        return [
            {"type": "text", "text": "Describe this picture. " + prompt},
            {"type": "image_url", "image_url": {"url": png_data_url()}},
        ]
    if capability == "audio":
        return [
            {"type": "text", "text": "Transcribe the clip, then answer: " + prompt},
            {"type": "input_audio", "input_audio": {"data": wav_base64(), "format": "wav"}},
        ]
    return prompt


def chat_body(capability: str, prompt: str, *, model: str, max_tokens: int) -> dict[str, Any]:
    """The request for ``capability``: every one but ``chat`` streams with a usage chunk."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": _content(capability, prompt)}],
        "max_tokens": max_tokens,
        "temperature": 0.7,
    }
    if capability == "tools":
        body["tools"] = [WEATHER_TOOL]
        body["tool_choice"] = "auto"
    if capability in STREAMING:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body
