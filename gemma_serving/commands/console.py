"""The terminal of ``gemma-serving serve``: its own lines there, everyone else's in a log file.

Ray and vLLM write hundreds of lines while engines start (Ray's driver relays every
worker's output). ``Console.quiet`` moves this process's standard output and error - the
file descriptors, so C++ code, Ray's relays and child processes follow - into a log file,
and keeps a handle on the terminal for the lines meant for the user. ``Console.loud``
leaves everything where it is.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO


def log_file_path(root: Path) -> Path:
    """A new log file under ``root/logs``, named by the local time it starts."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return root / "logs" / f"serve-{stamp}-{os.getpid()}.log"


@dataclass
class Console:
    """Writes the user's lines to the terminal (and, when quiet, to the log file too)."""

    terminal: IO[str]
    log: IO[str] | None = None
    log_path: Path | None = None

    @classmethod
    def loud(cls) -> Console:
        return cls(terminal=sys.stdout)

    @classmethod
    def quiet(cls, log_path: Path) -> Console:
        """Send fds 1 and 2 to ``log_path``; the terminal stays reachable through this."""
        sys.stdout.flush()
        sys.stderr.flush()
        terminal = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("a", buffering=1, encoding="utf-8")
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        return cls(terminal=terminal, log=log, log_path=log_path)

    def say(self, line: str) -> None:
        print(line, file=self.terminal, flush=True)
        if self.log is not None:
            print(f"[gemma-serving] {line}", file=self.log, flush=True)
