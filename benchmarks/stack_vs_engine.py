"""The serving stack against the bare engine: one streaming workload, three targets, one run.

    vllm      vLLM's own OpenAI server (``python -m vllm.entrypoints.openai.api_server``)
              started with the engine arguments the catalog gives ``--profile``'s first
              variant (``serving.app.build_llm_configs``), and its CPU environment
    serve     Ray Serve LLM with the same profile (``serving.runner.start_serving``)
    gateway   the gateway (its own process) in front of that Serve application

Each target gets the same requests (prompts from loadtests/prompts.jsonl, fixed
``max_tokens`` with ``ignore_eos`` so every answer has the same length, temperature 0) at
the same concurrency. Printed: TTFT p50/p99, output tokens/s and the ratios to bare vLLM
(target: tokens/s at least 0.95x vLLM's), written to results/benchmarks/. The targets run
one after another, each alone on the machine. It starts engines: run it on a machine with
nothing else busy.

    .venv/bin/python benchmarks/stack_vs_engine.py [--profile cpu-text] [--requests 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from benchmarks.processes import ROOT, free_port, python_process
from loadtests.prompts import load_prompts
from loadtests.settings import DEFAULT_PROMPTS

RESULTS = ROOT / "results" / "benchmarks"
TARGET_RATIO = 0.95


@dataclass
class Sample:
    ttft: float
    tokens: int


@dataclass
class TargetResult:
    samples: list[Sample] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        ttfts = sorted(s.ttft * 1000 for s in self.samples)
        tokens = sum(s.tokens for s in self.samples)
        return {
            "requests": len(self.samples),
            "errors": self.errors,
            "ttft_p50_ms": round(_quantile(ttfts, 0.5), 2),
            "ttft_p99_ms": round(_quantile(ttfts, 0.99), 2),
            "output_tokens": tokens,
            "output_tokens_per_second": round(tokens / self.seconds, 2) if self.seconds else 0,
        }


def _quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def engine_command(
    profile: str, port: int, index: int = 0
) -> tuple[list[str], dict[str, str], str]:
    """vLLM server arguments, environment and model id from the catalog's ``LLMConfig``
    (of the profile's ``index``-th variant)."""
    from serving.app import build_llm_configs

    config = build_llm_configs({"profile": profile})[index]
    loading = config.model_loading_config
    data = loading if isinstance(loading, dict) else loading.model_dump()
    model_id = str(data["model_id"])
    args = ["-m", "vllm.entrypoints.openai.api_server", "--model", str(data["model_source"])]
    args += ["--served-model-name", model_id, "--port", str(port)]
    args += engine_flags(dict(config.engine_kwargs))
    env_vars = ((config.runtime_env or {}).get("env_vars")) or {}
    return args, {k: str(v) for k, v in env_vars.items()}, model_id


def engine_flags(kwargs: dict[str, Any]) -> list[str]:
    """Engine keyword arguments as vLLM command-line flags."""
    flags: list[str] = []
    for name, value in kwargs.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, dict):
            flags += [flag, json.dumps(value)]
        elif isinstance(value, list):
            items = [json.dumps(v) if isinstance(v, dict) else str(v) for v in value]
            flags += [flag, *items]
        elif value is not None:
            flags += [flag, str(value)]
    return flags


async def _one(client: httpx.AsyncClient, body: dict[str, Any], result: TargetResult) -> None:
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    try:
        async with client.stream("POST", "/chat/completions", json=body) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = json.loads(line[6:])
                if first is None and any(
                    (c.get("delta") or {}).get("content") for c in chunk.get("choices") or []
                ):
                    first = time.perf_counter()
                if chunk.get("usage"):
                    tokens = int(chunk["usage"]["completion_tokens"])
    except (httpx.HTTPError, ValueError):
        result.errors += 1
        return
    if first is None:
        result.errors += 1
        return
    result.samples.append(Sample(first - started, tokens))


