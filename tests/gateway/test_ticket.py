"""``Ticket.renewing``: the lease is renewed on time while the body runs, and never after."""

from __future__ import annotations

import asyncio

import pytest

from gateway.auth import OpenGate
from gateway.quotas.protocol import Admission
from gateway.ticket import Ticket

pytestmark = pytest.mark.anyio


class RecordingGate(OpenGate):
    """Admits everything and counts renewals; ``fail`` makes renewals raise."""

    def __init__(self, fail: bool = False) -> None:
        self.renewals = 0
        self.fail = fail

    async def renew(self, admission: Admission) -> None:
        self.renewals += 1
        if self.fail:
            raise ConnectionError("backend down")


def _ticket(gate: RecordingGate) -> Ticket:
    return Ticket(gate, Admission("key", "model", "lease", 10), timeout=1.0)


async def test_renews_every_interval_while_the_body_runs_and_stops_after() -> None:
    gate = RecordingGate()
    async with _ticket(gate).renewing(0.05):
        await asyncio.sleep(0.28)
    renewed = gate.renewals
    assert renewed >= 2
    await asyncio.sleep(0.2)
    assert gate.renewals == renewed


async def test_a_short_body_never_renews() -> None:
    gate = RecordingGate()
    async with _ticket(gate).renewing(0.5):
        await asyncio.sleep(0)
    await asyncio.sleep(0.6)
    assert gate.renewals == 0


async def _failing_body(ticket: Ticket) -> None:
    async with ticket.renewing(0.05):
        await asyncio.sleep(0.18)
        raise KeyError("body")


async def test_a_failing_renewal_is_retried_and_the_body_error_is_itself() -> None:
    gate = RecordingGate(fail=True)
    with pytest.raises(KeyError):
        await _failing_body(_ticket(gate))
    assert gate.renewals >= 2
