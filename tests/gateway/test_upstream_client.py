"""The upstream client against real sockets: how each failure is sorted, and the pool.

A small asyncio server per test plays the serving application's misbehaviours (no
answer, a 503, a body cut short, a stream that stalls); the gateway's client must turn
each into the error the router and the relay expect.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

import anyio
import pytest
from anyio.abc import SocketStream

from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.upstream import sse
from gateway.upstream.client import Unavailable, Upstream, create_client, finish, read_body
from gateway.upstream.sse import StreamTally, relay, relay_reads
from tests.support.servers import free_port

pytestmark = pytest.mark.anyio

Handler = Callable[[SocketStream, bytes], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """Serve ``handler(stream, request_head)`` per request; yields base URL and peer ports."""
    peers: list[int] = []

    async def serve(stream: SocketStream) -> None:
        peers.append(stream.extra(anyio.abc.SocketAttribute.remote_port))
        async with stream:
            with suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                while True:  # until the client hangs up
                    head = b""
                    while b"\r\n\r\n" not in head:
                        head += await stream.receive()
                    head, _, rest = head.partition(b"\r\n\r\n")
                    while len(rest) < _content_length(head):
                        rest += await stream.receive()
                    await handler(stream, head)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=free_port())
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as group:
        group.start_soon(listener.serve, serve)
        yield f"http://127.0.0.1:{port}", peers
        group.cancel_scope.cancel()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _response(status: str, body: bytes, *, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {size}\r\n\r\n"
    ).encode() + body


@asynccontextmanager
async def _client(base_url: str, *, read_timeout: float = 5.0) -> AsyncIterator[Upstream]:
    client = create_client(base_url, connect_timeout=2.0, read_timeout=read_timeout, pool_size=4)
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_refused_connection_is_unavailable() -> None:
    async with _client(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(Unavailable):
            await client.send("POST", "/v1/chat/completions", json={})


async def test_a_503_is_unavailable() -> None:
    async def busy(stream: SocketStream, head: bytes) -> None:
        await stream.send(_response("503 Service Unavailable", b'{"error":{"message":"busy"}}'))

    async with raw_server(busy) as (url, _), _client(url) as client:
        with pytest.raises(Unavailable, match="503"):
            await client.send("POST", "/v1/chat/completions", json={})


async def test_no_answer_in_time_is_a_timeout() -> None:
    async def silent(stream: SocketStream, head: bytes) -> None:
        await anyio.sleep(30)

    async with raw_server(silent) as (url, _), _client(url, read_timeout=0.3) as client:
        with pytest.raises(UpstreamTimeout):
            await client.send("POST", "/v1/chat/completions", json={})


async def test_a_body_cut_short_is_an_upstream_error() -> None:
    async def cut(stream: SocketStream, head: bytes) -> None:
        await stream.send(_response("200 OK", b'{"choi', length=100))
        await stream.aclose()

    async with raw_server(cut) as (url, _), _client(url) as client:
        response = await client.send("POST", "/v1/chat/completions", json={})
        with pytest.raises(UpstreamError):
            await read_body(response)


async def test_paths_extend_the_base_url_and_read_bodies_keep_the_connection() -> None:
    heads: list[bytes] = []

    async def answer(stream: SocketStream, head: bytes) -> None:
        heads.append(head)
        await stream.send(_response("200 OK", json.dumps({"ok": True}).encode()))

    async with raw_server(answer) as (url, peers), _client(url + "/prefix/") as client:
        for _ in range(3):
            response = await client.send("POST", "/v1/completions", json={"n": 1})
            assert json.loads(await read_body(response)) == {"ok": True}
    assert [h.split(b"\r\n")[0] for h in heads] == [b"POST /prefix/v1/completions HTTP/1.1"] * 3
    assert len(peers) == 1  # one pooled connection for all three


async def test_an_unread_response_closes_its_connection() -> None:
    async def answer(stream: SocketStream, head: bytes) -> None:
        await stream.send(_response("200 OK", b"{", length=2))
        with anyio.move_on_after(5):
            await stream.receive()  # the client hangs up: EndOfStream

    async with raw_server(answer) as (url, peers), _client(url) as client:
        for _ in range(2):
            finish(await client.send("POST", "/v1/completions", json={}))
    assert len(peers) == 2


async def test_a_stream_that_stalls_ends_with_a_timeout_event() -> None:
    async def stall(stream: SocketStream, head: bytes) -> None:
        chunk = b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
        await stream.send(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n" + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        )
        await anyio.sleep(30)

    async with raw_server(stall) as (url, _), _client(url, read_timeout=0.3) as client:
        response = await client.send("POST", "/v1/chat/completions", json={"stream": True})
        tally = StreamTally(include_usage=False)
        events = [e async for e in relay(response, tally)]
        finish(response)
    assert tally.chunks == 1
    assert tally.failed is not None
    assert tally.failed.code == "timeout"
    assert b'"code": "timeout"' in events[-2]
    assert events[-1] == b"data: [DONE]\n\n"


def _chunked_stream(pieces: list[bytes], pause: float) -> Handler:
    """A handler sending an SSE stream in ``pieces``, ``pause`` seconds apart."""

    async def send(stream: SocketStream, head: bytes) -> None:
        await stream.send(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for piece in pieces:
            await stream.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await anyio.sleep(pause)
        await stream.send(b"0\r\n\r\n")

    return send


def _content(text: str) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": text}}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


async def _relayed(pieces: list[bytes], *, reads: bool, pause: float = 0.05) -> list[bytes]:
    async with raw_server(_chunked_stream(pieces, pause)) as (url, _), _client(url) as client:
        response = await client.send("POST", "/v1/chat/completions", json={"stream": True})
        tally = StreamTally(include_usage=False)
        chunks = [c async for c in (relay_reads if reads else relay)(response, tally)]
        finish(response)
    assert tally.failed is None
    return chunks


async def test_events_cut_across_reads_pass_whole_and_one_by_one() -> None:
    events = [_content("héllo"), _content("wörld"), b"data: [DONE]\n\n"]
    wire = b"".join(events).replace(b"\n", b"\r\n")
    cuts = [0, 7, 20, 41, 60, len(wire) - 3, len(wire)]  # mid-field, mid-line, mid-end
    pieces = [wire[a:b] for a, b in itertools.pairwise(cuts)]
    assert await _relayed(pieces, reads=False) == events


async def test_each_read_s_events_reach_the_client_in_one_write() -> None:
    together = _content("a") + _content("b") + _content("c")
    pieces = [together, _content("d"), b"data: [DONE]\n\n"]
    chunks = await _relayed(pieces, reads=True, pause=0.1)
    assert chunks == [together, _content("d"), b"data: [DONE]\n\n"]
    assert await _relayed(pieces, reads=False, pause=0.1) == [_content(c) for c in "abcd"] + [
        b"data: [DONE]\n\n"
    ]


async def test_a_line_past_the_bound_ends_the_stream_with_an_error() -> None:
    long = b"x" * (sse.MAX_LINE_BYTES // 4)
    pieces = [_content("a"), b"data: ", *[long] * 5, _content("b")]
    async with raw_server(_chunked_stream(pieces, 0.01)) as (url, _), _client(url) as client:
        response = await client.send("POST", "/v1/chat/completions", json={"stream": True})
        tally = StreamTally(include_usage=False)
        chunks = [c async for c in relay(response, tally)]
        finish(response)
    assert chunks[0] == _content("a")
    assert tally.failed is not None
    assert "too long" in tally.failed.message
    assert chunks[-1] == b"data: [DONE]\n\n"
