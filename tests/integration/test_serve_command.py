"""``gemma-serving serve`` (what ``make serve`` runs) on a terminal: progress, URLs, key, no logs.

The command runs as a user runs it, on the cpu-text profile (the 270M alone): its terminal
shows a few progress lines, the Serve and gateway URLs and the development key, while
Ray's and vLLM's output goes to the log file it names. The key it prints is accepted by
the gateway it started, and SIGINT (Ctrl-C) stops everything within seconds.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from openai import OpenAI

from serving.models.store import gemma_home
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


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], list[str], int]]:
    redis = RedisServer()
    redis.start()
    gateway_port = free_port()
    env = {
        **os.environ,
        "GEMMA_SERVING_HOME": str(_home(tmp_path)),
        "GATEWAY_PORT": str(gateway_port),
        "GATEWAY_QUOTA__REDIS_URL": redis.url,
    }
    command = [sys.executable, "-m", "gemma_serving.cli", "serve", "--profile", "cpu-text"]
    process = subprocess.Popen(
        [*command, "--port", str(free_port())],
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


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
