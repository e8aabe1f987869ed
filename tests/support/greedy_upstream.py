"""An upstream that generates all it is allowed to, as an engine may.

Each answer's usage holds one prompt token per prompt and, for every prompt and every
choice (``max(n, best_of)``), the whole completion cap the body sent: ``max_tokens`` or
``max_completion_tokens``; with none, completions generate vLLM's default of 16 and chat
generates up to the context (``CONTEXT`` less the prompt). Answers take ``delay``
seconds, so requests sent together are in flight together.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anyio
from fastapi import FastAPI, Request

from tests.support.servers import serve_in_thread
from tests.support.stub_upstream import CONTEXT, default_cards

COMPLETIONS_DEFAULT = 16


def _prompts(body: dict[str, Any]) -> int:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and not isinstance(prompt[0], int):
        return len(prompt)
    return 1


def generated(body: dict[str, Any], kind: str) -> dict[str, int]:
    """The usage of generating everything ``body`` allows."""
    prompts = _prompts(body) if kind == "text" else 1
    choices = max(int(body.get("n") or 1), int(body.get("best_of") or 1))
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    if cap is None:
        cap = COMPLETIONS_DEFAULT if kind == "text" else CONTEXT - prompts
    completion = prompts * choices * int(cap)
    return {
        "prompt_tokens": prompts,
        "completion_tokens": completion,
        "total_tokens": prompts + completion,
    }


def _app(bodies: list[dict[str, Any]], delay: float) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": default_cards()}

    async def answer(request: Request, kind: str) -> dict[str, Any]:
        body = await request.json()
        bodies.append(body)
        await anyio.sleep(delay)
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
        if kind == "chat":
            choice["message"] = {"role": "assistant", "content": "..."}
        else:
            choice["text"] = "..."
        return {
            "id": "greedy-1",
            "object": "chat.completion" if kind == "chat" else "text_completion",
            "model": body["model"],
            "choices": [choice],
            "usage": generated(body, kind),
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict[str, Any]:
        return await answer(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> dict[str, Any]:
        return await answer(request, "text")

    return app


@contextmanager
def greedy_upstream(delay: float = 0.3) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Serve the greedy upstream; yields its base URL and the bodies it received."""
    bodies: list[dict[str, Any]] = []
    with serve_in_thread(_app(bodies, delay)) as url:
        yield url, bodies
