"""The fair-share queue's decisions: classes first, equal turns per tenant, bounded waits."""

from __future__ import annotations

import asyncio

import pytest

from gateway.fair_share import EngineSaturated, FairShare, Slot
from gateway.priority import PriorityClass

pytestmark = pytest.mark.anyio

LIVE, S, B = PriorityClass.INTERACTIVE, PriorityClass.STANDARD, PriorityClass.BATCH


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def share(slots: int | None, *, max_wait: float = 5.0, batch_fraction: float = 0.75) -> FairShare:
    return FairShare(
        lambda model: slots, max_wait=max_wait, batch_fraction=batch_fraction, retry_after=3
    )


def snap(fair: FairShare) -> tuple[int, int]:
    """Requests running and waiting on model ``m``."""
    queue = fair.queue("m")
    assert queue is not None
    return queue.snapshot()


async def _waiting(fair: FairShare, tenant: str, cls: PriorityClass, order: list[str]) -> Slot:
    slot = await fair.acquire("m", tenant, cls)
    order.append(f"{tenant}:{cls}")
    return slot


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_below_the_slots_requests_start_at_once_and_unbounded_models_never_wait() -> None:
    fair = share(2)
    a, b = await fair.acquire("m", "t", S), await fair.acquire("m", "t", S)
    assert snap(fair) == (2, 0)
    a.release()
    a.release()  # idempotent
    assert snap(fair) == (1, 0)
    b.release()
    unbounded = share(None)
    slots = [await unbounded.acquire("m", "t", B) for _ in range(100)]
    assert all(s.queue is None for s in slots)


async def test_the_best_class_waiting_gets_the_next_slot() -> None:
    fair = share(1)
    running = await fair.acquire("m", "bulk", S)
    order: list[str] = []
    tasks = [
        asyncio.create_task(_waiting(fair, "bulk", B, order)),
        asyncio.create_task(_waiting(fair, "web", S, order)),
        asyncio.create_task(_waiting(fair, "web", LIVE, order)),
    ]
    await _settle()
    assert order == []
    running.release()
    for _ in range(3):
        await _settle()
        (await asyncio.wait_for(asyncio.shield(_first_done(tasks)), 1)).release()
    assert order == ["web:interactive", "web:standard", "bulk:batch"]


async def _first_done(tasks: list[asyncio.Task[Slot]]) -> Slot:
    while True:
        for task in tasks:
            if task.done():
                tasks.remove(task)
                return task.result()
        await asyncio.sleep(0)


async def test_batch_never_holds_every_slot_so_live_traffic_starts_at_once() -> None:
    fair = share(4, batch_fraction=0.5)
    bulk = [await fair.acquire("m", "bulk", B) for _ in range(2)]
    third = asyncio.create_task(fair.acquire("m", "bulk", B))
    await _settle()
    assert not third.done()  # two of four slots is batch's share
    live = await asyncio.wait_for(fair.acquire("m", "web", LIVE), 0.5)  # past the waiting one
    bulk[0].release()
    (await asyncio.wait_for(third, 1)).release()
    live.release()
    bulk[1].release()


async def test_equal_tenants_get_equal_turns_whatever_each_offers() -> None:
    fair = share(1)
    first = await fair.acquire("m", "heavy", S)
    order: list[str] = []
    tasks = [asyncio.create_task(_waiting(fair, "heavy", S, order)) for _ in range(10)]
    await _settle()
    tasks += [asyncio.create_task(_waiting(fair, "light", S, order)) for _ in range(2)]
    await _settle()
    first.release()
    for _ in range(12):
        await _settle()
        (await asyncio.wait_for(_first_done(tasks), 1)).release()
    # heavy went first (the slot's last holder), then the two alternate until light is done
    assert order[:4] == ["light:standard", "heavy:standard", "light:standard", "heavy:standard"]


async def test_weight_buys_proportional_turns() -> None:
    fair = share(1)
    first = await fair.acquire("m", "x", S)
    order: list[str] = []

    async def take(tenant: str, weight: float) -> Slot:
        slot = await fair.acquire("m", tenant, S, weight)
        order.append(tenant)
        return slot

    tasks = [asyncio.create_task(take("big", 3.0)) for _ in range(6)]
    tasks += [asyncio.create_task(take("small", 1.0)) for _ in range(6)]
    await _settle()
    first.release()
    for _ in range(8):
        await _settle()
        (await asyncio.wait_for(_first_done(tasks), 1)).release()
    assert order[:8].count("big") == 6
    for task in tasks:
        task.cancel()


async def test_a_wait_past_max_wait_is_a_503_with_retry_after_and_leaves_the_line() -> None:
    fair = share(1, max_wait=0.2)
    held = await fair.acquire("m", "t", S)
    with pytest.raises(EngineSaturated) as refused:
        await fair.acquire("m", "u", S)
    assert refused.value.status_code == 503
    assert refused.value.headers["retry-after"] == "3"
    assert snap(fair) == (1, 0)
    held.release()
    assert snap(fair) == (0, 0)


async def test_a_cancelled_waiter_leaves_the_line_and_a_granted_one_hands_its_slot_on() -> None:
    fair = share(1)
    held = await fair.acquire("m", "t", S)
    gone = asyncio.create_task(fair.acquire("m", "u", S))
    await _settle()
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    assert snap(fair) == (1, 0)
    late = asyncio.create_task(fair.acquire("m", "u", S))
    await _settle()
    held.release()  # grants ``late`` ...
    late.cancel()  # ... which is cancelled before it runs: the slot must come back
    await asyncio.gather(late, return_exceptions=True)
    assert snap(fair) == (0, 0)
