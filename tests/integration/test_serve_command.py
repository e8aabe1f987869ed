"""``gemma-serving serve`` (what ``make serve`` runs) on a terminal: progress, URLs, key, no logs.

The command runs as a user runs it, on the cpu-text profile (the 270M alone): its terminal
shows a few progress lines, the Serve and gateway URLs and the development key, while
Ray's and vLLM's output goes to the log file it names. Its engine replica serves HTTP itself
(direct streaming). The key it prints is accepted by
the gateway it started, the Prometheus ``--observe`` started (as ``make observe`` does)
scrapes the gateway and Ray, and SIGINT (Ctrl-C) stops everything within seconds. Before
that, on the same stack, the engine core is killed and comes back.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from openai import OpenAI

from serving.models.store import gemma_home
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.redis_server import RedisServer
from tests.support.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.own_engines, pytest.mark.timeout(1500)]

READY_LINE = "Press Ctrl-C to stop."
ENGINE_LOG_MARKERS = ("INFO", "WARNING", "ServeReplica", "vllm", "(raylet)", "Traceback")


def _home(tmp_path: Path) -> Path:
    """A models home whose models are the prepared ones, and whose dev key and logs are new."""
    home = tmp_path / "home"
    home.mkdir()
    for name in ("models", "fixtures"):
        (home / name).symlink_to(gemma_home() / name)
    return home


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def serve_process(
    tmp_path_factory: pytest.TempPathFactory, otlp: OtlpReceiver
) -> Iterator[tuple[subprocess.Popen[str], list[str], int]]:
    """One ``serve`` for the module, exporting its spans (the gateway's, Ray Serve's and
    vLLM's) to ``otlp``: the engine-death test runs on it, then the Ctrl-C one."""
    redis = RedisServer()
    redis.start()
    gateway_port = free_port()
    env = {
        **os.environ,
        "GEMMA_SERVING_HOME": str(_home(tmp_path_factory.mktemp("serve"))),
        "GATEWAY_PORT": str(gateway_port),
        "GATEWAY_QUOTA__REDIS_URL": redis.url,
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
    }
    command = [sys.executable, "-m", "gemma_serving.cli", "serve", "--profile", "cpu-text"]
    observe = ["--observe", "--observe-port", str(free_port())]  # as `make observe` runs it
    process = subprocess.Popen(
        [*command, "--port", str(free_port()), *observe],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.strip() == READY_LINE:
                break
        yield process, lines, gateway_port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        redis.stop()


LONG = {
    "model": "auto",
    "messages": [{"role": "user", "content": "Tell a long story."}],
    "max_tokens": 3000,
    "ignore_eos": True,
}


def test_a_killed_engine_fails_fast_drops_readiness_and_comes_back(
    serve_process: tuple[subprocess.Popen[str], list[str], int],
) -> None:
    """SIGKILL of the engine core during a stream and a non-streamed request: both clients
    are answered within 5 s, every request while the replica restarts is answered at once
    (503 with Retry-After), ``/readyz`` says text is down, and the same gateway serves
    again once Serve has replaced the replica."""
    process, lines, gateway_port = serve_process
    key = re.search(r"^API key: +(gsk-\S+)", "\n".join(lines), re.M)
    assert key, lines
    headers = {"authorization": f"Bearer {key.group(1)}"}
    with httpx.Client(
        base_url=f"http://127.0.0.1:{gateway_port}", headers=headers, timeout=120
    ) as http:
        assert http.get("/readyz").status_code == 200
        killed, answered = _kill_during_requests(http, process.pid)
        for kind, (at, last) in answered.items():
            assert at - killed < 5, (kind, at - killed, last)
        assert answered["json"][1].startswith(("500", "502", "503")), answered
        assert '"error"' in answered["stream"][1] or "[DONE]" in answered["stream"][1]

        # Within 5 s /readyz says text is down, and is not ready then. (The first 503 may
        # come sooner, from another check: a quota store PING that a loaded machine makes
        # miss its deadline fails readiness too.)
        while (ready := http.get("/readyz")).json()["checks"]["capabilities"]["text"]:
            assert time.monotonic() - killed < 5, ("text still up 5 s after", ready.json())
            time.sleep(0.1)
        assert ready.status_code == 503, ready.json()

        served = _until_served(http, killed)
        assert served.json()["model"] == "gemma-3-270m"
        deadline = time.monotonic() + 10
        while http.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "readiness did not come back"
            time.sleep(0.2)
    assert process.poll() is None  # the same gateway throughout


def _kill_during_requests(
    http: httpx.Client, serve_pid: int
) -> tuple[float, dict[str, tuple[float, str]]]:
    """Kill the engine core while a stream and a non-streamed request are generating;
    when it was killed, and when and how each client was answered."""
    answered: dict[str, tuple[float, str]] = {}
    started = threading.Event()

    def non_streamed() -> None:
        answer = http.post("/v1/chat/completions", json=LONG)
        answered["json"] = (time.monotonic(), f"{answer.status_code} {answer.text[:200]}")

    def streamed() -> None:
        last = ""
        with http.stream("POST", "/v1/chat/completions", json={**LONG, "stream": True}) as s:
            for line in s.iter_lines():
                last = line or last
                started.set()
        answered["stream"] = (time.monotonic(), last)

    clients = [threading.Thread(target=non_streamed), threading.Thread(target=streamed)]
    for client in clients:
        client.start()
    assert started.wait(60), "the stream never began"
    time.sleep(1.0)  # the non-streamed request is generating by now
    _engine_core(serve_pid).send_signal(signal.SIGKILL)
    killed = time.monotonic()
    for client in clients:
        client.join(timeout=30)
    assert set(answered) == {"json", "stream"}, answered
    return killed, answered


def _until_served(http: httpx.Client, killed: float) -> httpx.Response:
    """Ask every second until the engine answers; each refusal must come at once."""
    short = {**LONG, "max_tokens": 4, "ignore_eos": False}
    while time.monotonic() - killed < 600:
        asked = time.monotonic()
        answer = http.post("/v1/chat/completions", json=short)
        waited = time.monotonic() - asked
        if answer.status_code == 200:
            return answer
        assert answer.status_code == 503, answer.text
        assert "retry-after" in answer.headers
        assert waited < 5, f"waited {waited:.1f} s on a restarting engine"
        time.sleep(1.0)
    raise AssertionError("the engine never came back")


def _engine_core(serve_pid: int) -> psutil.Process:
    """The vLLM engine core process under ``serve`` (vLLM names it ``VLLM::EngineCore``)."""
    for child in psutil.Process(serve_pid).children(recursive=True):
        try:
            if "EngineCore" in child.name() or "EngineCore" in " ".join(child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    raise AssertionError("no vLLM engine core process found under serve")


def test_the_engine_replica_serves_http_itself_with_the_catalogs_cards(
    serve_process: tuple[subprocess.Popen[str], list[str], int],
) -> None:
    """cpu-text is a direct-streaming profile: Serve's port is HAProxy, in front of the
    engine replica serving vLLM's own app (no ingress replica), whose ``/v1/models`` lists
    the catalog's cards with the engine's health, and which streams chat and serves the
    LoRA adapter by its ``<base>:<adapter>`` id."""
    process, lines, _ = serve_process
    serve = re.search(r"^Serve at +(http://127\.0\.0\.1:\d+/v1)", "\n".join(lines), re.M)
    assert serve, lines
    names = {" ".join(p.cmdline()) for p in psutil.Process(process.pid).children(recursive=True)}
    assert any("bin/haproxy" in n for n in names), names
    assert not any("GemmaIngress" in n for n in names), names
    assert any("ServeReplica:gemma:StaticLoraServer:gemma-3-270m" in n for n in names), names
    # no idle Ray worker kept (the node initialization's imports torch and vLLM)
    assert not any("ray::IDLE" in n for n in names), names

    listed = {m["id"]: m["metadata"] for m in httpx.get(f"{serve.group(1)}/models").json()["data"]}
    assert list(listed) == ["gemma-3-270m", "gemma-3-270m:tiny-lora"], listed
    base, adapter = listed["gemma-3-270m"], listed["gemma-3-270m:tiny-lora"]
    assert base["capabilities"] == ["text", "tools"], base
    assert base["engine_slots"] == 8, base
    assert base["health"] == {"status": "up"}, base
    assert adapter["base_model_id"] == "gemma-3-270m", adapter
    assert adapter["capabilities"] == base["capabilities"], adapter

    client = OpenAI(base_url=serve.group(1), api_key="unused")
    chunks = list(
        client.chat.completions.create(
            model="gemma-3-270m",
            messages=[{"role": "user", "content": "Count to ten."}],
            max_tokens=8,
            stream=True,
        )
    )
    assert sum(bool(c.choices and c.choices[0].delta.content) for c in chunks) >= 2, chunks
    tuned = client.completions.create(model="gemma-3-270m:tiny-lora", prompt="Hi", max_tokens=3)
    assert tuned.model == "gemma-3-270m:tiny-lora"
    assert tuned.usage is not None
    assert tuned.usage.completion_tokens == 3


def test_a_direct_streamed_chat_is_one_trace_from_the_gateway_to_the_engine(
    serve_process: tuple[subprocess.Popen[str], list[str], int], otlp: OtlpReceiver
) -> None:
    """Without an ingress and a Serve proxy in its path, a chat through the gateway is
    still one trace: the gateway's call to Serve is the parent of the engine replica's
    span (Ray Serve continues the ``traceparent`` HAProxy passes on) and of vLLM's
    ``llm_request`` span (vLLM continues the same header)."""
    _, lines, gateway_port = serve_process
    key = re.search(r"^API key: +(gsk-\S+)", "\n".join(lines), re.M)
    assert key, lines
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    answer = httpx.post(
        f"http://127.0.0.1:{gateway_port}/v1/chat/completions",
        json={
            "model": "gemma-3-270m",
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 4,
        },
        headers={
            "authorization": f"Bearer {key.group(1)}",
            "traceparent": f"00-{trace_id}-{client_span}-01",
        },
        timeout=300,
    )
    assert answer.status_code == 200, answer.text

    def complete(received: list[ReceivedSpan]) -> bool:
        names = {s.name.split(" ")[0] for s in received if s.trace_id == trace_id}
        return {"POST", "replica_handle_request", "llm_request"} <= names

    trace = [s for s in otlp.wait_for(complete, timeout=60) if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in trace}
    (call,) = [s for s in trace if s.name == "POST"]  # the gateway's call to Serve
    (engine,) = [s for s in trace if s.name == "llm_request"]
    replica = [s for s in trace if s.name.startswith("replica_handle_request")]
    assert [s.attributes.get("deployment") for s in replica] == ["StaticLoraServer:gemma-3-270m"]
    for span in (engine, *replica):
        assert span.parent_span_id == call.span_id, (span.name, sorted(s.name for s in trace))
    assert by_id[call.parent_span_id].name == "gateway.upstream"
    assert engine.attributes["gen_ai.usage.completion_tokens"] == 4


def test_serve_prints_progress_urls_and_key_and_keeps_engine_logs_in_a_file(
    serve_process: tuple[subprocess.Popen[str], list[str], int],
) -> None:
    process, lines, gateway_port = serve_process
    text = "\n".join(lines)
    assert lines, "no output"
    assert lines[-1] == READY_LINE, text
    logs = re.search(r"^Logs: +(\S+\.log)", text, re.M)
    assert logs, text
    assert "Starting Ray Serve (cpu-text): 1 engine" in text
    assert re.search(r"^  gemma-3-270m +loading$", text, re.M), text
    assert re.search(r"^  gemma-3-270m +ready in \d+ s$", text, re.M), text
    assert re.search(r"^Serve at +http://127\.0\.0\.1:\d+/v1: gemma-3-270m", text, re.M), text
    assert f"Gateway at http://127.0.0.1:{gateway_port}/v1" in text
    key = re.search(r"^API key: +(gsk-\S+)", text, re.M)
    assert key, text
    progress = [line for line in lines if not re.search(r": (ready|built) at /", line)]
    assert len(progress) <= 10, text
    assert not [line for line in lines if any(m in line for m in ENGINE_LOG_MARKERS)], text

    log = Path(logs.group(1)).read_text()
    assert "ServeReplica" in log
    assert "vllm" in log

    prometheus = re.search(r"^Prometheus at (http://127\.0\.0\.1:\d+) ", text, re.M)
    assert prometheus, text
    _until_scraped(prometheus.group(1), {"gemma-gateway", "ray"})

    client = OpenAI(base_url=f"http://127.0.0.1:{gateway_port}/v1", api_key=key.group(1))
    answer = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
    )
    assert answer.model == "gemma-3-270m"

    stack = [process.pid, *(p.pid for p in psutil.Process(process.pid).children(recursive=True))]
    process.send_signal(signal.SIGINT)
    started = time.monotonic()
    process.wait(timeout=60)
    stopped_in = time.monotonic() - started
    assert stopped_in < 30, f"stopped in {stopped_in:.0f} s"
    deadline = time.monotonic() + 30
    while (alive := [p for p in stack if psutil.pid_exists(p) and _running(p)]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
    assert not alive, f"left running after Ctrl-C: {alive}"


def _until_scraped(prometheus: str, jobs: set[str]) -> None:
    """Until every target of ``jobs`` was scraped and answered (``up``)."""
    deadline = time.monotonic() + 60
    while True:
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]
        up = {t["labels"]["job"] for t in targets["activeTargets"] if t["health"] == "up"}
        if up >= jobs:
            return
        assert time.monotonic() < deadline, targets
        time.sleep(1)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
