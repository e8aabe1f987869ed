"""Interactive time to first token under a bulk flood, with priority classes on and off.

One Serve application (``--profile``, default cpu-text: the 270M engine) and two gateway
processes with keys in Redis: one as deployed (priority classes and the fair share on),
one with the fair share off. The phases run one after another on the same engine:

    idle       interactive streams (an ``interactive``-class key), one at a time, alone;
               each is followed by one sent straight to Serve with the same engine
               priority, which splits a probe's time between the gateway and the rest
    priority   the same streams while ``--flood`` clients keep sending long answers
               (``--flood-tokens``) with a ``batch``-class key: the engine is saturated.
               The flood asks for whole answers, as a Batch API job's lines do
               (``--flood-stream`` streams them instead)
    batch=F    (``--also-batch-fraction F``) the priority phase again through a third
               gateway whose batch class holds at most F of the slots: fewer bulk
               sequences share each engine step, so the step a probe waits out is shorter,
               and the bulk tokens/s printed beside it show what that costs
    streamed   (optional) the priority phase again with the flood's answers streamed, as
               bulk traffic from a streaming client would be: every flood token then
               also passes Serve's proxy, the gateway and a client on the same cores
    fcfs       ``--fcfs-probes`` such streams through the gateway without fair share, both
               keys in one class (``standard``): first come, first served, as without any
               of it (each waits behind the whole flood, so a few show it)
    capacity   ``--capacity-clients`` clients back to back for ``--capacity-seconds``: the
               requests per second the engine completes (``--fair-tokens`` answers)
    fairness   two tenants of the same class and weight, one offering ``--heavy-factor``
               times the other's requests per second (open loop) for ``--fair-seconds``,
               together ``--overload`` times what the measured capacity serves until the
               phase's answers stop counting (``--fair-seconds`` + ``--grace-seconds``;
               ``--light-rate`` sets the light tenant's rate instead): each tenant's
               served/offered and Jain's index of those ratios

Why the fairness offer follows the measured capacity: Jain's index of served/offered
depends on how much of the heavy tenant's offer the engine can serve at all. Equal weights
on a saturated engine mean the light tenant gets all it offers and the heavy one the rest
(max-min fairness), and the index reaches 0.9 only if that rest is over half of what the
heavy tenant offers. A fixed rate makes the figure a measure of the machine's speed; an
offer a fixed factor over capacity keeps the engine saturated on any machine and leaves
the scheduler's fairness as what is measured. The max-min fair allocation is printed
beside what each tenant got.

The bulk flood runs in a process of its own and reads its streams without parsing them,
so the probes' clock (this process's event loop) never waits on the flood's stream reads.

Printed: TTFT p50/p99 per phase, the bulk output tokens/s the flood got meanwhile, each
flood phase's p99 over the idle p99 (target: at most 1.5x with priority on), the fairness
figures (targets: the light tenant served at least 90% of what it offered, Jain's index at
least 0.9); written to results/benchmarks/. It starts an engine: run it alone
(``flock /tmp/gemma-engine.lock ...``).

    .venv/bin/python benchmarks/priority_isolation.py [--probes 20] [--flood 16]
        [--phases streamed fcfs fairness] [--flood-stream] [--batch-fraction 0.75]
        [--also-batch-fraction 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from benchmarks.processes import ROOT, free_port, python_process
from benchmarks.quota_key import QuotaKey
from benchmarks.stack_vs_engine import _quantile, engine_command, serve_app
from gateway import priority
from gateway.priority import PriorityClass
from gateway.settings import FairShareSettings

RESULTS = ROOT / "results" / "benchmarks"
TTFT_TARGET = 1.5
LIGHT_SERVED_TARGET = 0.9
JAIN_TARGET = 0.9
PROMPT = [{"role": "user", "content": "Tell me about lighthouses."}]


class EventLike(Protocol):
    """A ``multiprocessing`` event as the flood process sees it."""

    def is_set(self) -> bool: ...


class CounterLike(Protocol):
    """A shared ``multiprocessing`` integer: the flood's answers read to their end."""

    value: int

    def get_lock(self) -> Any: ...


def _body(model: str, max_tokens: int, *, stream: bool = True) -> dict[str, Any]:
    return {
        "model": model,
        "messages": PROMPT,
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "temperature": 0.0,
        "stream": stream,
    }


