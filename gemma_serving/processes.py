"""Stopping the child processes the commands start (the gateway, Prometheus)."""

from __future__ import annotations

import subprocess


def stop(process: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds; reaped either way."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
