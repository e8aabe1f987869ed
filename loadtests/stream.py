"""Reading an OpenAI answer and timing it: TTFT, TPOT, tokens/s and end-to-end latency.

The functions take lines and a clock, so they work on any HTTP client's line iterator.
Definitions, for one request started at ``t0``:

- TTFT: first chunk carrying output (content, reasoning or a tool call) minus ``t0``;
- TPOT: (last output chunk - first output chunk) / (output tokens - 1);
- tokens/s: output tokens / end-to-end seconds;
- output tokens: ``usage.completion_tokens`` of the usage chunk, else output chunks counted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


class StreamBroken(Exception):
    """The answer ended without ``[DONE]``, carried an error event or was not JSON."""


@dataclass(frozen=True)
class Timing:
    """Seconds, except ``output_tokens``."""

    e2e: float
    output_tokens: int
    ttft: float | None = None
    tpot: float | None = None

    @property
    def tokens_per_second(self) -> float:
        return self.output_tokens / self.e2e if self.e2e > 0 else 0.0


def _has_output(chunk: dict[str, Any]) -> bool:
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls"):
            return True
    return False


def _events(lines: Iterable[str | bytes]) -> Iterable[dict[str, Any] | None]:
    """Each ``data:`` payload as JSON; ``None`` for ``[DONE]``."""
    for raw in lines:
        line = raw.decode() if isinstance(raw, bytes) else raw
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            yield None
            return
        try:
            yield json.loads(data)
        except ValueError as exc:
            raise StreamBroken(f"not JSON: {data[:80]!r}") from exc


def read_stream(lines: Iterable[str | bytes], started: float, clock: Callable[[], float]) -> Timing:
    """Consume an SSE answer; raises ``StreamBroken`` on an error event or a missing end."""
    first = last = None
    chunks = 0
    usage_tokens = None
    for event in _events(lines):
        if event is None:
            return _timing(started, clock(), first, last, usage_tokens or chunks)
        if "error" in event:
            raise StreamBroken(f"error event: {json.dumps(event['error'])[:200]}")
        if _has_output(event):
            last = clock()
            first = first if first is not None else last
            chunks += 1
        if event.get("usage"):
            usage_tokens = int(event["usage"].get("completion_tokens") or 0)
    raise StreamBroken("the stream ended without [DONE]")


def _timing(
    started: float, ended: float, first: float | None, last: float | None, tokens: int
) -> Timing:
    ttft = None if first is None else first - started
    tpot = None
    if first is not None and last is not None and tokens > 1:
        tpot = (last - first) / (tokens - 1)
    return Timing(e2e=ended - started, output_tokens=tokens, ttft=ttft, tpot=tpot)


def read_completion(body: dict[str, Any], started: float, ended: float) -> Timing:
    """Timing of a non-streamed answer (no TTFT/TPOT: the whole answer arrives at once)."""
    if "error" in body:
        raise StreamBroken(f"error body: {json.dumps(body['error'])[:200]}")
    usage = body.get("usage") or {}
    return Timing(e2e=ended - started, output_tokens=int(usage.get("completion_tokens") or 0))
