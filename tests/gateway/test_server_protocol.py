"""The gateway's HTTP protocol under uvicorn, against raw sockets: idle, slow and large clients.

A real uvicorn serves a two-route ASGI app with ``GatewayHttpProtocol`` bound to short
deadlines; each test plays one client misbehaving and reads what the server did.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from starlette.types import Receive, Scope, Send

from gateway.server.protocol import GatewayHttpProtocol
from gateway.server.settings import ServerSettings
from tests.support.servers import serve_in_thread

SETTINGS = ServerSettings(
    header_timeout=0.6,
    keep_alive_timeout=0.6,
    unread_body_timeout=0.6,
    max_header_bytes=2048,
    max_connections=4,
)
SLACK = 1.5  # seconds a deadline may be late on a busy machine

Connect = Callable[[], socket.socket]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """``/early`` answers 401 unread; any other path reads the body and answers its length."""
    if scope["type"] != "http":
        return
    size = 0
    if scope["path"] != "/early":
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
    status, body = (401, b"no") if scope["path"] == "/early" else (200, str(size).encode())
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    with serve_in_thread(app, http=GatewayHttpProtocol.with_settings(SETTINGS)) as url:
        host, port = url.removeprefix("http://").split(":")
        yield host, int(port)


@pytest.fixture
def connect(address: tuple[str, int]) -> Iterator[Connect]:
    opened: list[socket.socket] = []

    def open_one() -> socket.socket:
        sock = socket.create_connection(address, timeout=10)
        opened.append(sock)
        return sock

    yield open_one
    for sock in opened:
        sock.close()


def request(path: str = "/", *, body: bytes = b"", length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    head = f"POST {path} HTTP/1.1\r\nhost: test\r\ncontent-length: {size}\r\n\r\n"
    return head.encode() + body


def read_until_closed(sock: socket.socket, *, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started, received = time.monotonic(), b""
    sock.settimeout(within)
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            return received, within  # still open
        if not chunk:
            break
        received += chunk
    return received, time.monotonic() - started


def trickle(sock: socket.socket, data: bytes, *, gap: float, until: float) -> None:
    """Send ``data`` a byte at a time until the server closes or ``until`` seconds pass."""
    deadline = time.monotonic() + until
    for byte in data:
        if time.monotonic() > deadline:
            return
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return
        time.sleep(gap)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def error_of(response: bytes) -> dict[str, str]:
    error: dict[str, str] = json.loads(response.partition(b"\r\n\r\n")[2])["error"]
    return error


def test_a_connection_that_sends_nothing_is_closed_when_idle(connect: Connect) -> None:
    received, took = read_until_closed(connect(), within=SETTINGS.keep_alive_timeout + SLACK)
    assert received == b""
    assert took < SETTINGS.keep_alive_timeout + SLACK


def test_headers_sent_a_byte_at_a_time_are_cut_at_the_header_deadline(connect: Connect) -> None:
    sock = connect()
    trickle(sock, request(), gap=0.1, until=SETTINGS.header_timeout + SLACK)
    received, _ = read_until_closed(sock, within=SLACK)
    assert status_of(received) == 408
    assert error_of(received)["code"] == "request_timeout"
    assert b"connection: close" in received


def test_headers_over_the_limit_are_a_431(connect: Connect) -> None:
    sock = connect()
    sock.sendall(b"GET / HTTP/1.1\r\nhost: test\r\nx-big: " + b"a" * 4096 + b"\r\n\r\n")
    received, _ = read_until_closed(sock, within=SLACK)
    assert status_of(received) == 431
    assert error_of(received)["code"] == "headers_too_large"


def test_a_kept_alive_connection_serves_requests_then_closes_when_idle(connect: Connect) -> None:
    sock = connect()
    for body in (b"abc", b"defgh"):
        sock.sendall(request(body=body))
        answer = sock.recv(65536)
        assert status_of(answer) == 200
        assert answer.endswith(str(len(body)).encode())
        time.sleep(SETTINGS.keep_alive_timeout / 3)
    received, took = read_until_closed(sock, within=SETTINGS.keep_alive_timeout + SLACK)
    assert received == b""
    assert took < SETTINGS.keep_alive_timeout + SLACK


def test_a_body_answered_unread_is_dropped_until_its_deadline(connect: Connect) -> None:
    sock = connect()
    sock.sendall(request("/early", length=1_000_000) + b"x" * 1000)
    answer = sock.recv(65536)
    assert status_of(answer) == 401
    started = time.monotonic()
    trickle(sock, b"x" * 1000, gap=0.05, until=10)  # sending fails once the server closed
    assert time.monotonic() - started < SETTINGS.unread_body_timeout + SLACK
    assert read_until_closed(sock, within=SLACK)[0] == b""


def test_after_a_dropped_body_ends_the_connection_is_reused(connect: Connect) -> None:
    sock = connect()
    sock.sendall(request("/early", length=10) + b"12345")
    assert status_of(sock.recv(65536)) == 401
    sock.sendall(b"67890" + request(body=b"next"))
    answer = sock.recv(65536)
    assert status_of(answer) == 200
    assert answer.endswith(b"4")


def test_past_the_connection_limit_new_requests_are_refused(connect: Connect) -> None:
    idle = [connect() for _ in range(SETTINGS.max_connections or 0)]
    late = connect()
    late.sendall(request(body=b"x"))
    assert status_of(late.recv(65536)) == 503
    for sock in idle:
        sock.close()
