"""What the gateway adds to a request: latency beside a bare upstream, and req/s per core.

One run sends the same streamed chat request to

    upstream   a fast local OpenAI-compatible server with a fixed answer (fast_upstream)
    gateway    the gateway in front of it: auth + quotas (Redis) + routing (model "auto")
               + the streaming relay, served by uvicorn in its own process on one core

first one at a time (latency: p50/p99 and what the gateway adds) and then over many
connections for a fixed time (throughput, and the gateway's req/s per CPU-second it used).
The gateway runs pinned to ``--gateway-core``; this process (the load generator) and the
upstream share ``--load-core``. Figures are printed with PASS/FAIL against the targets
(adds at most 1 ms p50 and 5 ms p99, at least 1000 req/s per gateway core) and written to
results/benchmarks/gateway_overhead-<time>.json.

Quotas need Redis (``--redis-url``, default the local one); the run files one API key
with no limits under a unique key prefix and deletes every key under that prefix at the
end. ``--no-quotas`` runs the gateway with quotas off. Extra gateway settings (tracing,
for one: ``OTEL_EXPORTER_OTLP_ENDPOINT``) go through ``--gateway-env NAME=value``.

``--floor`` adds ``bare_relay``: the same server, framework and client relaying the request
and nothing else (no keys, quotas, routing or tracing), the floor the libraries set on the
machine at hand; what the gateway adds over it is its own work.
``--litellm`` adds a LiteLLM proxy in front of the same upstream (litellm_proxy: its own
venv under ~/.cache, one worker, no database), measured after the gateway in the same run
with the same phases and load, on the same core; its rows are printed beside the others,
with no verdicts.

    .venv/bin/python benchmarks/gateway_overhead.py [--requests 2000] [--seconds 10]
        [--floor] [--litellm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from benchmarks import bare_relay, litellm_proxy
from benchmarks.http_load import LoadResult, build_request, run_count, run_for
from benchmarks.processes import ROOT, free_port, pin, python_process
from benchmarks.quota_key import QuotaKey

RESULTS = ROOT / "results" / "benchmarks"
TARGETS = {"added_p50_ms": 1.0, "added_p99_ms": 5.0, "gateway_rps_per_core": 1000.0}


def _body(model: str) -> bytes:
    messages = [{"role": "user", "content": "Say hello in five words."}]
    body = {"model": model, "messages": messages, "max_tokens": 16, "stream": True}
    return json.dumps(body).encode()


@dataclass
class Phase:
    name: str
    result: LoadResult
    cpu_seconds: float | None = None

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "requests": len(self.result.latencies),
            "errors": self.result.errors,
            "seconds": round(self.result.seconds, 3),
            "p50_ms": round(self.result.percentile_ms(0.50), 3),
            "p99_ms": round(self.result.percentile_ms(0.99), 3),
            "requests_per_second": round(self.result.requests_per_second, 1),
        }
        if self.cpu_seconds:
            data["cpu_seconds"] = round(self.cpu_seconds, 3)
            data["requests_per_cpu_second"] = round(len(self.result.latencies) / self.cpu_seconds)
        return data


def _cpu(pid: int) -> float:
    """CPU seconds used by the process ``pid`` and its children (workers, if it forks any)."""
    root = psutil.Process(pid)
    times = [p.cpu_times() for p in [root, *root.children(recursive=True)]]
    return sum(float(t.user + t.system) for t in times)


def _uvicorn(factory: str, port: int) -> list[str]:
    """Arguments of a quiet uvicorn serving the app ``factory`` builds, on ``port``."""
    quiet = ["--log-level", "warning", "--no-access-log"]
    return ["-m", "uvicorn", "--factory", factory, "--port", str(port), *quiet]


async def _warm(url: str, raw: bytes, requests: int) -> None:
    warm = await run_count(url, raw, concurrency=4, requests=requests)
    if warm.errors:
        raise SystemExit(f"{url} answered {warm.errors} warm-up requests with errors")


async def _loaded(name: str, url: str, raw: bytes, pid: int, args: argparse.Namespace) -> Phase:
    """The throughput phase, with the CPU seconds the process tree of ``pid`` used in it."""
    before = _cpu(pid)
    result = await run_for(url, raw, concurrency=args.concurrency, seconds=args.seconds)
    return Phase(f"{name} c={args.concurrency}", result, _cpu(pid) - before)


async def _measure(
    args: argparse.Namespace, upstream: str, gateway: str, gateway_pid: int, auth: dict[str, str]
) -> list[Phase]:
    direct = build_request(upstream + "/v1/chat/completions", _body("gemma-3-270m"))
    routed = build_request(gateway + "/v1/chat/completions", _body("auto"), auth)
    for raw, url in ((direct, upstream), (routed, gateway)):
        await _warm(url, raw, args.warmup)
    phases = [
        Phase(
            "upstream c=1", await run_count(upstream, direct, concurrency=1, requests=args.requests)
        ),
        Phase(
            "gateway c=1", await run_count(gateway, routed, concurrency=1, requests=args.requests)
        ),
    ]
    c = args.concurrency
    phases.append(
        Phase(
            f"upstream c={c}", await run_for(upstream, direct, concurrency=c, seconds=args.seconds)
        )
    )
    phases.append(await _loaded("gateway", gateway, routed, gateway_pid, args))
    return phases


async def _measure_beside(
    name: str, args: argparse.Namespace, url: str, raw: bytes, pid: int
) -> list[Phase]:
    """The gateway's phases and load against another proxy (no verdicts)."""
    await _warm(url, raw, args.warmup)
    alone = await run_count(url, raw, concurrency=1, requests=args.requests)
    return [Phase(f"{name} c=1", alone), await _loaded(name, url, raw, pid, args)]


