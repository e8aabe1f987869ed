"""The serving stack against the bare engine: one streaming workload, three targets, one run.

    vllm      vLLM's own OpenAI server (``python -m vllm.entrypoints.openai.api_server``)
              started with the engine arguments the catalog gives ``--profile``'s first
              variant (``serving.app.build_llm_configs``), and its CPU environment
    serve     Ray Serve LLM with the same profile (``serving.runner.start_serving``)
    gateway   the gateway (its own process) in front of that Serve application

Each target gets the same requests (prompts from loadtests/prompts.jsonl, fixed
``max_tokens`` with ``ignore_eos`` so every answer has the same length, temperature 0) at
the same concurrency. Printed: TTFT p50/p99, output tokens/s and the ratios to bare vLLM
(targets: tokens/s at least 0.95x vLLM's, TTFT p50 at most 1.1x), and the CPU seconds each
role of the machine's processes used per 1000 output tokens while each target ran
(``benchmarks/cpu_time.py``), written to results/benchmarks/. It starts engines: run it on
a machine with nothing else busy.

By default the targets run one after another, each alone on the machine. ``--rounds N``
starts vLLM and the stack side by side instead (about 13 GB for cpu-text) and runs the
workload on each in turn, N rounds with the order rotated: a machine whose speed drifts
during the run then weighs on every target alike, and each round's ratio is printed. While
one side runs, the other's serving processes are stopped (SIGSTOP, then SIGCONT; the
controller first and last): bare vLLM's, or the stack's controller, proxy, replicas,
engine core and gateway. Ray's GCS, raylet and agents keep running (this process is Ray's
driver); the CPU table shows what they took during vLLM's rounds. ``--no-stop`` leaves both
running.

``--engine-arg NAME=VALUE`` gives vLLM and the stack the same extra engine argument.

    .venv/bin/python benchmarks/stack_vs_engine.py [--profile cpu-text] [--requests 64]
        [--rounds 1] [--no-stop] [--engine-arg stream_interval=2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from benchmarks import cpu_time
from benchmarks.processes import ROOT, free_port, python_process
from loadtests.prompts import load_prompts
from loadtests.settings import DEFAULT_PROMPTS
from serving.catalog import Catalog, load_catalog

RESULTS = ROOT / "results" / "benchmarks"
TARGET_RATIO = 0.95
TARGET_TTFT_RATIO = 1.1


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


Round = dict[str, tuple[TargetResult, dict[str, float]]]
"""One round: each target's result and the CPU seconds per role while it ran."""


def _quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def engine_command(
    profile: str, port: int, index: int = 0, catalog: Catalog | None = None
) -> tuple[list[str], dict[str, str], str]:
    """vLLM server arguments, environment and model id from the catalog's ``LLMConfig``
    (of the profile's ``index``-th variant; ``catalog`` instead of the default one)."""
    from serving.app import AppArgs, build_llm_configs

    config = build_llm_configs(AppArgs(profile=profile, catalog=catalog))[index]
    loading = config.model_loading_config
    data = loading if isinstance(loading, dict) else loading.model_dump()
    model_id = str(data["model_id"])
    args = ["-m", "vllm.entrypoints.openai.api_server", "--model", str(data["model_source"])]
    args += ["--served-model-name", model_id, "--port", str(port)]
    args += engine_flags(dict(config.engine_kwargs))
    env_vars = ((config.runtime_env or {}).get("env_vars")) or {}
    return args, {k: str(v) for k, v in env_vars.items()}, model_id


