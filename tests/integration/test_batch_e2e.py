"""``gemma-serving batch run`` on the cpu-dev engines: killed part way, resumed, complete.

A 200-line file mixes chat and completion lines for the 270M text model, malformed and
refused lines, a repeated custom_id and one image line for the vision fixture. The first
run is SIGKILLed as soon as an answered line is in the output; the second run resumes.
Afterwards every input line has exactly one output line: errors for the bad ones, text
and usage for the rest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from tests.batch.support import chat_line, completion_line, image_line, png_data_url

pytestmark = [pytest.mark.integration, pytest.mark.own_engines, pytest.mark.timeout(2400)]

TEXT_MODEL = "gemma-3-270m"
VISION_MODEL = "tiny-random-gemma-4"
MAX_TOKENS = 4


def _bad_line(i: int) -> tuple[str, str, int]:
    """A refused line: (line, the custom_id its error line carries, status)."""
    kind = i % 5
    if kind == 0:
        return '{"custom_id": "torn-' + str(i), "", 400  # id filled in by line number
    if kind == 1:
        return chat_line(f"bad-model-{i}", model="no-such-model"), f"bad-model-{i}", 404
    if kind == 2:
        line = json.dumps({"custom_id": f"bad-url-{i}", "url": "/v1/embeddings", "body": {}})
        return line, f"bad-url-{i}", 400
    if kind == 3:
        return chat_line(f"bad-tokens-{i}", max_tokens=-1), f"bad-tokens-{i}", 400
    return image_line(f"bad-image-{i}", url="data:image/png;base64,AAAA"), f"bad-image-{i}", 400


def _good_line(i: int) -> str:
    if i % 2:
        return completion_line(
            f"p-{i}", prompt=f"Item {i}:", model=TEXT_MODEL, max_tokens=MAX_TOKENS, temperature=0
        )
    return chat_line(
        f"c-{i}", text=f"Count to {i}.", model="auto", max_tokens=MAX_TOKENS, top_p=0.9
    )


def _input(path: Path) -> tuple[Counter[str], dict[str, int]]:
    """Write the 200 lines; returns the expected custom_id counts and error statuses."""
    lines: list[str] = []
    expected: Counter[str] = Counter()
    errors: dict[str, int] = {}
    for i in range(200):
        if i == 150:
            line, custom_id = image_line("image-1", url=png_data_url(32), model="auto"), "image-1"
        elif i == 160:
            line, custom_id = _good_line(0), "c-0"  # a repeat: duplicate_custom_id error line
        elif i % 8 == 7:
            line, custom_id, status = _bad_line(i)
            custom_id = custom_id or f"line-{i + 1}"
            errors[custom_id] = status
        else:
            line = _good_line(i)
            custom_id = json.loads(line)["custom_id"]
        lines.append(line)
        expected[custom_id] += 1
    path.write_text("\n".join(lines) + "\n")
    return expected, errors


def _command(source: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gemma_serving",
        "batch",
        "run",
        str(source),
        "-o",
        str(out),
        "--profile",
        "cpu-dev",
        "--batch-size",
        "8",
    ]


def _records(out: Path) -> list[dict]:
    if not out.exists():
        return []
    records = []
    for line in out.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            break
    return records


def _kill_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the job and, after it, every process it started (Ray, engines)."""
    children = psutil.Process(process.pid).children(recursive=True)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(children, timeout=60)


def _in_session(session: int) -> list[str]:
    """The command lines of the processes in ``session`` now."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            if os.getsid(process.pid) == session:
                found.append(" ".join(process.info["cmdline"] or [process.info["name"]]))
        except (ProcessLookupError, PermissionError):
            continue
    return found


def _left_in_session(session: int, timeout: float = 60.0) -> list[str]:
    """Processes still in ``session`` once they have had ``timeout`` seconds to end."""
    deadline = time.monotonic() + timeout
    while True:
        left = _in_session(session)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(1)


class SessionWatch:
    """The command lines of every process seen in ``session`` until ``stop`` (every 0.5 s)."""

    def __init__(self, session: int) -> None:
        self.session = session
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            self.seen.update(_in_session(self.session))

    def stop(self) -> set[str]:
        self._stop.set()
        self._thread.join()
        return self.seen


def _run_until_answered(source: Path, out: Path, log: Path) -> int:
    """Start the job, SIGKILL it once an answered line is written; lines at that point."""
    with log.open("wb") as sink:
        process = subprocess.Popen(_command(source, out), stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 1500
        while time.monotonic() < deadline and process.poll() is None:
            if any(r["response"]["status_code"] == 200 for r in _records(out)):
                break
            time.sleep(0.2)
        assert process.poll() is None, f"the job ended before it was killed:\n{log.read_text()}"
        written = len(_records(out))
    finally:
        if process.poll() is None:
            _kill_tree(process)
    return written


def test_killed_batch_resumes_to_one_line_per_input(tmp_path: Path) -> None:
    from serving.models.prepare import ensure_cpu_dev_models

    ensure_cpu_dev_models()
    source, out = tmp_path / "input.jsonl", tmp_path / "output.jsonl"
    expected, errors = _input(source)
    assert sum(expected.values()) == 200

    written = _run_until_answered(source, out, tmp_path / "first.log")
    assert 0 < written < 200

    # The second run in a session of its own: once it has exited, nothing it started
    # (Ray, its Data actors, vLLM's engine processes) may be left in that session.
    second = subprocess.Popen(
        _command(source, out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    watch = SessionWatch(second.pid)
    stdout, stderr = second.communicate(timeout=1800)
    seen = watch.stop()
    assert second.returncode == 0, stdout + stderr
    assert _left_in_session(second.pid) == []
    # Ray's usage stats are off on the job's cluster, so Ray Data LLM's usage-telemetry
    # actor is never started; the engine actor was seen, so the watch saw Ray's actors.
    assert any("vLLMEngineStageUDF" in cmdline for cmdline in seen), sorted(seen)
    assert not any("TelemetryAgent" in cmdline for cmdline in seen), sorted(seen)
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["total"] == 200
    assert summary["done"] == 200
    assert summary["skipped"] >= written

    records = _records(out)
    assert len(records) == len(out.read_text().splitlines()) == 200
    assert Counter(r["custom_id"] for r in records) == expected

    for record in records:
        custom_id, response = record["custom_id"], record["response"]
        if record["error"] is not None:
            assert response["body"]["error"]["message"]
            if record["error"]["code"] == "duplicate_custom_id":
                assert custom_id == "c-0"
            else:
                assert response["status_code"] == errors[custom_id], record
            continue
        assert custom_id not in errors
        assert response["status_code"] == 200
        body = response["body"]
        choice = body["choices"][0]
        text = (
            choice["message"]["content"] if body["object"] == "chat.completion" else choice["text"]
        )
        assert isinstance(text, str)
        assert 1 <= body["usage"]["completion_tokens"] <= MAX_TOKENS
        assert body["usage"]["prompt_tokens"] > 0
        expected_model = VISION_MODEL if custom_id == "image-1" else TEXT_MODEL
        assert body["model"] == expected_model

    answered = [r for r in records if r["error"] is None]
    assert len(answered) == 200 - len(errors) - 1
    texts = [r["response"]["body"]["choices"][0].get("text") for r in answered]
    texts += [
        r["response"]["body"]["choices"][0].get("message", {}).get("content") for r in answered
    ]
    assert sum(1 for t in texts if t) >= len(answered) // 2  # the real model writes text
