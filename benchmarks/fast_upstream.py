"""A fast OpenAI-compatible upstream for benchmarks: fixed answers from a bare asyncio server.

It answers ``GET /v1/models`` with one text model card and ``POST /v1/chat/completions``
(and ``/v1/completions``) with a fixed answer: streamed as SSE (five content chunks, a
finish chunk, a usage chunk and ``[DONE]``) when the body asks for ``"stream": true``,
else one JSON body. Keep-alive HTTP/1.1 only, no framework, so it costs next to nothing
beside the process it is compared with.

    .venv/bin/python benchmarks/fast_upstream.py --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from typing import Any

MODEL = "gemma-3-270m"
WORDS = ["Hello ", "from ", "the ", "fast ", "upstream."]
_STREAM = re.compile(rb'"stream"\s*:\s*true')
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def _card() -> dict[str, Any]:
    return {
        "id": MODEL,
        "object": "model",
        "owned_by": "gemma-serving",
        "metadata": {
            "capabilities": ["text", "tools"],
            "kind": "model",
            "context_length": 32768,
            "max_model_len": 4096,
            "max_request_context_length": 4096,
        },
    }


def _chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": "fast-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _usage() -> dict[str, int]:
    return {"prompt_tokens": 7, "completion_tokens": len(WORDS), "total_tokens": 7 + len(WORDS)}


def _sse_body() -> bytes:
    events = [_chunk({"role": "assistant", "content": w}, None) for w in WORDS]
    events.append(_chunk({}, "stop"))
    usage = {**_chunk({}, None), "choices": [], "usage": _usage()}
    lines = [f"data: {json.dumps(e)}\n\n" for e in [*events, usage]]
    return ("".join(lines) + "data: [DONE]\n\n").encode()


def _json_body() -> bytes:
    message = {"role": "assistant", "content": "".join(WORDS)}
    body = {
        "id": "fast-1",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": _usage(),
    }
    return json.dumps(body).encode()


def _response(body: bytes, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\nconnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


MODELS = _response(json.dumps({"object": "list", "data": [_card()]}).encode(), "application/json")
STREAM = _response(_sse_body(), "text/event-stream")
COMPLETION = _response(_json_body(), "application/json")
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


def answer(request_line: bytes, body: bytes) -> bytes:
    """The canned response to one request."""
    method, _, rest = request_line.partition(b" ")
    path = rest.partition(b" ")[0]
    if method == b"GET" and path == b"/v1/models":
        return MODELS
    if method == b"POST" and path in (b"/v1/chat/completions", b"/v1/completions"):
        return STREAM if _STREAM.search(body) else COMPLETION
    return NOT_FOUND


class UpstreamProtocol(asyncio.Protocol):
    """One keep-alive connection: parse requests from the buffer, write canned answers."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end]
            match = _LENGTH.search(head)
            length = int(match.group(1)) if match else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(answer(head.partition(b"\r\n")[0], body))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(UpstreamProtocol, host, port, backlog=2048)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
