"""Load shape plans and the locust shape class built from the settings."""

from __future__ import annotations

import pytest

from loadtests.settings import LoadtestSettings
from loadtests.shapes import Ramp, Spike, Step, plan_for


def test_ramp_grows_holds_and_stops() -> None:
    ramp = Ramp(users=10, ramp_seconds=10, hold_seconds=5)
    assert ramp.at(0) == (1, 1.0)
    assert ramp.at(4.5) == (5, 1.0)
    assert ramp.at(12) == (10, 1.0)
    assert ramp.at(15) is None


def test_step_adds_users_per_step() -> None:
    step = Step(users=5, step_users=2, step_seconds=10, spawn_rate=4)
    assert [step.at(t) for t in (0, 10, 25)] == [(2, 4), (4, 4), (5, 4)]
    assert step.at(30) is None


def test_spike_rises_and_falls_back() -> None:
    spike = Spike(users=2, spike_users=20, base_seconds=10, spike_seconds=5)
    assert [spike.at(t) for t in (0, 11, 16)] == [(2, 2.0), (20, 20.0), (2, 20.0)]
    assert spike.at(25) is None


def test_soak_lasts_its_whole_length() -> None:
    plan = plan_for(LoadtestSettings(shape="soak", users=8, ramp_seconds=60, soak_seconds=600))
    assert plan is not None
    assert plan.at(599) == (8, 1.0)
    assert plan.at(600) is None


def test_no_shape_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMMA_LOADTEST_SHAPE", raising=False)
    assert plan_for(LoadtestSettings()) is None


def test_shape_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMMA_LOADTEST_SHAPE", "spike")
    monkeypatch.setenv("GEMMA_LOADTEST_SPIKE_USERS", "30")
    assert plan_for(LoadtestSettings()) == Spike(10, 30, 60.0, 20.0)
