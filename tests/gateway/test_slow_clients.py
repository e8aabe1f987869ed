"""Slow and unauthenticated clients against a real gateway process, with short deadlines.

``gemma-serving gateway`` runs in a subprocess in front of the stub upstream, as in
production (uvicorn with the gateway's HTTP protocol), its deadlines shortened by
``GATEWAY_*`` variables and its body budgets left at their defaults. Fifty clients each
play one way of holding a gateway (uploads announcing 30 MB then trickling, headers sent
a byte at a time, connections that say nothing, 30 MB bodies one byte short) while a
probe thread times ordinary requests. Each test checks the gateway's RSS, that every
connection was closed by the server in time, and that the probes stayed fast.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx
import psutil
import pytest
from anyio.abc import SocketStream

from tests.support.servers import free_port, stop, wait_ready
from tests.support.shared_redis import SHARED_REDIS_URL, unique_prefix
from tests.support.stub_upstream import TEXT_MODEL, StubUpstream

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "admin-secret-for-slow-client-tests"
CLIENTS = 50
MB = 1_000_000
HEADER_TIMEOUT = 2.0
KEEP_ALIVE = 2.0
UNREAD_BODY = 1.0
BODY_TIMEOUT = 4.0
BODY_STALL = 1.5
SLACK = 2.0  # seconds a deadline may be late on a busy two-core machine
RSS_GROWTH = 100 * 1024 * 1024
FAST = 0.050  # the median probe answer, in seconds
DEADLINES = {
    "GATEWAY_SERVER__HEADER_TIMEOUT": str(HEADER_TIMEOUT),
    "GATEWAY_SERVER__KEEP_ALIVE_TIMEOUT": str(KEEP_ALIVE),
    "GATEWAY_SERVER__UNREAD_BODY_TIMEOUT": str(UNREAD_BODY),
    "GATEWAY_LIMITS__BODY_TIMEOUT": str(BODY_TIMEOUT),
    "GATEWAY_LIMITS__BODY_STALL_TIMEOUT": str(BODY_STALL),
}
CHAT = {"model": TEXT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@dataclass
class Gateway:
    url: str
    port: int
    process: psutil.Process
    headers: dict[str, str] = field(default_factory=dict)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)


@contextmanager
def gateway_process(stub: StubUpstream, env: dict[str, str]) -> Iterator[Gateway]:
    port = free_port()
    command = [sys.executable, "-m", "gemma_serving.cli", "gateway", "--port", str(port)]
    command += ["--upstream", stub.base_url, "--log-level", "warning"]
    full_env = {**os.environ, **DEADLINES, **env}
    process = subprocess.Popen(command, env=full_env, cwd=ROOT, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
        yield Gateway(url, port, psutil.Process(process.pid))
    finally:
        stop(process)


@pytest.fixture
def keyed_gateway(stub: StubUpstream) -> Iterator[Gateway]:
    with unique_prefix("gw-slow") as prefix:
        env = {
            "GATEWAY_ADMIN_KEY": ADMIN,
            "GATEWAY_QUOTA__REDIS_URL": SHARED_REDIS_URL,
            "GATEWAY_QUOTA__KEY_PREFIX": prefix,
            "GATEWAY_QUOTA__TIMEOUT": "5",
        }
        with gateway_process(stub, env) as gateway:
            created = httpx.post(
                f"{gateway.url}/admin/keys",
                json={"tenant": "t"},
                headers={"authorization": f"Bearer {ADMIN}"},
                timeout=30,
            )
            assert created.status_code == 201, created.text
            gateway.headers = {"authorization": f"Bearer {created.json()['key']}"}
            yield gateway


@pytest.fixture
def open_gateway(stub: StubUpstream) -> Iterator[Gateway]:
    with gateway_process(stub, {"GATEWAY_QUOTA__ENABLED": "false"}) as gateway:
        yield gateway


# The clients: each returns the status the server answered (None: closed without one).

Client = Callable[[SocketStream], Awaitable[None]]


def upload_head(length: int) -> bytes:
    return (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\n"
        f"content-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    ).encode()


def trickling_upload(length: int, *, piece: bytes, gap: float) -> Client:
    """Headers announcing ``length`` bytes, then ``piece`` every ``gap`` seconds."""

    async def send(stream: SocketStream) -> None:
        await stream.send(upload_head(length))
        while True:
            await anyio.sleep(gap)
            await stream.send(piece)

    return send


def one_byte_short(length: int) -> Client:
    """Headers announcing ``length`` bytes, all but the last sent at once, then silence."""
    block = bytes(256 * 1024)

    async def send(stream: SocketStream) -> None:
        await stream.send(upload_head(length))
        left = length - 1
        while left:
            await stream.send(block[: min(left, len(block))])
            left -= min(left, len(block))
        await anyio.sleep_forever()

    return send


async def trickling_headers(stream: SocketStream) -> None:
    await stream.send(b"POST /v1/chat/completions HTTP/1.1\r\nhost: gateway\r\nx-slow: ")
    while True:
        await anyio.sleep(0.1)
        await stream.send(b"a")


async def silent(stream: SocketStream) -> None:
    await anyio.sleep_forever()


@dataclass(frozen=True)
class Outcome:
    kind: str
    status: int | None
    closed_after: float | None  # seconds; None: still open when the test gave up


async def play(port: int, kind: str, client: Client, give_up: float) -> Outcome:
    stream = await anyio.connect_tcp("127.0.0.1", port)
    started = anyio.current_time()
    received = b""
    async with stream, anyio.create_task_group() as group:

        async def sending() -> None:
            with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                await client(stream)

        group.start_soon(sending)
        with anyio.move_on_after(give_up) as waited:
            with suppress(anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                while True:
                    received += await stream.receive()
        group.cancel_scope.cancel()
    closed_after = None if waited.cancelled_caught else anyio.current_time() - started
    status = int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/1.1 ") else None
    return Outcome(kind, status, closed_after)


async def flood(port: int, clients: dict[str, tuple[Client, float]]) -> list[Outcome]:
    """``CLIENTS`` connections of each kind at once; ``clients``: kind -> (client, give up)."""
    outcomes: list[Outcome] = []

    async def one(kind: str, client: Client, give_up: float) -> None:
        outcomes.append(await play(port, kind, client, give_up))

    async with anyio.create_task_group() as group:
        for kind, (client, give_up) in clients.items():
            for _ in range(CLIENTS):
                group.start_soon(one, kind, client, give_up)
    return outcomes


@dataclass
class Watch:
    """Samples the gateway's RSS and times probe requests in a thread, until stopped."""

    gateway: Gateway
    probe: Callable[[httpx.Client], httpx.Response]
    peak_rss: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.gateway.url, timeout=30) as client:
            while not self.stop.is_set():
                self.peak_rss = max(self.peak_rss, self.gateway.rss())
                started = time.perf_counter()
                answer = self.probe(client)
                self.latencies.append(time.perf_counter() - started)
                self.statuses.append(answer.status_code)
                self.stop.wait(0.1)


