"""Relaying an upstream Server-Sent Events stream as it arrives.

Events pass through as they arrive: each read of the upstream body is split into its
complete events, and ``relay_reads`` hands the client all of one read's events at once
(one write where a read carried several; Ray Serve sends a stream's tokens in batches),
while ``relay`` hands them over one by one to the wrappers that look at each event
(the Responses API's, speech's, the guard's). The upstream is always asked for usage
(``stream_options.include_usage``): the final usage-only chunk is kept in the
``StreamTally`` for the quota and dropped when the client did not ask for it.
The upstream is also asked for usage on every chunk (``continuous_usage_stats``),
so a stream the client leaves midway is charged the usage last reported; that
per-chunk usage is removed unless the client asked for it too.
A stream that breaks after its first byte ends with an OpenAI error event and
``data: [DONE]``, so clients never wait on a dead stream.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import anyio

from gateway.errors import GatewayError, UpstreamError, body_for

DONE = b"data: [DONE]\n\n"
#: Seconds a finished stream's last bytes are awaited once its client has gone.
DRAIN_TIMEOUT = 1.0
#: The longest line of an upstream event relayed (a longer one ends the stream with an error).
MAX_LINE_BYTES = 1024 * 1024


def event(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


def error_event(exc: GatewayError) -> bytes:
    return event(json.dumps(body_for(exc)))


@dataclass
class StreamTally:
    """What a stream carried: content chunks, the last usage seen, how it ended.

    ``gateway.accounting.streamed_tokens`` turns it into the tokens the stream is charged.
    """

    include_usage: bool
    continuous_usage: bool = False
    chunks: int = 0
    usage: dict[str, Any] | None = None
    done: bool = False
    failed: GatewayError | None = None
    errors: list[Any] = field(default_factory=list)

    def observe(self, data: str) -> str | None:
        """Record one event's data; the data to pass to the client (``None``: drop it)."""
        try:
            chunk = json.loads(data)
        except ValueError:
            return data
        if not isinstance(chunk, dict):
            return data
        if isinstance(chunk.get("error"), dict):
            self.errors.append(chunk["error"])
            return data
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        if chunk.get("choices"):
            self.chunks += 1
            if chunk.get("usage") is not None and not self.continuous_usage:
                return json.dumps({k: v for k, v in chunk.items() if k != "usage"})
            return data
        return data if self.include_usage or "usage" not in chunk else None


class _Lines:
    """Splits a body read by read into lines (``\n`` ends one; a ``\r`` before it is dropped)."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, block: bytes) -> list[str]:
        """The lines this read completed; an unfinished line waits for the next read."""
        complete, newline, self._rest = (self._rest + block).rpartition(b"\n")
        if len(self._rest) > MAX_LINE_BYTES:
            raise UpstreamError("The serving application sent an event line too long to relay.")
        if not newline:
            return []
        return [raw.decode(errors="replace").rstrip("\r") for raw in complete.split(b"\n")]


async def _event_batches(
    response: aiohttp.ClientResponse, tally: StreamTally
) -> AsyncGenerator[list[bytes], None]:
    """The events each upstream read completed, as the client gets them (possibly none)."""
    data: list[str] = []
    lines = _Lines()
    async for block in response.content.iter_any():
        passed: list[bytes] = []
        for line in lines.feed(block):
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
                continue
            if line or not data:
                continue  # comments, other fields, keep-alive blank lines
            payload, data = "\n".join(data), []
            if payload == "[DONE]":
                tally.done = True
                try:
                    yield [*passed, DONE]
                finally:
                    await _drain(response)
                return
            if (kept := tally.observe(payload)) is not None:
                passed.append(event(kept))
        yield passed
    raise UpstreamError("The serving application ended the stream early.")


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read a finished stream's body to its end (nothing but framing follows ``[DONE]``).

    A response closed unread loses its connection, and the next request would open a new
    one. Clients often hang up as soon as ``[DONE]`` arrives, so the read is shielded
    from that cancellation, for ``DRAIN_TIMEOUT`` seconds at most.
    """
    with anyio.CancelScope(shield=True, deadline=anyio.current_time() + DRAIN_TIMEOUT):
        try:
            while await response.content.readany():
                pass
        except (aiohttp.ClientError, TimeoutError):
            pass  # the answer was complete; only the connection is lost


async def _relayed(
    response: aiohttp.ClientResponse, tally: StreamTally
) -> AsyncGenerator[list[bytes], None]:
    """Each read's events, then an error event and ``[DONE]`` if the upstream broke."""
    try:
        async with aclosing(_event_batches(response, tally)) as batches:
            async for batch in batches:
                if batch:
                    yield batch
    except TimeoutError:
        tally.failed = UpstreamError("The serving application stopped sending.", code="timeout")
    except aiohttp.ClientError as exc:
        tally.failed = UpstreamError(f"The upstream stream broke: {type(exc).__name__}.")
    except UpstreamError as exc:
        tally.failed = exc
    if tally.failed is not None:
        yield [error_event(tally.failed), DONE]


async def relay(
    response: aiohttp.ClientResponse, tally: StreamTally
) -> AsyncGenerator[bytes, None]:
    """The client's events one by one: upstream events, then an error event if it broke."""
    async with aclosing(_relayed(response, tally)) as batches:
        async for batch in batches:
            for chunk in batch:
                yield chunk


async def relay_reads(
    response: aiohttp.ClientResponse, tally: StreamTally
) -> AsyncGenerator[bytes, None]:
    """``relay``'s events, all the events of one upstream read together."""
    async with aclosing(_relayed(response, tally)) as batches:
        async for batch in batches:
            yield b"".join(batch)
