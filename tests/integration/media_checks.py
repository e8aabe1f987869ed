"""Checks of a media fixture through an OpenAI client, shared by every profile that serves one.

The fixtures have random weights: each check shows the engine took the media (the prompt
grew by its soft tokens) and generated, never what it said.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from openai import OpenAI

from tests.support.media import png_data_url, video_bytes, video_data_url, wav_base64, wav_bytes

QUESTION = "Describe it."


def _prompt_tokens(client: OpenAI, model: str, parts: list[dict[str, Any]]) -> int:
    completion = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": [*parts, {"type": "text", "text": QUESTION}]}],
        max_tokens=4,
    )
    assert completion.model == model
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    return completion.usage.prompt_tokens


def media_tokens(client: OpenAI, model: str, part: dict[str, Any]) -> int:
    """How many prompt tokens ``part`` added to the same question without it."""
    return _prompt_tokens(client, model, [part]) - _prompt_tokens(client, model, [])


def image_part(width: int = 320, height: int = 240) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": png_data_url(width, height)}}


def audio_part(seconds: float = 2.5) -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": wav_base64(seconds), "format": "wav"}}


def video_part(directory: Path, frames: int = 16) -> dict[str, Any]:
    data = video_bytes(directory, width=320, height=240, frames=frames, fps=8.0)
    return {"type": "video_url", "video_url": {"url": video_data_url(data)}}


def transcribes(client: OpenAI, model: str) -> None:
    transcription = client.audio.transcriptions.create(
        model=model,
        file=("clip.wav", io.BytesIO(wav_bytes(1.0))),
        language="en",
        extra_body={"max_completion_tokens": 4},
    )
    assert isinstance(transcription.text, str)
