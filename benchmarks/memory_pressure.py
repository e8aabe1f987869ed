"""A memory-heavy job beside a running stack: what it leaves free, what the stack still answers.

Attach to a ``make serve`` stack (its gateway and development key), then a child process
(at OOM score +500, as ``make unit`` runs) takes the host down to ``--left-free`` of its
memory and holds it for ``--hold`` seconds while the gateway is asked for a short chat
every second. Printed: the lowest free memory seen, the chats answered and failed with
their latency, and the stack's engine replicas and engine processes before and after
(same pids: nothing was killed or restarted); written to results/benchmarks/.

    .venv/bin/python benchmarks/memory_pressure.py --gateway http://127.0.0.1:8080 --key gsk-...
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.processes import ROOT

RESULTS = ROOT / "results" / "benchmarks"
STACK = re.compile(r"ray::ServeReplica|VLLM::|ray::ServeController|ray::ProxyActor")
HOG = """
import sys, time
import psutil
left_free, hold = float(sys.argv[1]), float(sys.argv[2])
chunks, total = [], psutil.virtual_memory().total
while psutil.virtual_memory().available > left_free * total + 2**28:
    chunk = bytearray(2**27)
    for i in range(0, len(chunk), 4096):
        chunk[i] = 1
    chunks.append(chunk)
print(f"{len(chunks) * 2**27 / 1e9:.1f}", flush=True)
time.sleep(hold)
"""


def stack_processes() -> dict[int, str]:
    found = {}
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if STACK.match(command):
            found[process.info["pid"]] = command.split()[0]
    return found


def chat(gateway: str, key: str) -> tuple[float, str]:
    """One short ``auto`` chat: its seconds and the model that served it."""
    body = {"model": "auto", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    request = urllib.request.Request(
        f"{gateway}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        model = str(json.load(response)["model"])
    return time.perf_counter() - started, model


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Hold the host's memory with the job while chatting; what happened (see the docstring)."""
    before = stack_processes()
    hog = subprocess.Popen(
        [
            "choom",
            "-n",
            "500",
            "--",
            sys.executable,
            "-c",
            HOG,
            str(args.left_free),
            str(args.hold),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert hog.stdout is not None
    held_gb = float(hog.stdout.readline() or "nan")
    lowest, latencies, models, failures = 1.0, [], set(), 0
    while hog.poll() is None:
        memory = psutil.virtual_memory()
        lowest = min(lowest, memory.available / memory.total)
        try:
            seconds, model = chat(args.gateway, args.key)
        except OSError:
            failures += 1
        else:
            latencies.append(seconds)
            models.add(model)
        time.sleep(1.0)
    after = stack_processes()
    return {
        "job_held_gb": held_gb,
        "lowest_free_fraction": round(lowest, 4),
        "chats_answered": len(latencies),
        "chats_failed": failures,
        "served_by": sorted(models),
        "chat_seconds_max": round(max(latencies, default=float("nan")), 3),
        "stack_processes_before": len(before),
        "engine_processes_before": sum(name.startswith("VLLM::") for name in before.values()),
        "killed_or_restarted": sorted(set(before) - set(after)),
        "new": sorted(set(after) - set(before)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", default="http://127.0.0.1:8080")
    parser.add_argument("--key", required=True, help="an API key of the gateway")
    parser.add_argument("--left-free", type=float, default=0.035, help="of the host's memory")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds")
    args = parser.parse_args()
    result = run(args)
    for name, value in result.items():
        print(f"{name:<24}{value}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"memory_pressure-{stamp}.json"
    path.write_text(json.dumps({"config": vars(args), "result": result}, indent=2) + "\n")
    print(f"written: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
