"""Child processes for benchmarks: start pinned to a core, wait until they answer, stop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from gemma_serving.processes import stop

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin(cores: set[int]) -> None:
    """Pin this process to ``cores`` (those this machine has; others are ignored)."""
    usable = cores & os.sched_getaffinity(0)
    if usable:
        os.sched_setaffinity(0, usable)


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def python_process(
    args: Sequence[str],
    *,
    cores: set[int],
    ready_url: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """``python args...`` from the repository root, pinned to ``cores``, ready to answer."""
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        preexec_fn=lambda: pin(cores),
    )
    try:
        wait_http(ready_url, timeout)
        yield process
    finally:
        stop(process)
