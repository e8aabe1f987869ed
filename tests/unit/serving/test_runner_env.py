"""The local stack's host settings: OOM score inherited by children, Ray's memory monitor off."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from serving.engine import runs_worker_in_process
from serving.runner import LOCAL_RAY_ENV, STACK_OOM_SCORE_ADJ

CHILD_READS_ITS_SCORE = (
    "import subprocess, sys\n"
    "from serving.runner import protect_from_oom\n"
    "print(protect_from_oom())\n"
    "subprocess.run(['cat', '/proc/self/oom_score_adj'], check=True)\n"
)


def _may_lower_oom_scores() -> bool:
    """Whether this process holds CAP_SYS_RESOURCE (bit 24 of its effective capabilities)."""
    lines = Path("/proc/self/status").read_text().splitlines()
    status = dict(line.split(":\t", 1) for line in lines)
    return bool(int(status["CapEff"], 16) >> 24 & 1)


def test_oom_score_is_lowered_for_children_where_permitted_else_left_alone() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD_READS_ITS_SCORE], capture_output=True, text=True, check=True
    )
    before = Path("/proc/self/oom_score_adj").read_text().strip()
    if _may_lower_oom_scores():
        assert done.stdout.split() == ["True", str(STACK_OOM_SCORE_ADJ)]
    else:
        assert done.stdout.split() == ["False", before]


def test_ray_memory_monitor_is_off_and_usage_stats_stay_local() -> None:
    assert LOCAL_RAY_ENV["RAY_memory_monitor_refresh_ms"] == "0"
    assert LOCAL_RAY_ENV["RAY_USAGE_STATS_ENABLED"] == "0"


def _config(device: str, world_size: int) -> Any:
    return SimpleNamespace(
        device_config=SimpleNamespace(device_type=device),
        parallel_config=SimpleNamespace(world_size=world_size),
    )


@pytest.mark.parametrize(
    ("device", "world_size", "in_process"),
    [("cpu", 1, True), ("cpu", 2, False), ("cuda", 1, False), ("cuda", 4, False)],
)
def test_only_single_worker_cpu_engines_run_the_worker_in_the_engine_core(
    device: str, world_size: int, in_process: bool
) -> None:
    assert runs_worker_in_process(_config(device, world_size)) is in_process