def engine_arg(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` of ``--engine-arg``: the value as JSON if it parses, else the string."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name.replace("-", "_"), value


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


@contextmanager
def vllm_server(profile: str, catalog: Catalog | None = None) -> Iterator[str]:
    """vLLM's own OpenAI server for ``profile``'s first variant, on every core: its ``/v1``."""
    port = free_port()
    command, env, _ = engine_command(profile, port, catalog=catalog)
    base = f"http://127.0.0.1:{port}"
    cores = set(os.sched_getaffinity(0))
    with python_process(command, cores=cores, ready_url=base + "/v1/models", env=env, timeout=1200):
        yield base + "/v1"


@contextmanager
def serve_app(profile: str, catalog: Catalog | None = None) -> Iterator[str]:
    from serving.runner import shutdown, start_serving, wait_ready

    serving = start_serving(profile, catalog=catalog, port=free_port())
    try:
        wait_ready(serving, timeout_s=1200)
        yield serving.base_url
    finally:
        shutdown()


@contextmanager
def gateway_process(serve_url: str) -> Iterator[str]:
    """The gateway (its own process, quotas off) in front of ``serve_url``: its ``/v1``."""
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    env = {"GATEWAY_UPSTREAM_URL": serve_url.removesuffix("/v1"), "GATEWAY_QUOTA__ENABLED": "false"}
    command = ["-m", "uvicorn", "--factory", "gateway.app:create_app_from_env"]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    cores = set(os.sched_getaffinity(0))
    with python_process(command, cores=cores, ready_url=gateway + "/healthz", env=env):
        yield gateway + "/v1"


def measured(
    url: str, model: str, args: argparse.Namespace
) -> tuple[TargetResult, dict[str, float]]:
    """One workload against ``url``, with the CPU seconds each role used meanwhile."""
    before = cpu_time.snapshot()
    result = asyncio.run(run_workload(url, model, args))
    return result, cpu_time.used(before, cpu_time.snapshot())


def bench_one_after_another(args: argparse.Namespace, model: str) -> list[Round]:
    """Each target alone on the machine: vLLM, then Serve, then the gateway in front of it."""
    with vllm_server(args.profile, args.catalog) as url:
        vllm = measured(url, model, args)
    with serve_app(args.profile, args.catalog) as serve_url:
        serve = measured(serve_url, model, args)
        with gateway_process(serve_url) as gateway_url:
            gateway = measured(gateway_url, model, args)
    return [{"vllm": vllm, "serve": serve, "gateway": gateway}]


#: The stack's serving processes, stopped while vLLM runs (``--rounds``). Ray's own processes
#: (GCS, raylet, agents) keep running: this process is Ray's driver, and a driver whose GCS
#: stops answering gives up. Their CPU shows in vLLM's rounds.
STACK_ROLES = frozenset(
    {
        "serve controller",
        "serve proxy",
        "serve haproxy",
        "serve haproxy manager",
        "engine core",
        "gateway",
    }
)


def sides(snapshot: cpu_time.Snapshot) -> dict[str, list[int]]:
    """The pids of bare vLLM's processes and of the stack's serving ones (the controller
    first: it is stopped first and resumed last, so it never sees a replica stopped)."""
    bare = [pid for pid, (label, _, _) in snapshot.items() if label.endswith("(bare)")]
    stack = [
        pid
        for pid, (label, _, _) in snapshot.items()
        if label in STACK_ROLES or label.startswith("replica ")
    ]
    stack.sort(key=lambda pid: snapshot[pid][0] != "serve controller")
    return {"vllm": bare, "stack": stack}


@contextmanager
def stopped(pids: list[int]) -> Iterator[None]:
    """``pids`` stopped (SIGSTOP) for the block, resumed in reverse order after it."""
    done: list[int] = []
    try:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                done.append(pid)
        yield
    finally:
        for pid in reversed(done):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def answering(url: str, timeout_s: float = 120.0) -> None:
    """Wait until ``url``'s model listing answers 200: a side just resumed (SIGCONT) may
    still be marked down by a load balancer whose health checks failed while it was
    stopped (Serve's HAProxy), and that wait is not the workload's. The gateway's round
    waits for Serve's first, as a request refused meanwhile would mark its model
    unhealthy in the gateway for a while."""
    deadline = time.monotonic() + timeout_s
    while True:
        with suppress(httpx.HTTPError):
            if httpx.get(f"{url}/models", timeout=10).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout_s:.0f}s of resuming")
        time.sleep(0.5)


def bench_interleaved(args: argparse.Namespace, model: str) -> list[Round]:
    """vLLM and the stack up side by side, the workload on each in turn for ``--rounds``
    rounds (the order rotated each round), so a machine that speeds up or slows down
    during the run weighs on every target alike. Unless ``--no-stop``, the side not
    measured is stopped meanwhile, so each target has the machine to itself but for Ray's
    own processes."""
    rounds: list[Round] = []
    with ExitStack() as up:
        urls = {"vllm": up.enter_context(vllm_server(args.profile, args.catalog))}
        urls["serve"] = up.enter_context(serve_app(args.profile, args.catalog))
        urls["gateway"] = up.enter_context(gateway_process(urls["serve"]))
        pids = sides(cpu_time.snapshot()) if args.stop_other_side else {"vllm": [], "stack": []}
        names = list(urls)
        for index in range(args.rounds):
            order = names[index % len(names) :] + names[: index % len(names)]
            results = {}
            for name in order:
                with stopped(pids["stack"] if name == "vllm" else pids["vllm"]):
                    answering(urls["serve" if name == "gateway" else name])
                    answering(urls[name])
                    results[name] = measured(urls[name], model, args)
            rounds.append(results)
            figures = {n: r.summary()["output_tokens_per_second"] for n, (r, _) in results.items()}
            print(f"round {index + 1}/{args.rounds} ({' '.join(order)}): tok/s {figures}")
    return rounds


def pooled(rounds: list[Round]) -> dict[str, dict[str, Any]]:
    """Every round's samples of a target as one result, with its CPU seconds per role
    summed over its rounds and per 1000 output tokens."""
    results: dict[str, dict[str, Any]] = {}
    for name in rounds[0]:
        total = TargetResult()
        cpu: dict[str, float] = {}
        for result, used in (r[name] for r in rounds):
            total.samples += result.samples
            total.errors += result.errors
            total.seconds += result.seconds
            for role, seconds in used.items():
                cpu[role] = cpu.get(role, 0.0) + seconds
        summary = total.summary()
        per_k = 1000 / summary["output_tokens"] if summary["output_tokens"] else 0.0
        summary["cpu_seconds"] = {
            r: round(s, 2) for r, s in sorted(cpu.items(), key=lambda kv: -kv[1])
        }
        summary["cpu_seconds_per_1k_tokens"] = {
            r: round(s * per_k, 2) for r, s in summary["cpu_seconds"].items()
        }
        results[name] = summary
    return results


def per_round_ratios(rounds: list[Round]) -> dict[str, list[float]]:
    """Each round's tokens/s of a target over that round's bare vLLM."""
    ratios: dict[str, list[float]] = {}
    for r in rounds:
        base = r["vllm"][0].summary()["output_tokens_per_second"]
        for name, (result, _) in r.items():
            ratio = result.summary()["output_tokens_per_second"] / base if base else 0.0
            ratios.setdefault(name, []).append(round(ratio, 3))
    return ratios


def compare(
    results: dict[str, dict[str, Any]], rounds: dict[str, list[float]]
) -> dict[str, dict[str, Any]]:
    base = results["vllm"]
    ratios = {}
    for name, figures in results.items():
        tps = figures["output_tokens_per_second"] / base["output_tokens_per_second"]
        ttft = figures["ttft_p50_ms"] / base["ttft_p50_ms"] if base["ttft_p50_ms"] else 0
        ratios[name] = {
            "tokens_per_second_ratio": round(tps, 3),
            "tokens_per_second_ratio_per_round": rounds[name],
            "ttft_p50_ratio": round(ttft, 3),
            "pass": tps >= TARGET_RATIO and ttft <= TARGET_TTFT_RATIO,
        }
    return ratios


def report(results: dict[str, dict[str, Any]], ratios: dict[str, dict[str, Any]]) -> None:
    print(
        f"{'target':<9}{'reqs':>6}{'errors':>7}{'TTFT p50':>10}{'TTFT p99':>10}"
        f"{'tok/s':>9}{'x vLLM tok/s':>14}{'x vLLM TTFT':>13}  per round"
    )
    for name, f in results.items():
        r = ratios[name]
        verdict = "PASS" if r["pass"] else "FAIL"
        each = " ".join(str(x) for x in r["tokens_per_second_ratio_per_round"])
        print(
            f"{name:<9}{f['requests']:>6}{f['errors']:>7}{f['ttft_p50_ms']:>10}"
            f"{f['ttft_p99_ms']:>10}{f['output_tokens_per_second']:>9}"
            f"{r['tokens_per_second_ratio']:>14}{r['ttft_p50_ratio']:>13}  {verdict}  {each}"
        )
    print(
        f"target: output tokens/s >= {TARGET_RATIO}x bare vLLM's, TTFT p50 <= "
        f"{TARGET_TTFT_RATIO}x (tokens/s pooled over the rounds; each round's ratio after)"
    )
    print("CPU seconds per 1000 output tokens, by role, while each target ran:")
    for name, f in results.items():
        roles = ", ".join(f"{role} {v}" for role, v in f["cpu_seconds_per_1k_tokens"].items())
        print(f"  {name:<8} {roles}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu-text", help="catalog profile (first variant)")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="1: each target alone, one after another; more: vLLM and the stack up side by "
        "side, the workload on each in turn for this many rounds",
    )
    parser.add_argument(
        "--no-stop",
        dest="stop_other_side",
        action="store_false",
        help="with --rounds: leave the side not measured running instead of stopping it",
    )
    parser.add_argument(
        "--engine-arg",
        dest="engine_args",
        metavar="NAME=VALUE",
        type=engine_arg,
        action="append",
        default=[],
        help="a vLLM engine argument for both vLLM and the stack, over the catalog's "
        "(a JSON value or a string; repeatable), e.g. stream_interval=2",
    )
    args = parser.parse_args()
    args.catalog = (
        load_catalog().with_engine_kwargs(args.profile, dict(args.engine_args))
        if args.engine_args
        else None
    )
    _, _, model = engine_command(args.profile, 0, catalog=args.catalog)
    bench = bench_interleaved if args.rounds > 1 else bench_one_after_another
    rounds = bench(args, model)
    results = pooled(rounds)
    ratios = compare(results, per_round_ratios(rounds))
    report(results, ratios)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"stack_vs_engine-{stamp}.json"
    config = {k: v for k, v in vars(args).items() if k != "catalog"}
    config["python"] = platform.python_version()
    payload = {"config": config, "results": results, "ratios": ratios}
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
