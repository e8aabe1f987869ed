"""Benchmark phases: one command in a session of its own, watched, and cleaned up after.

A phase that engines run in (a ``batch run``, a vLLM worker) can stall for minutes, and
leave processes behind when it exits: an engine core, a Ray actor, a vLLM worker, each
holding memory and, if they inherited it, the phase's output pipe. ``run_phase``:

- starts the command in a new session, stdin closed (nothing may wait on a terminal),
  stdout in a file (no pipe a leftover process can keep a reader waiting on), stderr
  relayed line by line to ours with the phase's name;
- every ``heartbeat`` seconds logs the time since the phase's last output, its processes,
  their memory and the machine's, and, for a Ray job, what Ray Data's executor reports
  for each operator (so a stage that never gets scheduled shows);
- once the command exits (or passes ``timeout``), lists the processes of its session
  still alive (saying which hold its stderr pipe) and stops them: TERM, then KILL.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from benchmarks.processes import ROOT

STARTED = time.monotonic()
PAGE = os.sysconf("SC_PAGE_SIZE")
RAY_LOG_DIR = re.compile(r"--log[-_]dir=(\S+)")
RAY_PROGRESS = re.compile(r"streaming_executor\.py:\d+ -- (\d+: .*)$")
RAY_FIELDS = ("Tasks:", "Actors:", "Queued blocks:")
RAY_OUTPUTTED = re.compile(r"Blocks Outputted: \S+")


def log(message: str) -> None:
    """One progress line on stderr, stamped with the seconds since the benchmark started."""
    print(f"[{time.monotonic() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def session_pids(session: int) -> list[int]:
    """Live processes of a session (a phase runs in its own: its pid is the session id)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if fields[0] != "Z" and int(fields[3]) == session:
            found.append(int(entry.name))
    return found


def _rss_bytes(pid: int) -> int:
    try:
        return int((Path("/proc") / str(pid) / "statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _command(pid: int) -> str:
    try:
        raw = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()[:100] or "?"


def available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def describe_session(session: int) -> str:
    pids = session_pids(session)
    rss = sum(_rss_bytes(p) for p in pids) / 1e9
    return f"{len(pids)} processes, {rss:.1f} GB resident; {available_gb():.1f} GB available"


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def ray_data_log(session: int) -> Path | None:
    """Ray Data's log of the Ray cluster a phase started (from its processes' ``--log-dir``)."""
    for pid in session_pids(session):
        found = RAY_LOG_DIR.search(_cmdline(pid))
        if found:
            path = Path(found.group(1)) / "ray-data" / "ray-data.log"
            return path if path.exists() else None
    return None


def _condensed(line: str) -> str:
    name, _, rest = line.partition(" - ")
    kept = [part for part in rest.split("; ") if part.startswith(RAY_FIELDS)]
    kept += RAY_OUTPUTTED.findall(rest)
    return f"{name}: {'; '.join(kept)}"


def ray_data_progress(path: Path) -> list[str]:
    """The operators of the last progress report in a Ray Data log, condensed."""
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 32_768))
        lines = handle.read().decode(errors="replace").splitlines()
    report: list[str] = []
    for line in lines:
        found = RAY_PROGRESS.search(line)
        if found:
            if found.group(1).startswith("0: "):
                report = []  # a new report starts with operator 0
            report.append(_condensed(found.group(1)))
    return report


def _holds(pid: int, pipe: str) -> bool:
    """Whether ``pid`` has ``pipe`` (``pipe:[inode]``) open."""
    try:
        fds = list((Path("/proc") / str(pid) / "fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(fd) == pipe:
                return True
        except OSError:
            continue
    return False


def stop_session(name: str, session: int, pipe: str) -> None:
    """Stop what is left of a phase's session (TERM, then KILL after 10 s).

    A process left holding the phase's stderr pipe would keep a reader of that pipe (as
    ``subprocess.run(capture_output=True)`` is) waiting for its end forever: said so.
    """
    left = session_pids(session)
    if not left:
        return
    log(f"{name}: {len(left)} processes left behind; stopping them:")
    for pid in left:
        holding = " (holds its stderr pipe open)" if _holds(pid, pipe) else ""
        log(f"{name}:   {pid} {_command(pid)}{holding}")
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while (left := session_pids(session)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not left:
            return
    log(f"{name}: still alive after KILL: {left}")


@dataclass
class Relay:
    """Copies a phase's stderr to ours, line by line, and remembers its tail."""

    name: str
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=60))
    last_output: float = field(default_factory=time.monotonic)

    def run(self, stream: IO[str]) -> None:
        for raw in stream:
            line = raw.rstrip()
            self.last_output = time.monotonic()
            if line:
                self.tail.append(line)
                print(f"  {self.name} | {line}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class PhaseResult:
    stdout: str
    returncode: int
    tail: list[str]
    seconds: float


def run_phase(
    name: str,
    command: Sequence[str],
    *,
    env: dict[str, str],
    timeout: float,
    heartbeat: float,
) -> PhaseResult:
    """Run ``command`` in a session of its own; stdout is returned, stderr streamed."""
    log(f"{name}: start: {' '.join(command)}")
    relay = Relay(name)
    with tempfile.TemporaryFile("w+", encoding="utf-8") as out:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,  # nothing may wait on the benchmark's terminal
            stdout=out,  # a file, not a pipe: no reader for a leftover process to block
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert process.stderr is not None
        pipe = f"pipe:[{os.fstat(process.stderr.fileno()).st_ino}]"
        reader = threading.Thread(target=relay.run, args=(process.stderr,), daemon=True)
        reader.start()
        try:
            returncode = _wait(name, process, relay, timeout, heartbeat)
        finally:
            seconds = time.perf_counter() - started
            stop_session(name, process.pid, pipe)
            reader.join(timeout=5)
        out.seek(0)
        stdout = out.read()
    log(f"{name}: exited with {returncode} after {seconds:.1f} s")
    return PhaseResult(stdout, returncode, list(relay.tail), seconds)


def _wait(
    name: str,
    process: subprocess.Popen[str],
    relay: Relay,
    timeout: float,
    heartbeat: float,
) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return process.wait(timeout=min(heartbeat, max(deadline - time.monotonic(), 0.1)))
        except subprocess.TimeoutExpired:
            pass
        quiet = time.monotonic() - relay.last_output
        state = describe_session(process.pid)
        log(f"{name}: running, {quiet:.0f} s since its last output; {state}")
        ray_log = ray_data_log(process.pid)
        for operator in ray_data_progress(ray_log) if ray_log else []:
            log(f"{name}:   ray data {operator}")
        if time.monotonic() >= deadline:
            log(f"{name}: over --phase-timeout ({timeout:.0f} s), stopping it")
            return -1


def phase_failed(name: str, result: PhaseResult) -> SystemExit:
    tail = "\n".join(result.tail[-40:])
    return SystemExit(f"{name} failed (exit {result.returncode}); its last stderr lines:\n{tail}")
