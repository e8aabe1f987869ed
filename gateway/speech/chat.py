"""A speech job as a chat completion, and the chat's answer in OpenAI's transcription shape.

The request is one user turn: the instruction vLLM's Gemma 3n transcription prompt uses
(``get_generation_prompt`` in vLLM's ``gemma3n_mm.py``), then the clip, already
normalised to 16 kHz mono WAV, as an ``input_audio`` part:

    transcribe  "Transcribe this audio into {language}:"   (the language field, else English)
    translate   "Translate this audio [from {language}] into English:"

Thinking is off; ``temperature`` is the form's, else 0 (vLLM's transcription default);
the form's ``max_completion_tokens`` (or ``max_tokens``) is passed on. The answer:

    json          {"text", "usage": {"type": "tokens", "input_tokens", "output_tokens", ...}}
    text          the text, as text/plain
    verbose_json  {"task", "language", "duration", "text"}   (no segments: no timestamps)
    stream=true   transcript.text.delta per content chunk, then transcript.text.done with
                  the whole text (stripped, as in json) and usage, then [DONE]; error
                  events pass as they are

The proxy settles the quota from the chat's usage, as for any chat answer.
"""

from __future__ import annotations

import base64
import io
import json
import wave
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from gateway.reasoning import THINKING_SWITCH
from gateway.speech.job import SpeechJob
from gateway.speech.languages import DEFAULT_LANGUAGE, language_name
from gateway.upstream.sse import DONE, StreamTally, event

CHAT_PATH = "/v1/chat/completions"
DEFAULT_TEMPERATURE = 0.0


def instruction(job: SpeechJob) -> str:
    """The text before the clip, worded as vLLM words Gemma 3n's transcription prompt."""
    if job.task == "transcribe":
        return f"Transcribe this audio into {language_name(job.language)}:"
    source = f" from {language_name(job.language)}" if job.language else ""
    return f"Translate this audio{source} into {language_name(DEFAULT_LANGUAGE)}:"


def chat_payload(job: SpeechJob, wav: bytes, model_id: str) -> dict[str, Any]:
    """The ``/v1/chat/completions`` body that serves the job on ``model_id``."""
    audio = {"data": base64.b64encode(wav).decode(), "format": "wav"}
    content = [
        {"type": "text", "text": instruction(job)},
        {"type": "input_audio", "input_audio": audio},
    ]
    temperature = job.temperature if job.temperature is not None else DEFAULT_TEMPERATURE
    payload: dict[str, Any] = {
        "model": model_id,
        "messages": [{"role": "user", "content": content}],
        "temperature": temperature,
        "chat_template_kwargs": {THINKING_SWITCH: False},
    }
    if job.max_tokens is not None:
        payload["max_completion_tokens"] = job.max_tokens
    if job.stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
    return payload


def wav_duration(wav: bytes) -> float:
    """Seconds of audio in a WAV file (read from its header)."""
    with wave.open(io.BytesIO(wav)) as clip:
        return clip.getnframes() / clip.getframerate()


def token_usage(usage: object) -> dict[str, Any] | None:
    """A chat ``usage`` as OpenAI's transcription usage (``type: tokens``)."""
    if not isinstance(usage, Mapping) or not isinstance(usage.get("total_tokens"), int):
        return None
    return {
        "type": "tokens",
        "input_tokens": usage.get("prompt_tokens", 0),
        "output_tokens": usage.get("completion_tokens", 0),
        "total_tokens": usage["total_tokens"],
    }


def _answer_text(body: Any) -> str:
    try:
        content = body["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return ""
    return content.strip() if isinstance(content, str) else ""


def transcript_answer(
    job: SpeechJob, duration: float, body: Any, headers: Mapping[str, str]
) -> Response:
    """A chat completion (``body``) as the transcription or translation answer."""
    text = _answer_text(body)
    if job.response_format == "text":
        return PlainTextResponse(text, headers=headers)
    if job.response_format == "verbose_json":
        language = job.language if job.task == "transcribe" else DEFAULT_LANGUAGE
        verbose = {
            "task": job.task,
            "language": str(language_name(language)).lower(),
            "duration": duration,
            "text": text,
        }
        return JSONResponse(verbose, headers=headers)
    answer: dict[str, Any] = {"text": text}
    if (usage := token_usage(body.get("usage") if isinstance(body, dict) else None)) is not None:
        answer["usage"] = usage
    return JSONResponse(answer, headers=headers)


def _delta(raw: bytes) -> str | None:
    """The content a relayed chat chunk adds (``""``: none), ``None`` if not a chat chunk."""
    try:
        choices = json.loads(raw.removeprefix(b"data: "))["choices"]
        content = (choices[0].get("delta") or {}).get("content") if choices else None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return content if isinstance(content, str) else ""


async def transcript_events(
    events: AsyncGenerator[bytes, None], tally: StreamTally
) -> AsyncGenerator[bytes, None]:
    """A relayed chat stream as OpenAI's transcription stream events.

    The relay ends a broken stream with an error event and ``[DONE]``: then no
    ``transcript.text.done`` is sent, as the text is not whole.
    """
    pieces: list[str] = []
    failed = False
    async with aclosing(events):
        async for raw in events:
            if raw == DONE:
                if not failed:
                    yield event(json.dumps(_done("".join(pieces), tally)))
                yield DONE
                continue
            delta = _delta(raw)
            if delta is None:  # an error event: passed on as it is
                failed = True
                yield raw
            elif delta:
                pieces.append(delta)
                yield event(json.dumps({"type": "transcript.text.delta", "delta": delta}))


def _done(text: str, tally: StreamTally) -> dict[str, Any]:
    done: dict[str, Any] = {"type": "transcript.text.done", "text": text.strip()}
    if (usage := token_usage(tally.usage)) is not None:
        done["usage"] = usage
    return done