async def _ttft(client: httpx.AsyncClient, secret: str, body: dict[str, Any]) -> float | None:
    """Seconds to the first content of a stream (``None`` when it failed)."""
    started = time.perf_counter()
    headers = {"authorization": f"Bearer {secret}"} if secret else {}
    first: float | None = None
    try:
        async with client.stream("POST", "/chat/completions", json=body, headers=headers) as r:
            if r.status_code != 200:
                return None
            async for line in r.aiter_lines():
                if first is None and line.startswith("data: {"):
                    choices = json.loads(line[6:]).get("choices") or []
                    if any((c.get("delta") or {}).get("content") for c in choices):
                        first = time.perf_counter()
    except httpx.HTTPError:
        return None
    return None if first is None else first - started


def _figures(ttfts: list[float | None]) -> dict[str, Any]:
    done = sorted(t * 1000 for t in ttfts if t is not None)
    return {
        "probes": len(ttfts),
        "errors": len(ttfts) - len(done),
        "ttft_p50_ms": round(_quantile(done, 0.5), 1),
        "ttft_p99_ms": round(_quantile(done, 0.99), 1),
    }


async def _probes(
    client: httpx.AsyncClient, secret: str, model: str, n: int, serve: httpx.AsyncClient
) -> dict[str, Any]:
    """``n`` probes through the gateway, each followed by one straight to Serve.

    The straight probe carries the engine priority the gateway gives the interactive class,
    so the two differ only by the gateway's hop; seen under the same conditions, they
    split the probe's time to first token between the gateway and what lies behind it.
    """
    ttfts, direct = [], []
    straight = priority.with_priority(_body(model, 8), PriorityClass.INTERACTIVE)
    for _ in range(n):
        ttfts.append(await _ttft(client, secret, _body(model, 8)))
        await asyncio.sleep(0.1)
        direct.append(await _ttft(serve, "", straight))
        await asyncio.sleep(0.1)
    return {**_figures(ttfts), "serve": _figures(direct)}


@dataclass(frozen=True)
class Flood:
    """What the bulk flood sends: ``clients`` requests of ``body`` in flight with ``secret``."""

    base_url: str
    secret: str
    body: dict[str, Any]
    clients: int