def watched_flood(
    gateway: Gateway,
    probe: Callable[[httpx.Client], httpx.Response],
    clients: dict[str, tuple[Client, float]],
) -> tuple[Watch, list[Outcome]]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        for _ in range(5):  # warm: the first answers build the routes and the pools
            assert probe(client).status_code == 200
    watch = Watch(gateway, probe)
    baseline = gateway.rss()
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    try:
        outcomes = anyio.run(flood, gateway.port, clients)
    finally:
        watch.stop.set()
        thread.join(timeout=30)
    watch.peak_rss -= baseline
    return watch, outcomes


def closed_within(outcomes: list[Outcome], kind: str, seconds: float) -> list[int | None]:
    """The statuses of ``kind``'s connections, each closed by the server within ``seconds``."""
    mine = [o for o in outcomes if o.kind == kind]
    assert len(mine) == CLIENTS
    late = [o for o in mine if o.closed_after is None or o.closed_after > seconds]
    assert late == [], f"{kind}: {len(late)} connections outlived {seconds} s"
    return [o.status for o in mine]


def assert_fast(watch: Watch) -> None:
    assert set(watch.statuses) == {200}
    assert len(watch.latencies) >= 10
    median = statistics.median(watch.latencies)
    assert median < FAST, f"median probe {median * 1000:.1f} ms over {len(watch.latencies)}"


def test_unauthenticated_slow_uploads_leave_keyed_requests_fast(keyed_gateway: Gateway) -> None:
    def keyed_chat(client: httpx.Client) -> httpx.Response:
        return client.post("/v1/chat/completions", json=CHAT, headers=keyed_gateway.headers)

    give_up = max(HEADER_TIMEOUT, KEEP_ALIVE, UNREAD_BODY) + 2 * SLACK
    clients = {
        "keyless upload": (trickling_upload(30 * MB, piece=bytes(1024), gap=0.1), give_up),
        "trickled headers": (trickling_headers, give_up),
        "silent": (silent, give_up),
    }
    watch, outcomes = watched_flood(keyed_gateway, keyed_chat, clients)

    assert watch.peak_rss < RSS_GROWTH, f"RSS grew {watch.peak_rss / 2**20:.0f} MiB"
    uploads = closed_within(outcomes, "keyless upload", UNREAD_BODY + SLACK)
    assert set(uploads) <= {401, None}  # None: reset before the answer was read
    assert uploads.count(401) >= CLIENTS // 2
    assert set(closed_within(outcomes, "trickled headers", HEADER_TIMEOUT + SLACK)) == {408}
    assert set(closed_within(outcomes, "silent", KEEP_ALIVE + SLACK)) == {None}
    assert_fast(watch)


def test_anonymous_uploads_are_held_to_the_budget_and_cut_by_the_deadlines(
    open_gateway: Gateway,
) -> None:
    """Keys off: every client is unauthenticated, so one address holds 64 MiB at most."""

    def anonymous_chat(client: httpx.Client) -> httpx.Response:
        return client.post("/v1/chat/completions", json=CHAT)

    clients = {
        "30 MB one byte short": (one_byte_short(30 * MB), BODY_TIMEOUT + 2 * SLACK),
        "trickled body": (
            trickling_upload(64 * 1024, piece=b" ", gap=0.2),
            BODY_TIMEOUT + 2 * SLACK,
        ),
    }
    watch, outcomes = watched_flood(open_gateway, anonymous_chat, clients)

    assert watch.peak_rss < RSS_GROWTH, f"RSS grew {watch.peak_rss / 2**20:.0f} MiB"
    short = closed_within(outcomes, "30 MB one byte short", BODY_TIMEOUT + SLACK)
    assert set(short) <= {408, 429, None}
    assert short.count(408) <= 2  # 64 MiB per address: two 30 MB bodies, the rest refused
    assert short.count(429) >= CLIENTS // 2
    assert set(closed_within(outcomes, "trickled body", BODY_TIMEOUT + SLACK)) == {408}
    assert_fast(watch)
