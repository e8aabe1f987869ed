"""Samples a process's RSS and open TCP connections over a soak run and says if they stayed flat.

    .venv/bin/python loadtests/soak_sampler.py --port 8080 --duration 660 --interval 5

The process is given by ``--pid`` or by the ``--port`` it listens on. Every sample is
printed and all are written to results/loadtest/soak-<time>.json. "Flat" compares the
median of the last fifth of the samples with the first fifth (after ``--settle`` seconds
of warm-up): RSS may grow by at most ``--rss-growth`` (default 10%) and open connections
by at most ``--conn-growth`` (default 20%, plus 5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

RESULTS = Path(__file__).resolve().parent.parent / "results" / "loadtest"


@dataclass(frozen=True)
class Sample:
    seconds: float
    rss_mb: float
    connections: int


@dataclass(frozen=True)
class Verdict:
    rss_start_mb: float
    rss_end_mb: float
    conn_start: float
    conn_end: float
    rss_flat: bool
    connections_flat: bool

    @property
    def flat(self) -> bool:
        return self.rss_flat and self.connections_flat


def verdict(
    samples: list[Sample], *, rss_growth: float = 0.10, conn_growth: float = 0.20
) -> Verdict:
    """Compare the first and last fifth of ``samples`` (at least five samples)."""
    if len(samples) < 5:
        raise ValueError("need at least five samples")
    fifth = max(1, len(samples) // 5)
    head, tail = samples[:fifth], samples[-fifth:]
    rss0 = statistics.median(s.rss_mb for s in head)
    rss1 = statistics.median(s.rss_mb for s in tail)
    conn0 = statistics.median(s.connections for s in head)
    conn1 = statistics.median(s.connections for s in tail)
    return Verdict(
        rss_start_mb=rss0,
        rss_end_mb=rss1,
        conn_start=conn0,
        conn_end=conn1,
        rss_flat=rss1 <= rss0 * (1 + rss_growth),
        connections_flat=conn1 <= conn0 * (1 + conn_growth) + 5,
    )


def process_on_port(port: int) -> psutil.Process:
    for conn in psutil.net_connections(kind="tcp"):
        listening = conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
        if listening and conn.pid is not None:
            return psutil.Process(conn.pid)
    raise SystemExit(f"no process of this user listens on port {port}")


def sample(process: psutil.Process, started: float) -> Sample:
    connections = [
        c for c in process.net_connections(kind="tcp") if c.status == psutil.CONN_ESTABLISHED
    ]
    rss = process.memory_info().rss / 2**20
    return Sample(round(time.monotonic() - started, 1), round(rss, 1), len(connections))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--pid", type=int)
    target.add_argument("--port", type=int, help="find the process listening on this port")
    parser.add_argument("--duration", type=float, default=660.0, help="seconds to sample")
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--settle", type=float, default=30.0, help="seconds left out at start")
    parser.add_argument("--rss-growth", type=float, default=0.10)
    parser.add_argument("--conn-growth", type=float, default=0.20)
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    process = psutil.Process(args.pid) if args.pid else process_on_port(args.port)
    started = time.monotonic()
    samples: list[Sample] = []
    while time.monotonic() - started < args.duration and process.is_running():
        now = sample(process, started)
        print(f"{now.seconds:>8.1f}s  rss {now.rss_mb:>8.1f} MB  connections {now.connections}")
        if now.seconds >= args.settle:
            samples.append(now)
        time.sleep(args.interval)
    result = verdict(samples, rss_growth=args.rss_growth, conn_growth=args.conn_growth)
    print(
        f"RSS {result.rss_start_mb:.1f} -> {result.rss_end_mb:.1f} MB "
        f"({'flat' if result.rss_flat else 'GREW'}); connections {result.conn_start:.0f} -> "
        f"{result.conn_end:.0f} ({'flat' if result.connections_flat else 'GREW'})"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"soak-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    payload = {
        "pid": process.pid,
        "samples": [asdict(s) for s in samples],
        "verdict": {**asdict(result), "flat": result.flat},
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written: {path}")
    sys.exit(0 if result.flat else 1)


if __name__ == "__main__":
    main()
