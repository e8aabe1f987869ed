"""``POST /v1/audio/transcriptions`` and ``/v1/audio/translations`` (multipart, OpenAI shape).

The uploaded file is validated and normalised to 16 kHz mono WAV by the media checks,
then served by the variant routing picks: through the serving application's
transcription endpoint if it has the ``transcription`` capability (vLLM's speech-to-text,
Gemma 3n), else through chat completions (Gemma 4, see ``gateway.speech``).

Translations (OpenAI: speech in any language to English text) are transcriptions into
English on the endpoint: Ray Serve LLM's ingress serves speech-to-text as
``/v1/audio/transcriptions`` only, and vLLM's speech prompt for Gemma 3n with
``language="en"`` reads "Transcribe this audio into English", which is the translation
task. Any ``language`` field the client sent is replaced there; through chat the
instruction reads "Translate this audio [from <language>] into English". The answer has
OpenAI's translation shape (``text``) either way.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.datastructures import UploadFile

from gateway.api.responses import GENERATION_ERRORS, SSE_EVENT
from gateway.errors import InvalidRequest
from gateway.proxy import TRANSCRIPTIONS, Upload
from gateway.speech.job import RESPONSE_FORMATS, Task, speech_job
from gateway.state import GatewayState, gateway_state

TRANSLATION_LANGUAGE = "en"
#: The multipart form, as the OpenAPI document states it (the route reads it itself).
FORM: dict[str, Any] = {
    "type": "object",
    "required": ["file", "model"],
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "model": {"type": "string", "minLength": 1},
        "language": {"type": "string"},
        "prompt": {"type": "string"},
        "response_format": {"enum": list(RESPONSE_FORMATS)},
        "temperature": {"type": "number", "minimum": 0},
        "max_tokens": {"type": "integer", "minimum": 1},
        "max_completion_tokens": {"type": "integer", "minimum": 1},
        "stream": {"type": "boolean"},
    },
}
SPEECH: dict[str, Any] = {
    "openapi_extra": {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": FORM}}}
    },
    "responses": {
        200: {
            "description": "The text: JSON, plain text (text, srt, vtt) or server-sent events.",
            "content": {
                "application/json": {},
                "text/plain": {"schema": {"type": "string"}},
                "text/event-stream": {"schema": SSE_EVENT},
            },
        },
        **GENERATION_ERRORS,
    },
}
router = APIRouter(tags=["audio"])
State = Annotated[GatewayState, Depends(gateway_state)]


async def _upload(request: Request) -> tuple[str, Upload]:
    try:
        form = await request.form()
    except (AssertionError, ValueError) as exc:  # not multipart, or a broken body
        raise InvalidRequest(
            "The request must be multipart/form-data.", code="invalid_form"
        ) from exc
    file = form.get("file")
    if not isinstance(file, UploadFile):
        raise InvalidRequest("A 'file' upload is required.", param="file")
    model = form.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("A 'model' field is required.", param="model")
    fields = [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    content = await file.read()
    await form.close()
    upload = Upload(file.filename or "audio", content, file.content_type or "", fields)
    return model, upload


def into_english(upload: Upload) -> Upload:
    """A translation request as the transcription into English that serves it."""
    fields = [(k, v) for k, v in upload.fields if k != "language"]
    return replace(upload, fields=[*fields, ("language", TRANSLATION_LANGUAGE)])


async def _speech(request: Request, state: GatewayState, task: Task) -> Response:
    model, upload = await _upload(request)
    job = speech_job(task, upload.fields, max_tokens=state.settings.limits.max_tokens)
    sent = into_english(upload) if task == "translate" else upload
    return await state.proxy.transcribe(request, sent, model, job)


@router.post(TRANSCRIPTIONS, **SPEECH)
async def transcriptions(request: Request, state: State) -> Response:
    return await _speech(request, state, "transcribe")


@router.post("/v1/audio/translations", **SPEECH)
async def translations(request: Request, state: State) -> Response:
    return await _speech(request, state, "translate")
