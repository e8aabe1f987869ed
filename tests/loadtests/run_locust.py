"""Run the locustfile headless in a subprocess and read its CSV stats."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
MIX = "stream=2,chat=1,tools=1,image=1,audio=1"
Rows = dict[tuple[str, str], dict[str, str]]


def run_locust(
    host: str,
    csv_prefix: Path,
    *,
    seconds: int = 5,
    users: int = 2,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).parent / "locust"),
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(users),
        "-t",
        f"{seconds}s",
        "--host",
        host,
        "--csv",
        str(csv_prefix),
        "--only-summary",
        "--stop-timeout",
        "10",
    ]
    full_env = {
        **os.environ,
        "GEMMA_LOADTEST_MIX": MIX,
        "GEMMA_LOADTEST_SHAPE": "none",
        "GEMMA_LOADTEST_WAIT_MIN": "0",
        "GEMMA_LOADTEST_WAIT_MAX": "0.01",
    }
    full_env |= env or {}
    return subprocess.run(
        command, env=full_env, capture_output=True, text=True, timeout=120, check=False
    )


def stats_rows(csv_prefix: Path) -> Rows:
    """``{(Type, Name): row}`` of locust's ``<prefix>_stats.csv``."""
    path = csv_prefix.parent / f"{csv_prefix.name}_stats.csv"
    with path.open(newline="") as handle:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(handle)}


def count(rows: Rows, kind: str, column: str) -> int:
    return sum(int(row[column]) for (t, _), row in rows.items() if t == kind)
