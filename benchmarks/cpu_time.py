"""CPU seconds each role of the stack spent over a stretch of time, read from ``/proc``.

A snapshot holds every live process's user + system time (``/proc/PID/stat``) under its
role (``benchmarks.pss.role_of``; a Serve replica by its deployment); a bare vLLM server's
processes are told apart from the stack's by a ``(bare)`` suffix, this process (the
benchmark's client and, when it started Serve, Ray's driver) is ``benchmark``, and the
machine's other processes are ``not the stack``. The difference of two snapshots is what each
role used between them: on a machine with every core busy, CPU one role takes is CPU the
engine does not get. A process that ends between the snapshots is not counted.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass

from benchmarks.pss import PROC, REPLICA, engine_of, role_of, stat_fields, title_of

TICKS = os.sysconf("SC_CLK_TCK")
#: Processes of no role of the stack or of vLLM: the machine's other services.
OTHER = "not the stack"


@dataclass(frozen=True)
class _Proc:
    pid: int
    ppid: int
    title: str
    ticks: int
    started: int  # clock ticks after boot: tells a reused pid apart


def _read(pid: int) -> _Proc | None:
    try:
        title = title_of(pid)
        fields = stat_fields(pid)
    except OSError:
        return None
    if not title:
        return None  # a kernel thread
    # state, ppid, ...: utime and stime are the 12th and 13th, the start time the 20th
    return _Proc(pid, int(fields[1]), title, int(fields[11]) + int(fields[12]), int(fields[19]))


def _label(pid: int, processes: dict[int, _Proc]) -> str:
    if pid == os.getpid():
        return "benchmark"
    title = processes[pid].title
    role = role_of(title)
    if role == "other":
        return OTHER
    if role == "replica":  # ray::ServeReplica:<app>:<deployment>[.<method it runs>]
        word = next(w for w in title.split() if w.startswith(REPLICA))
        deployment = word.removeprefix(REPLICA).partition(":")[2]
        head, dot, method = deployment.rpartition(".")
        return f"replica {head if dot and method.isidentifier() else deployment}"
    engine = engine_of(processes[pid], processes)
    return f"{role} (bare)" if engine and engine.startswith("bare vllm") else role


Snapshot = dict[int, tuple[str, int, int]]
"""``{pid: (label, CPU ticks, start time)}``."""


def snapshot() -> Snapshot:
    """Every live process's label, CPU ticks used and start time."""
    found = {int(p.name): _read(int(p.name)) for p in PROC.iterdir() if p.name.isdigit()}
    processes = {pid: proc for pid, proc in found.items() if proc is not None}
    return {
        pid: (_label(pid, processes), proc.ticks, proc.started) for pid, proc in processes.items()
    }


def used(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU seconds per label between two snapshots (processes alive at both, or started
    between them), largest first; labels that used nothing are left out."""
    totals: dict[str, float] = defaultdict(float)
    for pid, (label, ticks, started) in after.items():
        previous = before.get(pid)
        start = previous[1] if previous is not None and previous[2] == started else 0
        totals[label] += (ticks - start) / TICKS
    return {k: round(v, 2) for k, v in sorted(totals.items(), key=lambda kv: -kv[1]) if v > 0}
