"""Input lines, images and a deterministic engine for the batch tests."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

from PIL import Image

from batch.engine import EngineResult
from batch.requests import PromptRequest, RequestPlanner, profile_models
from gateway.settings import DEFAULT_ALIASES
from serving.catalog import load_catalog

TEXT = "gemma-3-270m"
VISION = "tiny-random-gemma-4"  # cpu-dev's media engine


def png_data_url(size: int = 16) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (10, 120, 200)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def chat_line(custom_id: str, text: str = "Hi", model: str = TEXT, **body: Any) -> str:
    payload = {"model": model, "messages": [{"role": "user", "content": text}], **body}
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": payload}
    )


def image_line(custom_id: str, url: str | None = None, model: str = "auto") -> str:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": url or png_data_url()}},
    ]
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": 4}
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    )


def completion_line(custom_id: str, prompt: Any = "Once", model: str = "auto", **body: Any) -> str:
    payload = {"model": model, "prompt": prompt, **body}
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/completions", "body": payload}
    )


def planner(default_model: str | None = None) -> RequestPlanner:
    catalog = load_catalog()
    return RequestPlanner(
        profile_models(catalog, "cpu-dev"), aliases=DEFAULT_ALIASES, default_model=default_model
    )


class EchoEngine:
    """Answers every request with its custom_id, in blocks of ``block`` results.

    ``fail`` custom_ids come back as engine errors; after ``stop_after`` blocks the
    engine raises, like a job that dies part way.
    """

    def __init__(
        self, block: int = 2, fail: Sequence[str] = (), stop_after: int | None = None
    ) -> None:
        self.block = block
        self.fail = set(fail)
        self.stop_after = stop_after
        self.calls: list[tuple[str, list[str]]] = []
        self.closed = False
        self.blocks = 0

    def _result(self, request: PromptRequest) -> EngineResult:
        if request.custom_id in self.fail:
            return EngineResult(request.custom_id, error="engine failed")
        return EngineResult(request.custom_id, f"echo {request.custom_id}", 5, 2, "stop")

    def run(self, variant: str, requests: Sequence[PromptRequest]) -> Iterator[list[EngineResult]]:
        self.calls.append((variant, [r.custom_id for r in requests]))
        for start in range(0, len(requests), self.block):
            if self.stop_after is not None and self.blocks >= self.stop_after:
                raise RuntimeError("engine died")
            self.blocks += 1
            yield [self._result(r) for r in requests[start : start + self.block]]

    def abort(self) -> None:
        raise AssertionError("nothing aborts a command-line run")

    def close(self) -> None:
        self.closed = True
