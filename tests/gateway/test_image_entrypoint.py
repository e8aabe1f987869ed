"""The gateway image's entrypoint: uvicorn with the gateway's JSON log configuration.

The test runs the Dockerfile's own ``ENTRYPOINT`` (with this environment's uvicorn) and
its log-configuration step, so an image built from it logs what ``gemma-serving gateway``
logs: one JSON object per line, the request's trace id on the access line.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from tests.support.servers import free_port
from tests.support.shared_redis import SHARED_REDIS_URL, delete_prefix

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
DOCKERFILE = Path(__file__).parents[2] / "docker" / "gateway.Dockerfile"


def _entrypoint() -> list[str]:
    [line] = [x for x in DOCKERFILE.read_text().splitlines() if x.startswith("ENTRYPOINT ")]
    return list(json.loads(line.removeprefix("ENTRYPOINT ")))


def _log_config_step() -> tuple[str, str]:
    """The image's log-configuration command (a ``python -c`` program) and the file it writes."""
    found = re.search(
        r'python -c "(from gateway\.telemetry\.logs import [^"]+)"', DOCKERFILE.read_text()
    )
    assert found, "the image writes no log configuration"
    program = found.group(1)
    [path] = re.findall(r"'([^']+\.json)'", program)
    return program, path


def test_the_images_entrypoint_logs_json_lines_with_the_trace_id(tmp_path: Path) -> None:
    program, image_path = _log_config_step()
    config = tmp_path / "gateway-logging.json"
    subprocess.run([sys.executable, "-c", program.replace(image_path, str(config))], check=True)
    args = _entrypoint()
    assert args[0] == "uvicorn"
    assert image_path in args
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        *(str(config) if a == image_path else a for a in args[1:]),
    ]

    port = free_port()
    prefix = f"test-image-{uuid.uuid4().hex[:10]}:"
    env = {
        **os.environ,
        "UVICORN_HOST": "127.0.0.1",
        "UVICORN_PORT": str(port),
        "UVICORN_LOG_LEVEL": "info",
        "GATEWAY_UPSTREAM_URL": "http://127.0.0.1:9",
        "GATEWAY_QUOTA__REDIS_URL": SHARED_REDIS_URL,
        "GATEWAY_QUOTA__KEY_PREFIX": prefix,
    }
    process = subprocess.Popen(
        command, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    trace_id = secrets.token_hex(16)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the gateway exited"
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.2)
        headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions", headers=headers, json=CHAT, timeout=10
        )
        assert answer.status_code == 401  # no key: a logged, traced request all the same
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        delete_prefix(prefix)

    lines = [line for line in (out + err).splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message", "trace_id"} <= set(records[0])
    access = [
        r
        for r in records
        if r["logger"] == "uvicorn.access" and "/v1/chat/completions" in r["message"]
    ]
    assert [r["trace_id"] for r in access] == [trace_id]
    assert any(
        r["logger"] == "uvicorn.error" and "startup complete" in r["message"] for r in records
    )
