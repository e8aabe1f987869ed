"""A memory-heavy job beside the running stack: no replica restarts, the gateway keeps answering.

A child process (started as ``make unit`` runs its tests: with a raised OOM score) takes the
host's free memory down to a few percent and holds it, past the 95% at which Ray's memory
monitor would otherwise kill Ray's workers, while the gateway is asked for chats. Every
engine replica and engine process alive before is alive after, and none was added.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest
from openai import OpenAI

from gateway.app import create_app
from gateway.settings import GatewaySettings
from serving.runner import LocalServing
from tests.integration.conftest import TEXT_MODEL
from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.integration

LEFT_FREE = 0.035  # of the host's memory, while the job holds the rest
HOLD_S = 20.0
HOG = f"""
import sys, time
import psutil
chunks = []
total = psutil.virtual_memory().total
while psutil.virtual_memory().available > {LEFT_FREE} * total + 2**28:
    chunk = bytearray(2**27)
    for i in range(0, len(chunk), 4096):
        chunk[i] = 1
    chunks.append(chunk)
print(f"holding {{len(chunks) * 2**27 / 1e9:.1f}} GB", flush=True)
time.sleep({HOLD_S})
"""


def _stack_processes() -> dict[int, str]:
    found = {}
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if re.match(r"ray::ServeReplica|VLLM::|ray::ServeController|ray::ProxyActor", command):
            found[process.info["pid"]] = command.split()[0]
    return found


@pytest.fixture(scope="module")
def client(serve_stack: LocalServing) -> Iterator[OpenAI]:
    root = serve_stack.base_url.removesuffix("/v1")
    settings = GatewaySettings.model_validate({"upstream_url": root, "quota": {"enabled": False}})
    with serve_in_thread(create_app(settings)) as url:
        yield OpenAI(base_url=url + "/v1", api_key="unused", timeout=60, max_retries=0)


def test_a_memory_heavy_job_leaves_every_replica_in_place(client: OpenAI) -> None:
    before = _stack_processes()
    assert any(name.startswith("VLLM::") for name in before.values())
    hog = subprocess.Popen(
        ["choom", "-n", "500", "--", sys.executable, "-c", HOG],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert hog.stdout is not None
        holding = hog.stdout.readline()
        assert holding.startswith("holding"), holding
        lowest = psutil.virtual_memory().available / psutil.virtual_memory().total
        answered = 0
        while hog.poll() is None:
            answer = client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
            )
            assert answer.model == TEXT_MODEL
            answered += 1
            time.sleep(1.0)
    finally:
        hog.kill()
        hog.wait()
    assert lowest < 0.05, f"the job left {lowest:.1%} of memory free"
    assert answered >= HOLD_S / 4
    after = _stack_processes()
    assert {pid: before[pid] for pid in before if pid not in after} == {}
    assert {pid: after[pid] for pid in after if pid not in before} == {}
