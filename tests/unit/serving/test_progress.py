"""Engine progress lines: one per change of phase, with the seconds since the start."""

from __future__ import annotations

import pytest

from serving.progress import EngineProgress, phase


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("UPDATING", "loading"),
        ("HEALTHY", "ready"),
        ("UPSCALING", "ready"),
        ("DEPLOY_FAILED", "failed"),
        ("UNHEALTHY", "failed"),
    ],
)
def test_serve_statuses_map_to_phases(status: str, expected: str) -> None:
    assert phase(status) == expected


def test_a_line_per_change_of_phase_only() -> None:
    lines: list[str] = []
    progress = EngineProgress(lines.append, started=0.0)
    progress.update({"gemma-3-270m": ("UPDATING", ""), "tiny": ("UPDATING", "")})
    progress.update({"gemma-3-270m": ("UPDATING", ""), "tiny": ("UPDATING", "")})
    progress.update({"gemma-3-270m": ("HEALTHY", ""), "tiny": ("DEPLOY_FAILED", "boom\nmore")})
    assert [line.split()[:2] for line in lines] == [
        ["gemma-3-270m", "loading"],
        ["tiny", "loading"],
        ["gemma-3-270m", "ready"],
        ["tiny", "failed"],
    ]
    assert "boom" in lines[-1]
    assert "more" not in lines[-1]
    assert lines[2].endswith(" s")
