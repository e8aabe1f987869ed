"""Load shape plans: ramp, step, spike and the 10-minute soak.

A plan is a pure function of the run time: ``(users, spawn_rate)``, or ``None`` to stop.
``plan_for(settings)`` picks the one ``GEMMA_LOADTEST_SHAPE`` names; the locustfile wraps it
in a ``LoadTestShape`` (this module does not import locust, whose import patches the
standard library with gevent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from loadtests.settings import LoadtestSettings

Stage = tuple[int, float]


class Plan(Protocol):
    def at(self, seconds: float) -> Stage | None:
        """Users and spawn rate at ``seconds`` into the run; ``None`` once it is over."""
        ...


@dataclass(frozen=True)
class Ramp:
    """Grow linearly to ``users`` over ``ramp_seconds``, hold ``hold_seconds``, stop."""

    users: int
    ramp_seconds: float
    hold_seconds: float

    def at(self, seconds: float) -> Stage | None:
        if seconds >= self.ramp_seconds + self.hold_seconds:
            return None
        rate = self.users / self.ramp_seconds
        grown = min(self.users, max(1, math.ceil(seconds * rate)))
        return grown, max(rate, 1.0)


@dataclass(frozen=True)
class Step:
    """Add ``step_users`` every ``step_seconds`` until ``users``; stop after the last step."""

    users: int
    step_users: int
    step_seconds: float
    spawn_rate: float

    def at(self, seconds: float) -> Stage | None:
        steps = math.ceil(self.users / self.step_users)
        current = int(seconds // self.step_seconds)
        if current >= steps:
            return None
        return min(self.users, (current + 1) * self.step_users), self.spawn_rate


@dataclass(frozen=True)
class Spike:
    """``users`` for ``base_seconds``, ``spike_users`` for ``spike_seconds``, ``users`` again."""

    users: int
    spike_users: int
    base_seconds: float
    spike_seconds: float

    def at(self, seconds: float) -> Stage | None:
        if seconds < self.base_seconds:
            return self.users, float(self.users)
        if seconds < self.base_seconds + self.spike_seconds:
            return self.spike_users, float(self.spike_users)
        if seconds < 2 * self.base_seconds + self.spike_seconds:
            return self.users, float(self.spike_users)
        return None


def plan_for(settings: LoadtestSettings) -> Plan | None:
    s = settings
    if s.shape == "ramp":
        return Ramp(s.users, s.ramp_seconds, s.hold_seconds)
    if s.shape == "soak":
        return Ramp(s.users, s.ramp_seconds, max(0.0, s.soak_seconds - s.ramp_seconds))
    if s.shape == "step":
        return Step(s.users, s.step_users, s.step_seconds, s.spawn_rate)
    if s.shape == "spike":
        return Spike(s.users, s.spike_users, s.base_seconds, s.spike_seconds)
    return None
