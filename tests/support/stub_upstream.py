"""An OpenAI-compatible upstream speaking like the serving application, over real HTTP.

``StubUpstream`` serves ``/v1/models`` with the serving application's card shape (a
text model with a LoRA adapter, a vision model, an audio model with ``transcription``, an
embedding model answering ``/v1/embeddings`` with unit vectors),
chat and text completions (streamed with a usage chunk, or not, and with usage on every
chunk when ``stream_options.continuous_usage_stats`` asks) with a fixed answer, and audio
transcriptions (like Ray Serve LLM's ingress, no translations route). Knobs on
``stub.knobs`` make it fail a stream after N chunks, slow a stream down, answer 503
for chosen models, or never answer their non-streamed requests (until the caller hangs
up, which is recorded in ``stub.cancelled``); a card's ``metadata.health`` says whether
its engine answers, as the serving application's does. ``stub.requests`` records each
received body (``stub.headers`` its request headers, ``stub.peers`` the address it came
from), ``stub.reported`` each per-chunk usage sent and ``stub.cancelled`` each stream or
request the caller abandoned. With
``moderation_cards()`` adds a ShieldGemma classifier: ``/tokenize`` gives its ``Yes``/``No``
ids and a completion asking for their logprobs (``logprob_token_ids``) scores each prompt
``P(Yes)`` = ``knobs.flagged_score`` when it holds a word of ``knobs.flag_words``, else
``knobs.clean_score``; and a ShieldGemma 2 image classifier, whose chat completions
(an image and a policy each) are scored the same way from the policy's text. With
``knobs.reasoning`` set, chat answers think first, as vLLM's reasoning parser returns it:
the thinking in ``message.reasoning`` (or ``knobs.reasoning_field``) and in stream deltas
before the content, counted in ``completion_tokens`` (one token per piece) and in
``completion_tokens_details.reasoning_tokens``.

    with StubUpstream() as stub:
        client = OpenAI(base_url=stub.base_url + "/v1", api_key="x")
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from tests.support.servers import serve_in_thread

TEXT_MODEL = "gemma-3-270m"
ADAPTER = "gemma-3-270m:tiny-lora"
VISION_MODEL = "tiny-random-gemma-3-vision"
AUDIO_MODEL = "tiny-random-gemma-3n"
EMBEDDING_MODEL = "tiny-random-embeddinggemma"
EMBEDDING_SIZE = 8
MODERATION_MODEL = "tiny-random-shieldgemma"
IMAGE_MODERATION_MODEL = "tiny-random-shieldgemma-2"
LABEL_IDS = {"Yes": 8438, "No": 1294}
#: A stub image judgement's prompt tokens before its policy text (the image and template).
IMAGE_JUDGEMENT_TOKENS = 100
GEMMA_4_MODEL = "gemma-4-E2B-it"
GEMMA_4_CAPABILITIES = ["text", "vision", "audio", "video", "tools", "reasoning"]
ANSWER = "Hello from the stub upstream."
TRANSCRIPT = "a stub transcription"
CONTEXT = 4096


def _card(model_id: str, capabilities: list[str], kind: str, adapters: list[str]) -> dict[str, Any]:
    return {
        "id": model_id,
        "object": "model",
        "owned_by": "gemma-serving",
        "permission": [],
        "metadata": {
            "model_id": model_id,
            "input_modality": "image" if "vision" in capabilities else "text",
            "max_request_context_length": CONTEXT,
            "capabilities": capabilities,
            "kind": kind,
            "hf_id": f"stub/{model_id}",
            "context_length": 32768,
            "max_model_len": CONTEXT,
            "target": "cpu",
            "adapters": adapters,
        },
    }


def default_cards() -> list[dict[str, Any]]:
    text = _card(TEXT_MODEL, ["text", "tools"], "model", [ADAPTER])
    meta = {k: v for k, v in text["metadata"].items() if k != "adapters"}
    adapter = {
        **text,
        "id": ADAPTER,
        "metadata": {**meta, "model_id": ADAPTER, "base_model_id": TEXT_MODEL},
    }
    return [
        text,
        adapter,
        _card(VISION_MODEL, ["text", "vision"], "fixture", []),
        _card(AUDIO_MODEL, ["text", "vision", "audio", "transcription"], "fixture", []),
        _card(EMBEDDING_MODEL, ["embeddings"], "fixture", []),
    ]


def moderation_cards() -> list[dict[str, Any]]:
    """The default cards, a ShieldGemma classifier (``moderation`` alone) and a ShieldGemma 2
    image classifier (``image_moderation`` alone)."""
    card = _card(MODERATION_MODEL, ["moderation"], "fixture", [])
    card["metadata"]["moderation_policy"] = "shieldgemma"
    images = _card(IMAGE_MODERATION_MODEL, ["image_moderation"], "fixture", [])
    images["metadata"]["moderation_policy"] = "shieldgemma2"
    return [*default_cards(), card, images]


def gemma_4_cards() -> list[dict[str, Any]]:
    """The default cards and, last, a Gemma 4 variant with every capability it has (128K)."""
    gemma_4 = _card(GEMMA_4_MODEL, GEMMA_4_CAPABILITIES, "model", [])
    for key in ("max_request_context_length", "context_length", "max_model_len"):
        gemma_4["metadata"][key] = 131_072
    return [*default_cards(), gemma_4]


@dataclass
class Knobs:
    fail_after_chunks: int | None = None
    chunk_delay: float = 0.0
    chunks: int = 5
    after_done_delay: float = 0.0  # before the body's end, as a server's last write may lag
    unavailable: set[str] = field(default_factory=set)
    hang: set[str] = field(default_factory=set)  # non-streamed answers that never come
    reasoning: list[str] = field(default_factory=list)  # chat thinking pieces, one token each
    reasoning_field: str = "reasoning"
    flag_words: set[str] = field(default_factory=set)  # classifier prompts holding one: flagged
    flagged_score: float = 0.97
    clean_score: float = 0.02


def _usage(prompt: int, completion: int, reasoning: int | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


class StubUpstream(AbstractContextManager["StubUpstream"]):
    def __init__(self, cards: list[dict[str, Any]] | None = None) -> None:
        self.cards = cards if cards is not None else default_cards()
        self.knobs = Knobs()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        self.peers: list[tuple[str, int]] = []  # the caller's address: one per connection
        self.cancelled: list[str] = []
        self.reported: list[dict[str, int]] = []
        self.cancelled_event = threading.Event()
        self.uploads: list[bytes] = []
        self._stack = ExitStack()
        self.base_url = ""
        self.app = self._build()

    def __enter__(self) -> StubUpstream:
        self.base_url = self._stack.enter_context(serve_in_thread(self.app))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def wait_cancelled(self, timeout: float = 10.0) -> bool:
        return self.cancelled_event.wait(timeout)

    def _unavailable(self, model: str) -> JSONResponse | None:
        if model not in self.knobs.unavailable:
            return None
        body = {
            "error": {"message": f"{model} is not ready", "type": "ServiceUnavailable", "code": 503}
        }
        return JSONResponse(body, status_code=503)

    def _chunks(self) -> list[str]:
        words = ANSWER.split(" ")
        return [w + " " for w in words[: self.knobs.chunks]]

    def _thinking(self, kind: str) -> list[str]:
        return list(self.knobs.reasoning) if kind == "chat" else []

    def _final_usage(self, kind: str) -> dict[str, Any]:
        thinking = self._thinking(kind)
        completion = len(thinking) + len(self._chunks())
        return _usage(7, completion, len(thinking) if thinking else None)

    async def _stream(self, body: dict[str, Any], kind: str) -> AsyncIterator[str]:
        model, created, rid = body["model"], int(time.time()), f"stub-{uuid.uuid4().hex[:8]}"
        thinking = [(self.knobs.reasoning_field, piece) for piece in self._thinking(kind)]
        deltas = thinking + [("content", piece) for piece in self._chunks()]
        continuous = bool((body.get("stream_options") or {}).get("continuous_usage_stats"))
        try:
            for i, (name, piece) in enumerate(deltas):
                if self.knobs.fail_after_chunks is not None and i >= self.knobs.fail_after_chunks:
                    raise RuntimeError("stub upstream failure")
                await anyio.sleep(self.knobs.chunk_delay)
                chunk = _chunk(kind, rid, created, model, piece, None, name)
                if continuous:
                    chunk["usage"] = _usage(7, i + 1)
                    self.reported.append(chunk["usage"])
                yield _sse(chunk)
            yield _sse(_chunk(kind, rid, created, model, "", "stop"))
            if (body.get("stream_options") or {}).get("include_usage"):
                yield _sse(
                    {
                        "id": rid,
                        "object": _object(kind, True),
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": self._final_usage(kind),
                    }
                )
            yield "data: [DONE]\n\n"
            await anyio.sleep(self.knobs.after_done_delay)
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled.append(model)
            self.cancelled_event.set()
            raise

    async def _generate(self, request: Request, kind: str) -> Any:
        body = await request.json()
        self.headers.append(dict(request.headers))
        self.requests.append((request.url.path, body))
        if request.client is not None:
            self.peers.append((request.client.host, request.client.port))
        if (refused := self._unavailable(body["model"])) is not None:
            return refused
        if body["model"] in self.knobs.hang and not body.get("stream"):
            return await self._hang(request, body["model"])
        if body.get("logprob_token_ids"):
            return self._classify(body)
        if body.get("stream"):
            return StreamingResponse(self._stream(body, kind), media_type="text/event-stream")
        choice = _choice(kind, ANSWER)
        if thinking := self._thinking(kind):
            choice["message"][self.knobs.reasoning_field] = "".join(thinking)
        return {
            "id": "stub-1",
            "object": _object(kind, False),
            "created": int(time.time()),
            "model": body["model"],
            "choices": [choice],
            "usage": self._final_usage(kind),
        }

    async def _embed(self, request: Request) -> Any:
        """A unit vector per input (``dimensions`` long, 64 at most); a token per 4 bytes."""
        body = await request.json()
        self.headers.append(dict(request.headers))
        self.requests.append((request.url.path, body))
        if (refused := self._unavailable(body["model"])) is not None:
            return refused
        value = body["input"]
        one = isinstance(value, str) or all(isinstance(t, int) for t in value)
        inputs = [value] if one else value
        size = min(body.get("dimensions") or EMBEDDING_SIZE, 64)
        tokens = sum(len(i) if isinstance(i, list) else max(1, len(i) // 4) for i in inputs)
        data = []
        for index, _ in enumerate(inputs):
            vector = [1.0 / size**0.5] * size
            encoded: Any = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{size}f", *vector)).decode()
            data.append({"index": index, "object": "embedding", "embedding": encoded})
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "model": body["model"], "data": data, "usage": usage}

    def _p_yes(self, text: str) -> float:
        flagged = any(word in text for word in self.knobs.flag_words)
        return self.knobs.flagged_score if flagged else self.knobs.clean_score

    def _classify_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """A chat's one token with the label logprobs, in vLLM's chat shape."""
        yes, no = body["logprob_token_ids"]
        parts = [p for m in body["messages"] for p in m["content"] if isinstance(p, dict)]
        text = " ".join(str(p["text"]) for p in parts if "text" in p)
        p_yes = self._p_yes(text)
        tops = [
            {"token": f"token_id:{yes}", "logprob": math.log(p_yes)},
            {"token": f"token_id:{no}", "logprob": math.log(1 - p_yes)},
        ]
        first = tops[0] if p_yes > 0.5 else tops[1]
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": "Yes" if p_yes > 0.5 else "No"},
            "logprobs": {"content": [{**first, "top_logprobs": tops}]},
            "finish_reason": "length",
        }
        return {
            "id": "stub-classify-image",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [choice],
            "usage": _usage(IMAGE_JUDGEMENT_TOKENS + len(text) // 4, 1),
        }

    def _classify(self, body: dict[str, Any]) -> dict[str, Any]:
        """One token per prompt with the label logprobs vLLM's ``logprob_token_ids`` gives."""
        if "messages" in body:
            return self._classify_chat(body)
        yes, no = body["logprob_token_ids"]
        choices = []
        for index, prompt in enumerate(body["prompt"]):
            p_yes = self._p_yes(prompt)
            top = {f"token_id:{yes}": math.log(p_yes), f"token_id:{no}": math.log(1 - p_yes)}
            token = f"token_id:{yes if p_yes > 0.5 else no}"
            logprobs = {"tokens": [token], "token_logprobs": [top[token]], "top_logprobs": [top]}
            choices.append(
                {"index": index, "text": "Yes", "finish_reason": "length", "logprobs": logprobs}
            )
        prompt_tokens = sum(max(1, len(p) // 4) for p in body["prompt"])
        return {
            "id": "stub-classify",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": choices,
            "usage": _usage(prompt_tokens, len(choices)),
        }

    async def _tokenize(self, request: Request) -> Any:
        body = await request.json()
        self.requests.append((request.url.path, body))
        return {"tokens": [LABEL_IDS.get(body["prompt"], 1)], "count": 1, "max_model_len": CONTEXT}

    async def _hang(self, request: Request, model: str) -> Any:
        """Generate until the caller hangs up, as vLLM does (it aborts on disconnect)."""
        while (await request.receive())["type"] != "http.disconnect":
            pass
        self.cancelled.append(model)
        self.cancelled_event.set()
        return PlainTextResponse("", status_code=499)

    async def _audio(self, request: Request) -> Any:
        form = await request.form()
        model = str(form.get("model"))
        self.headers.append(dict(request.headers))
        self.requests.append(
            (request.url.path, {k: v for k, v in form.items() if isinstance(v, str)})
        )
        upload = form.get("file")
        if upload is not None and not isinstance(upload, str):
            self.uploads.append(await upload.read())
        if (refused := self._unavailable(model)) is not None:
            return refused
        if model in self.knobs.hang:
            return await self._hang(request, model)
        if form.get("response_format") == "text":
            return PlainTextResponse(TRANSCRIPT)
        return {"text": TRANSCRIPT, "usage": {"type": "duration", "seconds": 2}}

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            return {"object": "list", "data": self.cards}

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Any:
            return await self._generate(request, "chat")

        @app.post("/v1/completions")
        async def completions(request: Request) -> Any:
            return await self._generate(request, "text")

        @app.post("/v1/embeddings")
        async def embeddings(request: Request) -> Any:
            return await self._embed(request)

        @app.post("/tokenize")
        async def tokenize(request: Request) -> Any:
            return await self._tokenize(request)

        @app.post("/v1/audio/transcriptions")
        async def transcriptions(request: Request) -> Any:
            return await self._audio(request)

        return app


def _object(kind: str, stream: bool) -> str:
    if kind == "chat":
        return "chat.completion.chunk" if stream else "chat.completion"
    return "text_completion"


def _choice(kind: str, text: str) -> dict[str, Any]:
    if kind == "chat":
        return {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }
    return {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}


def _chunk(
    kind: str,
    rid: str,
    created: int,
    model: str,
    text: str,
    finish: str | None,
    name: str = "content",
) -> dict[str, Any]:
    if kind == "chat":
        choice: dict[str, Any] = {
            "index": 0,
            "delta": {name: text} if text else {},
            "finish_reason": finish,
        }
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
    return {
        "id": rid,
        "object": _object(kind, True),
        "created": created,
        "model": model,
        "choices": [choice],
    }


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data)}\n\n"


def stub_upstream() -> Iterator[StubUpstream]:
    """For a pytest fixture: ``yield from stub_upstream()``."""
    with StubUpstream() as stub:
        yield stub