async def _drain(flood: Flood, stop: EventLike, answered: CounterLike) -> None:
    """The flood's requests back to back until ``stop``, each answer read to its end unparsed
    (``answered`` counts those that came back whole with status 200)."""
    headers = {"authorization": f"Bearer {flood.secret}"}
    body = flood.body
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=flood.clients)

    async def one(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            try:
                async with client.stream(
                    "POST", "/chat/completions", json=body, headers=headers
                ) as r:
                    async for _ in r.aiter_raw():
                        pass
                if r.status_code == 200:
                    with answered.get_lock():
                        answered.value += 1
            except httpx.HTTPError:
                await asyncio.sleep(0.1)

    async with httpx.AsyncClient(base_url=flood.base_url, timeout=900, limits=limits) as client:
        await asyncio.gather(*(one(client) for _ in range(flood.clients)))


def _flood_process(flood: Flood, stop: EventLike, answered: CounterLike) -> None:
    """The flood's own process: its answers never hold up the probes' event loop."""
    asyncio.run(_drain(flood, stop, answered))


@contextmanager
def _flood(flood: Flood) -> Iterator[CounterLike]:
    """A bulk flood in a process of its own while the block runs; its streams end with it.

    Yields the count of the flood's answers served whole so far.
    """
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    answered = spawn.Value("i", 0)
    process = spawn.Process(
        target=_flood_process,
        args=(flood, stop, answered),
        daemon=True,
    )
    process.start()
    try:
        yield answered
    finally:
        stop.set()
        process.terminate()  # the streams in flight are dropped: the gateway aborts them
        process.join(10)


async def _flooded(
    client: httpx.AsyncClient,
    serve: httpx.AsyncClient,
    args: argparse.Namespace,
    model: str,
    live: str,
    bulk: str,
    probes: int,
    *,
    stream: bool,
) -> dict[str, Any]:
    """Interactive probes while ``args.flood`` clients keep the engine full.

    The flood runs in a process of its own, so reading its answers does not delay the
    probes' clock; the probes are the only streams this process reads. Also returned:
    the bulk output tokens per second the flood got served while the probes ran (its
    whole answers in that time, each ``args.flood_tokens`` long).
    """
    body = _body(model, args.flood_tokens, stream=stream)
    with _flood(Flood(str(client.base_url), bulk, body, args.flood)) as answered:
        await asyncio.sleep(args.warm_seconds)  # the flood fills every slot and a queue
        before, started = answered.value, time.perf_counter()
        figures = await _probes(client, live, model, probes, serve)
        answers = answered.value - before
        seconds = time.perf_counter() - started
    bulk_tps = answers * args.flood_tokens / seconds if seconds else 0.0
    return {**figures, "flood_answers": answers, "flood_tokens_per_s": round(bulk_tps, 1)}


async def _capacity(
    client: httpx.AsyncClient, args: argparse.Namespace, model: str, secret: str
) -> dict[str, Any]:
    """Requests per second the engine completes with clients sending back to back."""
    done = 0
    deadline = time.perf_counter() + args.capacity_seconds
    started = time.perf_counter()

    async def client_loop() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            if await _ttft(client, secret, _body(model, args.fair_tokens)) is not None:
                done += 1

    await asyncio.gather(*(client_loop() for _ in range(args.capacity_clients)))
    elapsed = time.perf_counter() - started
    return {"completed": done, "seconds": round(elapsed, 1), "req_per_s": done / elapsed}


def _max_min_fair(capacity: float, offered: dict[str, float]) -> dict[str, float]:
    """Each tenant's max-min fair share of ``capacity`` (equal weights), in the offer's units."""
    share: dict[str, float] = {}
    left, tenants = capacity, sorted(offered, key=offered.__getitem__)
    for n, tenant in enumerate(tenants):
        share[tenant] = min(offered[tenant], left / (len(tenants) - n))
        left -= share[tenant]
    return share


async def _fairness(
    client: httpx.AsyncClient,
    args: argparse.Namespace,
    model: str,
    light: str,
    heavy: str,
    light_rate: float,
) -> dict[str, Any]:
    """Open-loop offers from two tenants; served = answered within the phase and its grace."""
    offered = {"light": 0, "heavy": 0}
    served = {"light": 0, "heavy": 0}
    tasks: list[asyncio.Task[None]] = []

    async def one(tenant: str, secret: str) -> None:
        if await _ttft(client, secret, _body(model, args.fair_tokens)) is not None:
            served[tenant] += 1

    async def offer(tenant: str, secret: str, rate: float) -> None:
        deadline = time.perf_counter() + args.fair_seconds
        while time.perf_counter() < deadline:
            offered[tenant] += 1
            tasks.append(asyncio.create_task(one(tenant, secret)))
            await asyncio.sleep(1 / rate)

    started = time.perf_counter()
    await asyncio.gather(
        offer("light", light, light_rate), offer("heavy", heavy, light_rate * args.heavy_factor)
    )
    _, pending = await asyncio.wait(tasks, timeout=args.grace_seconds) if tasks else ((), ())
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    seconds = time.perf_counter() - started
    ratios = {t: served[t] / offered[t] if offered[t] else 0.0 for t in offered}
    values = list(ratios.values())
    jain = sum(values) ** 2 / (len(values) * sum(v * v for v in values)) if any(values) else 0.0
    return {
        "light_rate": round(light_rate, 3),
        "seconds": round(seconds, 1),
        "offered": offered,
        "served": served,
        "served_over_offered": {t: round(r, 3) for t, r in ratios.items()},
        "jain_index": round(jain, 3),
    }


async def _run(
    args: argparse.Namespace,
    gateway: str,
    unshared: str,
    serve_url: str,
    model: str,
    prefix: str,
    other_share: str | None = None,
) -> dict[str, Any]:
    key = QuotaKey(args.redis_url, prefix)
    secrets = {
        "interactive": await key.create("live", PriorityClass.INTERACTIVE),
        "batch": await key.create("bulk", PriorityClass.BATCH),
        "live-standard": await key.create("live", PriorityClass.STANDARD),
        "bulk-standard": await key.create("bulk", PriorityClass.STANDARD),
        "light": await key.create("light", PriorityClass.STANDARD),
        "heavy": await key.create("heavy", PriorityClass.STANDARD),
    }
    s = {name: str(secret) for name, secret in secrets.items()}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    results: dict[str, Any] = {"flood_stream": args.flood_stream}
    async with (
        httpx.AsyncClient(base_url=gateway + "/v1", timeout=900, limits=limits) as client,
        httpx.AsyncClient(base_url=unshared + "/v1", timeout=900, limits=limits) as plain,
        httpx.AsyncClient(base_url=serve_url, timeout=900, limits=limits) as serve,
    ):
        await _ttft(client, s["interactive"], _body(model, 4))  # warm-up
        results["idle"] = await _probes(client, s["interactive"], model, args.probes, serve)
        live, bulk, n = s["interactive"], s["batch"], args.probes
        stream = args.flood_stream
        results["priority"] = await _flooded(
            client, serve, args, model, live, bulk, n, stream=stream
        )
        if other_share is not None:
            async with httpx.AsyncClient(
                base_url=other_share + "/v1", timeout=900, limits=limits
            ) as other:
                results[_other_phase(args)] = await _flooded(
                    other, serve, args, model, live, bulk, n, stream=stream
                )
        if "streamed" in args.phases and not stream:
            results["streamed"] = await _flooded(
                client, serve, args, model, live, bulk, n, stream=True
            )
        if "fcfs" in args.phases:
            results["fcfs"] = await _flooded(
                plain,
                serve,
                args,
                model,
                s["live-standard"],
                s["bulk-standard"],
                args.fcfs_probes,
                stream=stream,
            )
        if "fairness" in args.phases:
            light_rate = args.light_rate
            if light_rate is None:
                results["capacity"] = await _capacity(client, args, model, s["light"])
                capacity = results["capacity"]["req_per_s"]
                # Answers count until the grace ends, so the offer is over the capacity of
                # that whole window, not only of the seconds it is made in.
                window = (args.fair_seconds + args.grace_seconds) / args.fair_seconds
                light_rate = capacity * window * args.overload / (1 + args.heavy_factor)
            results["fairness"] = await _fairness(
                client, args, model, s["light"], s["heavy"], light_rate
            )
    await key.delete_all()
    return results


def _other_phase(args: argparse.Namespace) -> str:
    return f"batch={args.also_batch_fraction:g}"


def report(results: dict[str, Any]) -> None:
    idle_p99 = results["idle"]["ttft_p99_ms"]
    serve_idle_p99 = results["idle"]["serve"]["ttft_p99_ms"]
    print(
        f"{'phase':<12}{'probes':>7}{'errors':>7}{'TTFT p50':>10}{'TTFT p99':>10}"
        f"{'x idle p99':>12}{'bulk tok/s':>12}"
        f"   straight to Serve: {'p50':>7}{'p99':>9}{'x idle p99':>12}"
    )
    others = [p for p in results if p.startswith("batch=")]
    for phase in ("idle", "priority", *others, "streamed", "fcfs"):
        if phase not in results:
            continue
        f, d = results[phase], results[phase]["serve"]
        ratio = f["ttft_p99_ms"] / idle_p99 if idle_p99 else float("nan")
        serve_ratio = d["ttft_p99_ms"] / serve_idle_p99 if serve_idle_p99 else float("nan")
        print(
            f"{phase:<12}{f['probes']:>7}{f['errors']:>7}{f['ttft_p50_ms']:>10}"
            f"{f['ttft_p99_ms']:>10}{ratio:>12.2f}{f.get('flood_tokens_per_s', ''):>12}"
            f"   {'':>19}{d['ttft_p50_ms']:>7}{d['ttft_p99_ms']:>9}{serve_ratio:>12.2f}"
        )
    flood = "streamed" if results.get("flood_stream") else "whole answers"
    for phase, what in (
        ("priority", flood),
        *((o, flood) for o in others),
        ("streamed", "streamed"),
    ):
        if phase not in results:
            continue
        ratio = results[phase]["ttft_p99_ms"] / idle_p99 if idle_p99 else float("nan")
        verdict = "PASS" if ratio <= TTFT_TARGET else "FAIL"
        print(
            f"target: {phase} p99 (flood of {what}) <= {TTFT_TARGET}x idle p99: "
            f"{ratio:.2f}x {verdict}"
        )
    if "fairness" not in results:
        return
    fair = results["fairness"]
    if "capacity" in results:
        cap = results["capacity"]
        print(
            f"capacity: {cap['completed']} answers in {cap['seconds']} s = "
            f"{cap['req_per_s']:.3f} req/s; light tenant offered {fair['light_rate']} req/s"
        )
        offered = {t: float(n) for t, n in fair["offered"].items()}
        fair_share = _max_min_fair(cap["req_per_s"] * fair["seconds"], offered)
        rounded = {t: round(v) for t, v in fair_share.items()}
        print(
            f"max-min fair answers in the phase's {fair['seconds']} s at that capacity: {rounded}"
        )
    light = fair["served_over_offered"]["light"]
    ok = light >= LIGHT_SERVED_TARGET and fair["jain_index"] >= JAIN_TARGET
    print(
        f"fairness: offered {fair['offered']}, served {fair['served']}, "
        f"served/offered {fair['served_over_offered']}, Jain's index {fair['jain_index']} "
        f"(targets: light >= {LIGHT_SERVED_TARGET}, Jain >= {JAIN_TARGET}) "
        f"{'PASS' if ok else 'FAIL'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu-text", help="catalog profile (first variant)")
    parser.add_argument("--probes", type=int, default=20, help="interactive streams per phase")
    parser.add_argument(
        "--fcfs-probes",
        type=int,
        default=5,
        help="interactive streams in the fcfs phase (each waits behind the whole flood)",
    )
    parser.add_argument("--flood", type=int, default=16, help="concurrent bulk clients")
    parser.add_argument("--flood-tokens", type=int, default=200)
    parser.add_argument(
        "--flood-stream",
        action="store_true",
        help="the flood streams its answers (default: whole answers, as Batch API lines)",
    )
    parser.add_argument("--warm-seconds", type=float, default=5.0)
    parser.add_argument(
        "--phases",
        nargs="*",
        choices=("streamed", "fcfs", "fairness"),
        default=["streamed", "fcfs", "fairness"],
        help="phases after idle and priority (both always run)",
    )
    parser.add_argument(
        "--light-rate",
        type=float,
        default=None,
        help="light tenant's req/s (default: from the measured capacity and --overload)",
    )
    parser.add_argument("--heavy-factor", type=float, default=10.0)
    parser.add_argument(
        "--overload", type=float, default=1.5, help="both tenants' offer over the capacity"
    )
    parser.add_argument("--capacity-clients", type=int, default=8)
    parser.add_argument("--capacity-seconds", type=float, default=30.0)
    parser.add_argument("--fair-tokens", type=int, default=64)
    parser.add_argument("--fair-seconds", type=float, default=60.0)
    parser.add_argument("--grace-seconds", type=float, default=30.0)
    parser.add_argument(
        "--batch-fraction",
        type=float,
        default=FairShareSettings().batch_fraction,
        help="share of a model's slots the batch class may hold (the gateway's setting)",
    )
    parser.add_argument(
        "--also-batch-fraction",
        type=float,
        default=None,
        help="repeat the priority phase through a gateway with this batch fraction",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    _, _, model = engine_command(args.profile, 0)
    prefix = f"gs-bench-priority-{uuid.uuid4().hex[:8]}:"
    with serve_app(args.profile) as serve_url:
        env = {
            "GATEWAY_UPSTREAM_URL": serve_url.removesuffix("/v1"),
            "GATEWAY_QUOTA__REDIS_URL": args.redis_url,
            "GATEWAY_QUOTA__KEY_PREFIX": prefix,
            "GATEWAY_FAIR_SHARE__BATCH_FRACTION": str(args.batch_fraction),
        }
        ports = free_port(), free_port(), free_port()
        gateway, unshared, other = (f"http://127.0.0.1:{p}" for p in ports)
        uvicorn = ["-m", "uvicorn", "--factory", "gateway.app:create_app_from_env"]
        quiet = ["--log-level", "warning", "--no-access-log"]
        commands = [[*uvicorn, "--port", str(p), *quiet] for p in ports]
        cores = set(os.sched_getaffinity(0))
        off = {**env, "GATEWAY_FAIR_SHARE__ENABLED": "false"}
        with ExitStack() as stack:
            stack.enter_context(
                python_process(commands[0], cores=cores, ready_url=gateway + "/healthz", env=env)
            )
            stack.enter_context(
                python_process(commands[1], cores=cores, ready_url=unshared + "/healthz", env=off)
            )
            other_share = None
            if args.also_batch_fraction is not None:
                fraction = str(args.also_batch_fraction)
                shared = {**env, "GATEWAY_FAIR_SHARE__BATCH_FRACTION": fraction}
                stack.enter_context(
                    python_process(
                        commands[2], cores=cores, ready_url=other + "/healthz", env=shared
                    )
                )
                other_share = other
            results = asyncio.run(
                _run(args, gateway, unshared, serve_url, model, prefix, other_share)
            )
    report(results)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"priority_isolation-{stamp}.json"
    config = {**vars(args), "python": platform.python_version()}
    path.write_text(json.dumps({"config": config, "results": results}, indent=2) + "\n")
    print(f"written: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
