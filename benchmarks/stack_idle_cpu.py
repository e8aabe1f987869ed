"""What the stack costs the machine while it serves nothing, against bare vLLM, one run.

    vllm          vLLM's own OpenAI server for ``--profile``'s first variant
                  (``benchmarks.stack_vs_engine.vllm_server``)
    ray-defaults  the Serve application of ``--profile`` with Ray Serve's own housekeeping
                  cadence (controller loop every 0.1 s, metrics exported every 100 ms)
    stack         the same application as the stack starts it (``serving.runner``: its
                  ``SERVE_HOUSEKEEPING_ENV``)

Each target starts alone (one engine in memory at a time; the Serve ones in a child
process of their own, as Ray reads its environment once), is left ``--settle`` seconds
after it is ready, and then the CPU seconds every process used over ``--seconds`` are
summed by role (``benchmarks/cpu_time.py``; the machine's other services and this
process are left out). On a machine whose cores the engine keeps
busy under load, an idle cost is CPU the engine does not get. Printed side by side, with
each total as a share of one core and the ratio stack / Ray's defaults; written to
results/benchmarks/. It starts engines: ``flock /tmp/gemma-engine.lock ...``.

    .venv/bin/python benchmarks/stack_idle_cpu.py [--profile cpu-text] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import cpu_time
from benchmarks.processes import ROOT

RESULTS = ROOT / "results" / "benchmarks"
#: Ray Serve's own values of what ``serving.runner.SERVE_HOUSEKEEPING_ENV`` sets.
RAY_DEFAULTS = {
    "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.1",
    "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "100",
}


def idle_cpu(settle: float, seconds: float) -> dict[str, float]:
    time.sleep(settle)
    before = cpu_time.snapshot()
    time.sleep(seconds)
    used = cpu_time.used(before, cpu_time.snapshot())
    used.pop("benchmark", None)  # this process only sleeps
    used.pop(cpu_time.OTHER, None)  # the machine's other services
    return used


def measure_vllm(args: argparse.Namespace) -> dict[str, float]:
    from benchmarks.stack_vs_engine import vllm_server

    with vllm_server(args.profile):
        return idle_cpu(args.settle, args.seconds)


def measure_serve_here(args: argparse.Namespace) -> dict[str, float]:
    from benchmarks.stack_vs_engine import serve_app

    with serve_app(args.profile):
        return idle_cpu(args.settle, args.seconds)


def measure_serve(args: argparse.Namespace, env: dict[str, str]) -> dict[str, float]:
    """The Serve application in a child process with ``env`` on top of this one's."""
    command = [sys.executable, __file__, "--child", "--profile", args.profile]
    command += ["--settle", str(args.settle), "--seconds", str(args.seconds)]
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE, check=True
    )
    used: dict[str, float] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return used


def report(results: dict[str, dict[str, float]], seconds: float) -> dict[str, Any]:
    roles = sorted(
        {r for used in results.values() for r in used},
        key=lambda r: -max(used.get(r, 0.0) for used in results.values()),
    )
    names = list(results)
    print(f"CPU seconds over {seconds:.0f} s idle, by role")
    print(f"{'role':<26}" + "".join(f"{n:>14}" for n in names))
    for role in roles:
        print(f"{role:<26}" + "".join(f"{results[n].get(role, 0.0):>14}" for n in names))
    totals = {n: round(sum(used.values()), 2) for n, used in results.items()}
    print(f"{'total':<26}" + "".join(f"{totals[n]:>14}" for n in names))
    shares = {n: round(100 * t / seconds, 1) for n, t in totals.items()}
    print(f"{'% of one core':<26}" + "".join(f"{shares[n]:>14}" for n in names))
    summary: dict[str, Any] = {"totals": totals, "percent_of_one_core": shares}
    if "stack" in totals and totals.get("ray-defaults"):
        summary["stack_over_ray_defaults"] = round(totals["stack"] / totals["ray-defaults"], 3)
        print(f"stack / Ray's defaults: {summary['stack_over_ray_defaults']}x")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu-text", help="catalog profile")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds after ready")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds measured")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare vLLM target")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_serve_here(args)), flush=True)
        return
    results: dict[str, dict[str, float]] = {}
    if not args.no_bare:
        results["vllm"] = measure_vllm(args)
    results["ray-defaults"] = measure_serve(args, RAY_DEFAULTS)
    results["stack"] = measure_serve(args, {})
    summary = report(results, args.seconds)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"stack_idle_cpu-{stamp}.json"
    config = {**vars(args), "python": platform.python_version()}
    path.write_text(json.dumps({"config": config, "results": results, **summary}, indent=2) + "\n")
    print(f"written: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