async def run_workload(base_url: str, model: str, args: argparse.Namespace) -> TargetResult:
    prompts = load_prompts(DEFAULT_PROMPTS)
    bodies = [
        {
            "model": model,
            "messages": [{"role": "user", "content": prompts[i % len(prompts)].text}],
            "max_tokens": args.max_tokens,
            "ignore_eos": True,
            "temperature": 0.0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        for i in range(args.requests)
    ]
    result = TargetResult()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            await _one(client, queue.get_nowait(), result)

    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=600, limits=limits) as client:
        await _one(client, {**bodies[0], "max_tokens": 4}, TargetResult())  # warm-up
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(args.concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def bench_vllm(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    command, env, model = engine_command(args.profile, port)
    base = f"http://127.0.0.1:{port}"
    cores = set(os.sched_getaffinity(0))
    with python_process(command, cores=cores, ready_url=base + "/v1/models", env=env, timeout=1200):
        return asyncio.run(run_workload(base + "/v1", model, args)).summary()


@contextmanager
def serve_app(profile: str) -> Iterator[str]:
    from serving.runner import shutdown, start_serving, wait_ready

    serving = start_serving(profile, port=free_port())
    try:
        wait_ready(serving, timeout_s=1200)
        yield serving.base_url
    finally:
        shutdown()


def bench_stack(args: argparse.Namespace, model: str) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    with serve_app(args.profile) as serve_url:
        results["serve"] = asyncio.run(run_workload(serve_url, model, args)).summary()
        port = free_port()
        gateway = f"http://127.0.0.1:{port}"
        env = {
            "GATEWAY_UPSTREAM_URL": serve_url.removesuffix("/v1"),
            "GATEWAY_QUOTA__ENABLED": "false",
        }
        command = ["-m", "uvicorn", "--factory", "gateway.app:create_app_from_env"]
        command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
        cores = set(os.sched_getaffinity(0))
        with python_process(command, cores=cores, ready_url=gateway + "/healthz", env=env):
            summary = asyncio.run(run_workload(gateway + "/v1", model, args)).summary()
        results["gateway"] = summary
    return results


def compare(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    base = results["vllm"]
    ratios = {}
    for name, figures in results.items():
        tps = figures["output_tokens_per_second"] / base["output_tokens_per_second"]
        ttft = base["ttft_p50_ms"] / figures["ttft_p50_ms"] if figures["ttft_p50_ms"] else 0
        ratios[name] = {
            "tokens_per_second_ratio": round(tps, 3),
            "ttft_p50_ratio": round(ttft, 3),
            "pass": tps >= TARGET_RATIO,
        }
    return ratios


def report(results: dict[str, dict[str, Any]], ratios: dict[str, dict[str, Any]]) -> None:
    print(
        f"{'target':<9}{'reqs':>6}{'errors':>7}{'TTFT p50':>10}{'TTFT p99':>10}"
        f"{'tok/s':>9}{'x vLLM tok/s':>14}{'x vLLM TTFT':>13}"
    )
    for name, f in results.items():
        r = ratios[name]
        verdict = "PASS" if r["pass"] else "FAIL"
        print(
            f"{name:<9}{f['requests']:>6}{f['errors']:>7}{f['ttft_p50_ms']:>10}"
            f"{f['ttft_p99_ms']:>10}{f['output_tokens_per_second']:>9}"
            f"{r['tokens_per_second_ratio']:>14}{r['ttft_p50_ratio']:>13}  {verdict}"
        )
    print(f"target: output tokens/s >= {TARGET_RATIO}x bare vLLM (TTFT ratio: vLLM/target)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu-text", help="catalog profile (first variant)")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    results = {"vllm": bench_vllm(args)}
    _, _, model = engine_command(args.profile, 0)
    results |= bench_stack(args, model)
    ratios = compare(results)
    report(results, ratios)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"stack_vs_engine-{stamp}.json"
    config = {k: v for k, v in vars(args).items()}
    config["python"] = platform.python_version()
    payload = {"config": config, "results": results, "ratios": ratios}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
