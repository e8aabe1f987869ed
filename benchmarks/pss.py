"""Proportional set size (PSS) of a process tree, each process named by its role in the stack.

PSS splits every shared page between the processes that map it, so the figures of a set of
processes add up to what they cost the machine together (RSS would count torch's libraries
once per process). Roles come from the titles Ray and vLLM give their processes:

    ray::ServeReplica:<app>:<deployment>   a Serve replica (an engine's LLMServer, the ingress)
    VLLM::EngineCore / VLLM::Worker*       vLLM's engine core and its worker, children of the
                                           replica (or of a bare ``api_server``) they belong to
    ray::ServeController, ray::ProxyActor  Serve's controller and HTTP proxy
    ray::HAProxyManager, .../bin/haproxy   Serve's HAProxy (direct streaming) and its manager
    raylet, gcs_server, agents             Ray's own processes
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

PROC = Path("/proc")
REPLICA = "ray::ServeReplica:"


@dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    title: str
    pss_bytes: int
    anonymous_bytes: int

    @property
    def role(self) -> str:
        return role_of(self.title)


def role_of(title: str) -> str:
    """A short role name for a process title (see the module docstring)."""
    rules = (
        ("VLLM::EngineCore", "engine core"),
        ("VLLM::Worker", "engine worker"),
        (REPLICA, "replica"),
        ("ray::ServeController", "serve controller"),
        ("ray::ProxyActor", "serve proxy"),
        ("ray::HAProxyManager", "serve haproxy manager"),
        ("bin/haproxy ", "serve haproxy"),
        ("gcs_server", "ray gcs"),
        ("raylet", "raylet"),
        ("dashboard/agent.py", "ray dashboard agent"),
        ("runtime_env/agent", "ray runtime-env agent"),
        ("log_monitor.py", "ray log monitor"),
        ("monitor.py", "ray monitor"),
        ("dashboard/dashboard.py", "ray dashboard"),
        ("ray::", "ray worker"),
        ("vllm.entrypoints.openai.api_server", "vllm api server"),
        ("gemma_serving.cli gateway", "gateway"),
        ("gemma-serving gateway", "gateway"),
        ("uvicorn", "gateway"),
        ("gemma_serving.cli serve", "serve driver"),
        ("gemma-serving serve", "serve driver"),
    )
    return next((role for marker, role in rules if marker in title), "other")


def title_of(pid: int) -> str:
    """A process's command line as one string (empty for a kernel thread)."""
    raw = (PROC / str(pid) / "cmdline").read_bytes()
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command: state, ppid, ... (``proc(5)``'s
    third field onwards)."""
    stat = (PROC / str(pid) / "stat").read_text()
    return stat[stat.rindex(")") + 2 :].split()


def _ppid(pid: int) -> int:
    return int(stat_fields(pid)[1])


def _rollup(pid: int) -> tuple[int, int]:
    """(PSS, anonymous) bytes from ``/proc/PID/smaps_rollup``."""
    fields: dict[str, int] = {}
    for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0]) * 1024
    return fields.get("Pss", 0), fields.get("Anonymous", 0)


def read_process(pid: int) -> Process | None:
    """One process, or ``None`` if it is gone (or is a kernel thread)."""
    try:
        title = title_of(pid)
        if not title:
            return None
        pss, anonymous = _rollup(pid)
        return Process(pid, _ppid(pid), title, pss, anonymous)
    except (OSError, ValueError, IndexError):
        return None


def all_processes() -> dict[int, Process]:
    found = (read_process(int(p.name)) for p in PROC.iterdir() if p.name.isdigit())
    return {p.pid: p for p in found if p is not None and p.pid != os.getpid()}


def descendants(root: int, processes: dict[int, Process]) -> list[Process]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = defaultdict(list)
    for process in processes.values():
        children[process.ppid].append(process.pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in processes:
            found.append(processes[pid])
        todo.extend(children.get(pid, []))
    return found


class Titled(Protocol):
    """What ``engine_of`` reads of a process."""

    @property
    def pid(self) -> int: ...
    @property
    def ppid(self) -> int: ...
    @property
    def title(self) -> str: ...


def engine_of(process: Titled, processes: Mapping[int, Titled]) -> str | None:
    """The engine a process belongs to: its replica's deployment, or a bare server's pid."""
    current: Titled | None = process
    while current is not None:
        if current.title.startswith(REPLICA):
            return current.title.split()[0].rsplit(":", 1)[-1]
        if role_of(current.title) == "vllm api server":
            return f"bare vllm {current.pid}"
        current = processes.get(current.ppid)
    return None


def gb(value: int) -> float:
    return round(value / 1e9, 3)


def table(group: Iterable[Process], processes: dict[int, Process]) -> list[dict[str, object]]:
    """One row per process: pid, role, engine (if any), PSS and anonymous memory in GB."""
    return [
        {
            "pid": p.pid,
            "role": p.role,
            "engine": engine_of(p, processes),
            "pss_gb": gb(p.pss_bytes),
            "anonymous_gb": gb(p.anonymous_bytes),
            "title": p.title[:90],
        }
        for p in sorted(group, key=lambda p: -p.pss_bytes)
    ]
