"""One request answered by several engine requests sent together.

An image classifier (ShieldGemma 2) judges one (image, policy) pair per chat completion,
so a moderation of one image is three engine requests. ``FanOut.send`` sends them
together and hands back one answer to stand for them all: the first that failed, else
the first; the dispatcher's first-byte deadline, status check and fallback see that one.
``FanOut.read`` then reads every answer and merges them into one chat completion body
(the choices in order, renumbered; the usage summed), which is what the request is
settled and reshaped from. A request with one body is sent and read as it is.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gateway.errors import UpstreamError
from gateway.upstream import client as upstream

USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


@dataclass
class FanOut:
    """The engine requests of one client request; ``rest`` holds all but the one handed back."""

    rest: list[aiohttp.ClientResponse] = field(default_factory=list)

    async def send(
        self, client: upstream.Upstream, path: str, bodies: Sequence[dict[str, Any]]
    ) -> aiohttp.ClientResponse:
        tasks = [asyncio.ensure_future(client.send("POST", path, json=b)) for b in bodies]
        try:
            results = await asyncio.gather(*tasks, return_exceptions=True)
        except BaseException:  # cancelled: close what came back, stop the rest
            _close_all(tasks)
            raise
        responses = [r for r in results if isinstance(r, aiohttp.ClientResponse)]
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None:
            for response in responses:
                response.close()
            raise failure
        failed = next((r for r in responses if r.status != 200), None)
        primary = failed or responses[0]
        others = [r for r in responses if r is not primary]
        if failed is not None:
            for response in others:
                response.close()
            others = []
        self.rest = others
        return primary

    async def read(self, primary: aiohttp.ClientResponse) -> bytes:
        """Every answer's body, merged into one (``primary``'s alone if it stood alone)."""
        try:
            contents = [await upstream.read_body(primary)]
            for response in self.rest:
                contents.append(await upstream.read_body(response))
        finally:
            for response in self.rest:
                response.close()
        return contents[0] if len(contents) == 1 else merged(contents)


def _close_all(tasks: Sequence[asyncio.Future[aiohttp.ClientResponse]]) -> None:
    for task in tasks:
        if not task.done():
            task.cancel()
        elif not task.cancelled() and task.exception() is None:
            task.result().close()


def merged(contents: Sequence[bytes]) -> bytes:
    """Chat completion bodies as one: the first's fields, every choice, the usage summed."""
    answers = [upstream.parse_json(c) for c in contents]
    if not all(isinstance(a, dict) and isinstance(a.get("choices"), list) for a in answers):
        raise UpstreamError("The serving application sent an unreadable answer.")
    choices: list[Any] = []
    usage = dict.fromkeys(USAGE_FIELDS, 0)
    for answer in answers:
        for choice in answer["choices"]:
            choices.append({**choice, "index": len(choices)})
        reported = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
        for name in USAGE_FIELDS:
            value = reported.get(name)
            usage[name] += value if isinstance(value, int) else 0
    return json.dumps({**answers[0], "choices": choices, "usage": usage}).encode()
