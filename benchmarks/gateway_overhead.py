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

    .venv/bin/python benchmarks/gateway_overhead.py [--requests 2000] [--seconds 10]
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
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def _measure(
    args: argparse.Namespace, upstream: str, gateway: str, gateway_pid: int, auth: dict[str, str]
) -> list[Phase]:
    direct = build_request(upstream + "/v1/chat/completions", _body("gemma-3-270m"))
    routed = build_request(gateway + "/v1/chat/completions", _body("auto"), auth)
    for raw, url in ((direct, upstream), (routed, gateway)):
        warm = await run_count(url, raw, concurrency=4, requests=args.warmup)
        if warm.errors:
            raise SystemExit(f"{url} answered {warm.errors} warm-up requests with errors")
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
    before = _cpu(gateway_pid)
    loaded = await run_for(gateway, routed, concurrency=c, seconds=args.seconds)
    phases.append(Phase(f"gateway c={c}", loaded, _cpu(gateway_pid) - before))
    return phases


def _verdicts(phases: list[Phase]) -> dict[str, Any]:
    up, gw, _, loaded = (p.summary() for p in phases)
    figures = {
        "added_p50_ms": round(gw["p50_ms"] - up["p50_ms"], 3),
        "added_p99_ms": round(gw["p99_ms"] - up["p99_ms"], 3),
        "gateway_rps_per_core": loaded.get("requests_per_cpu_second", 0),
    }
    return {
        name: {
            "value": value,
            "target": TARGETS[name],
            "pass": value >= TARGETS[name] if name.endswith("per_core") else value <= TARGETS[name],
        }
        for name, value in figures.items()
    }


def _print(phases: list[Phase], verdicts: dict[str, Any], config: dict[str, Any]) -> None:
    print(f"gateway: {config['gateway']}")
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
    gateway_args = [
        "-m",
        "uvicorn",
        "--factory",
        "gateway.app:create_app_from_env",
        "--port",
        str(gw_port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    try:
        with (
            python_process(
                upstream_args, cores={args.load_core}, ready_url=upstream + "/v1/models"
            ),
            python_process(
                gateway_args, cores={args.gateway_core}, ready_url=gateway + "/healthz", env=env
            ) as gw,
        ):
            phases = await _measure(args, upstream, gateway, gw.pid, auth)
    finally:
        await key.delete_all()
    config = {
        "gateway": description,
        "concurrency": args.concurrency,
        "gateway_core": args.gateway_core,
        "load_core": args.load_core,
    }
    verdicts = _verdicts(phases)
    _print(phases, verdicts, config)
    return {"config": config, "phases": {p.name: p.summary() for p in phases}, "verdicts": verdicts}


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
