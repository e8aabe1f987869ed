"""The stack's memory beside bare vLLM's, per process and per engine, measured in one run.

    stack   ``gemma-serving serve --profile P`` as ``make serve`` runs it (Ray, Serve, one
            engine deployment per variant, the ingress, the gateway in its own process),
            or a running one (``--attach PID`` of its ``gemma-serving serve`` process)
    vllm    for each variant of the profile, vLLM's own OpenAI server started with the
            engine arguments and environment the catalog gives that variant
            (``benchmarks.stack_vs_engine.engine_command``), alone, one after another

Each engine answers one short request first (a chat; an embedding for an embedding model,
a one-token completion for a classifier), so its tokenizer and caches are in use.
Figures are PSS (``benchmarks.pss``): shared pages split between the processes that map
them, so they add up to what the processes cost the machine. Printed: every process of
the stack, each engine's total beside its bare vLLM server's and their ratio, the
stack's total; written to results/benchmarks/stack_memory-*.json. It starts engines:
run it alone (``flock /tmp/gemma-engine.lock ...``).

    .venv/bin/python benchmarks/stack_memory.py [--profile cpu-dev] [--attach PID] [--no-bare]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.processes import ROOT, free_port, wait_http
from benchmarks.pss import all_processes, descendants, table
from benchmarks.stack_vs_engine import engine_command

RESULTS = ROOT / "results" / "benchmarks"
GATEWAY_LINE = "Gateway at"
SETTLE_S = 10.0


def warm_request(model: str, capabilities: frozenset[str]) -> tuple[str, dict[str, Any]]:
    """The path and body of a short request ``model`` serves (by its capabilities)."""
    if "embeddings" in capabilities:
        return "/embeddings", {"model": model, "input": "Hi"}
    if "moderation" in capabilities:
        return "/completions", {"model": model, "prompt": "Hi", "max_tokens": 1}
    return "/chat/completions", {
        "model": model,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 4,
    }


def warm(base_url: str, model: str, capabilities: frozenset[str]) -> None:
    """One short request, so the engine's tokenizer, processor and caches are in use."""
    path, body = warm_request(model, capabilities)
    request = urllib.request.Request(
        f"{base_url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        response.read()


def measure(root: int, attempts: int = 6) -> list[dict[str, Any]]:
    """The tree under ``root`` once it settled and holds its engine core(s)."""
    for _ in range(attempts):
        time.sleep(SETTLE_S)
        processes = all_processes()
        rows = table(descendants(root, processes), processes)
        if any(row["role"] == "engine core" for row in rows):
            return rows
    raise SystemExit(f"no engine core under {root}: {[row['title'] for row in rows]}")


def start_stack(profile: str, serve_port: int) -> subprocess.Popen[str]:
    """``gemma-serving serve`` in a session of its own, once it printed the gateway's URL."""
    env = {**os.environ, "GATEWAY_PORT": str(free_port()), "GATEWAY_QUOTA__ENABLED": "false"}
    command = [sys.executable, "-m", "gemma_serving.cli", "serve", "--profile", profile]
    process = subprocess.Popen(
        [*command, "--port", str(serve_port)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        print(f"  serve | {line.rstrip()}", file=sys.stderr, flush=True)
        if line.startswith(GATEWAY_LINE):
            return process
    raise SystemExit(f"gemma-serving serve exited with {process.wait()} before it was ready")


def stop_stack(process: subprocess.Popen[str]) -> None:
    process.terminate()  # `serve` stops on SIGTERM as on Ctrl-C
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def stack_rows(args: argparse.Namespace, models: dict[str, frozenset[str]]) -> list[dict[str, Any]]:
    if args.attach:
        return measure(args.attach)
    port = free_port()
    process = start_stack(args.profile, port)
    try:
        for model, capabilities in models.items():
            warm(f"http://127.0.0.1:{port}/v1", model, capabilities)
        return measure(process.pid)
    finally:
        stop_stack(process)


def bare_rows(
    profile: str, index: int, capabilities: frozenset[str]
) -> tuple[str, list[dict[str, Any]]]:
    port = free_port()
    command, env, model = engine_command(profile, port, index)
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=ROOT,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", timeout=1200)
        warm(f"http://127.0.0.1:{port}/v1", model, capabilities)
        return model, measure(process.pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def per_engine(rows: list[dict[str, Any]]) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row["engine"] or "(not an engine)"] += row["pss_gb"]
    return {name: round(value, 3) for name, value in totals.items()}


def print_processes(stack: list[dict[str, Any]]) -> None:
    print(f"{'pid':>8}  {'role':<22}{'engine':<30}{'PSS GB':>8}{'anon GB':>9}")
    for row in stack:
        engine = row["engine"] or "-"
        print(
            f"{row['pid']:>8}  {row['role']:<22}{engine:<30}"
            f"{row['pss_gb']:>8.2f}{row['anonymous_gb']:>9.2f}",
            flush=True,
        )


def report(stack: list[dict[str, Any]], bare: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    engines = per_engine(stack)
    bare_totals = {model: round(sum(r["pss_gb"] for r in rows), 3) for model, rows in bare.items()}
    print(f"\n{'engine':<30}{'stack GB':>9}{'bare vLLM GB':>14}{'ratio':>7}")
    for name, value in sorted(engines.items()):
        base = bare_totals.get(name)
        ratio = f"{value / base:7.2f}" if base else "      -"
        print(f"{name:<30}{value:>9.2f}{(base or float('nan')):>14.2f}{ratio}")
    total = round(sum(engines.values()), 3)
    print(f"{'stack total':<30}{total:>9.2f}{sum(bare_totals.values()):>14.2f}")
    return {"engines": engines, "bare": bare_totals, "stack_total_gb": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu-dev", help="catalog profile")
    parser.add_argument("--attach", type=int, help="pid of a running `gemma-serving serve`")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare vLLM servers")
    args = parser.parse_args()
    from serving.catalog import load_catalog
    from serving.runner import served_model_ids

    catalog = load_catalog()
    variants = catalog.profile_variants(args.profile)
    capabilities = {v.id: frozenset[str](v.capabilities) for v in variants}
    served = {
        model: capabilities[model.split(":")[0]]
        for model in served_model_ids(catalog, args.profile)
    }
    stack = stack_rows(args, served)
    print_processes(stack)
    bare = {}
    if not args.no_bare:
        for index, variant in enumerate(variants):
            model, rows = bare_rows(args.profile, index, capabilities[variant.id])
            bare[model] = rows
    summary = report(stack, bare)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"stack_memory-{stamp}.json"
    payload = {"config": vars(args), "stack": stack, "bare": bare, "summary": summary}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