async def _measure_floor(args: argparse.Namespace, upstream: str, core: int) -> list[Phase]:
    """The same phases against ``bare_relay``: uvicorn, FastAPI and aiohttp doing nothing else."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    raw = build_request(url + "/v1/chat/completions", _body("gemma-3-270m"))
    command = _uvicorn("benchmarks.bare_relay:create_app", port)
    env = {bare_relay.UPSTREAM_ENV: upstream}
    with python_process(command, cores={core}, ready_url=url + "/healthz", env=env) as process:
        return await _measure_beside("floor", args, url, raw, process.pid)


async def _measure_litellm(
    args: argparse.Namespace, venv: Path, upstream: str, core: int
) -> list[Phase]:
    """The gateway's phases and load against a LiteLLM proxy in front of the same upstream."""
    port = free_port()
    proxy = f"http://127.0.0.1:{port}"
    auth = {"authorization": f"Bearer {litellm_proxy.MASTER_KEY}"}
    raw = build_request(proxy + "/v1/chat/completions", _body(litellm_proxy.MODEL), auth)
    with litellm_proxy.litellm_proxy(venv, upstream, port, core=core) as process:
        return await _measure_beside("litellm", args, proxy, raw, process.pid)


def _figures(who: str, upstream: Phase, alone: Phase, loaded: Phase) -> dict[str, Any]:
    """What ``who`` adds to the upstream's latency at c=1, and its req/s per CPU-second."""
    up, one = upstream.summary(), alone.summary()
    return {
        "added_p50_ms": round(one["p50_ms"] - up["p50_ms"], 3),
        "added_p99_ms": round(one["p99_ms"] - up["p99_ms"], 3),
        f"{who}_rps_per_core": loaded.summary().get("requests_per_cpu_second", 0),
    }


def _verdicts(phases: list[Phase]) -> dict[str, Any]:
    figures = _figures("gateway", phases[0], phases[1], phases[3])
    return {
        name: {
            "value": value,
            "target": TARGETS[name],
            "pass": value >= TARGETS[name] if name.endswith("per_core") else value <= TARGETS[name],
        }
        for name, value in figures.items()
    }


def _print(
    phases: list[Phase],
    verdicts: dict[str, Any],
    config: dict[str, Any],
    beside: dict[str, dict[str, Any]],
) -> None:
    print(f"gateway: {config['gateway']}")
    for name in beside:
        print(f"{name}: {config[name]}")
    print(
        f"{'phase':<18}{'requests':>9}{'errors':>8}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}"
        f"{'req/CPU-s':>11}"
    )
    for phase in phases:
        s = phase.summary()
        per_cpu = s.get("requests_per_cpu_second", "")
        print(
            f"{phase.name:<18}{s['requests']:>9}{s['errors']:>8}{s['p50_ms']:>9.3f}"
            f"{s['p99_ms']:>9.3f}{s['requests_per_second']:>9.0f}{per_cpu!s:>11}"
        )
    for name, v in verdicts.items():
        sign = ">=" if name.endswith("per_core") else "<="
        verdict = "PASS" if v["pass"] else "FAIL"
        print(f"{name:<22}{v['value']:>10}   target {sign} {v['target']:<8} {verdict}")
    for who, figures in beside.items():
        for name, value in figures.items():
            label = f"{who} {name.removeprefix(who + '_')}"
            print(f"{label:<22}{value:>10}   no target (comparison)")


def _tracing_note(env: dict[str, str]) -> str:
    """The gateway always makes spans; it exports them only when ``OTEL_*`` says where."""
    merged = {**os.environ, **env}
    endpoint = merged.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or merged.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    return f"spans on, OTLP export to {endpoint}" if endpoint else "spans on, no export"


def _gateway_env(
    args: argparse.Namespace, upstream: str, prefix: str
) -> tuple[dict[str, str], str]:
    env = {
        "GATEWAY_UPSTREAM_URL": upstream,
        "GATEWAY_QUOTA__ENABLED": "false" if args.no_quotas else "true",
        "GATEWAY_QUOTA__REDIS_URL": args.redis_url,
        "GATEWAY_QUOTA__KEY_PREFIX": prefix,
    }
    env |= dict(item.split("=", 1) for item in args.gateway_env)
    tracing_note = _tracing_note(env)
    quotas = "off" if args.no_quotas else f"on (Redis {args.redis_url})"
    return env, f"auth+quotas {quotas}, routing model=auto, tracing {tracing_note}"


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    pin({args.load_core})
    up_port, gw_port = free_port(), free_port()
    upstream, gateway = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{gw_port}"
    prefix = f"gs-bench-{uuid.uuid4().hex[:8]}:"
    env, description = _gateway_env(args, upstream, prefix)
    key = QuotaKey(args.redis_url, prefix, enabled=not args.no_quotas)
    secret = await key.create()
    auth = {"authorization": f"Bearer {secret}"} if secret else {}
    upstream_args = ["-m", "benchmarks.fast_upstream", "--port", str(up_port)]
    gateway_args = _uvicorn("gateway.app:create_app_from_env", gw_port)
    venv = litellm_proxy.ensure_venv(args.litellm_version) if args.litellm else None
    beside: dict[str, list[Phase]] = {}
    try:
        with python_process(
            upstream_args, cores={args.load_core}, ready_url=upstream + "/v1/models"
        ):
            with python_process(
                gateway_args, cores={args.gateway_core}, ready_url=gateway + "/healthz", env=env
            ) as gw:
                phases = await _measure(args, upstream, gateway, gw.pid, auth)
            if args.floor:
                beside["floor"] = await _measure_floor(args, upstream, args.gateway_core)
            if venv:
                beside["litellm"] = await _measure_litellm(args, venv, upstream, args.gateway_core)
    finally:
        await key.delete_all()
    config = {
        "gateway": description,
        "concurrency": args.concurrency,
        "gateway_core": args.gateway_core,
        "load_core": args.load_core,
    }
    if args.floor:
        config["floor"] = "uvicorn + FastAPI + aiohttp relaying only (benchmarks/bare_relay.py)"
    if venv:
        config["litellm"] = f"LiteLLM {args.litellm_version} proxy, 1 worker, no DB, master key"
    verdicts = _verdicts(phases)
    figures = {name: _figures(name, phases[0], *pair[:2]) for name, pair in beside.items()}
    phases += [phase for pair in beside.values() for phase in pair]
    _print(phases, verdicts, config, figures)
    return {
        "config": config,
        "phases": {p.name: p.summary() for p in phases},
        "verdicts": verdicts,
        **figures,
    }


def _write(result: dict[str, Any]) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    result["machine"] = {
        "python": platform.python_version(),
        "cpus": psutil.cpu_count(),
        "load_average": list(psutil.getloadavg()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"gateway_overhead-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per latency phase")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput phase")
    parser.add_argument("--concurrency", type=int, default=32, help="of the throughput phases")
    parser.add_argument("--gateway-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--no-quotas", action="store_true", help="gateway with quotas off")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--floor", action="store_true", help="add rows for a relay doing nothing else"
    )
    parser.add_argument("--litellm", action="store_true", help="add a LiteLLM proxy's rows")
    parser.add_argument("--litellm-version", default=litellm_proxy.VERSION)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    path = _write(asyncio.run(_run(args)))
    print(f"written: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
