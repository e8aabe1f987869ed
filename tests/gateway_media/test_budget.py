"""The process's decode memory: reservations in bytes, a line, a bounded wait."""

from __future__ import annotations

import base64
import threading

import anyio
import pytest

from gateway.errors import MediaDecodeBusy
from gateway.media import MediaSettings, MediaValidator
from gateway.media.budget import DecodeBudget
from tests.gateway_media.craft import animated_webp
from tests.support.media import png_bytes
from tests.support.peak_memory import peak_growth

MIB = 1024 * 1024

pytestmark = pytest.mark.anyio


async def test_reservations_that_fit_go_at_once_and_are_returned():
    budget = DecodeBudget(100, wait=1.0)
    async with budget.reserve(60), budget.reserve(40):
        assert budget.reserved == 100
    assert budget.reserved == 0


async def test_a_reservation_that_does_not_fit_waits_for_room():
    budget = DecodeBudget(100, wait=5.0)
    order: list[str] = []

    async def take(name: str, size: int, hold: float) -> None:
        async with budget.reserve(size):
            order.append(name)
            await anyio.sleep(hold)

    async with anyio.create_task_group() as group:
        group.start_soon(take, "first", 80, 0.2)
        await anyio.sleep(0.05)
        group.start_soon(take, "large", 50, 0)
        await anyio.sleep(0.05)
        group.start_soon(take, "small", 10, 0)  # fits now, but waits behind "large"
        await anyio.sleep(0.05)
        assert order == ["first"]
    assert order == ["first", "large", "small"]
    assert budget.reserved == 0


async def test_a_wait_past_the_limit_is_a_503_with_retry_after():
    budget = DecodeBudget(100, wait=0.1)
    async with budget.reserve(100):
        with pytest.raises(MediaDecodeBusy) as caught:
            async with budget.reserve(1):
                pass
    error = caught.value
    assert (error.status_code, error.code, error.headers["retry-after"]) == (
        503,
        "media_decode_busy",
        "1",
    )
    assert budget.reserved == 0
    with anyio.fail_after(0.5):
        async with budget.reserve(100):  # the line is empty again
            pass


async def test_a_cancelled_waiter_leaves_the_line():
    budget = DecodeBudget(100, wait=10.0)
    async with budget.reserve(100):
        with anyio.move_on_after(0.05):
            async with budget.reserve(100):
                pytest.fail("no room was free")
    with anyio.fail_after(0.5):
        async with budget.reserve(100):
            assert budget.reserved == 100


async def test_a_part_larger_than_the_capacity_runs_alone():
    budget = DecodeBudget(100, wait=1.0)
    async with budget.reserve(10_000):
        assert budget.reserved == 100


def test_event_loops_in_several_threads_share_one_budget():
    budget = DecodeBudget(100, wait=5.0)
    held = threading.Event()
    timeline: list[str] = []

    async def hold() -> None:
        async with budget.reserve(100):
            held.set()
            await anyio.sleep(0.2)
            timeline.append("released")

    async def wait() -> None:
        async with budget.reserve(100):
            timeline.append("granted")

    holder = threading.Thread(target=anyio.run, args=(hold,))
    holder.start()
    assert held.wait(5)
    anyio.run(wait)
    holder.join()
    assert timeline == ["released", "granted"]
    assert budget.reserved == 0


async def test_the_validator_reserves_before_decoding_and_waits_a_bounded_time():
    png = png_bytes(64, 48)
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
    settings = MediaSettings(max_decode_memory_bytes=64 * 48 * 4, decode_memory_wait=0.1)
    validator = MediaValidator(settings)
    async with validator.budget.reserve(1):  # one byte short of the image's estimate
        with pytest.raises(MediaDecodeBusy):
            await validator.prepare_messages(messages)
    prepared = await validator.prepare_messages(messages)
    assert prepared[0]["content"][0]["image_url"]["url"] == url
    assert validator.budget.reserved == 0


async def test_parallel_requests_decode_within_the_process_cap():
    # A still 4096x4096 WebP takes ~200 MB to decode; four at once took ~980 MB unbounded.
    url = "data:image/webp;base64," + base64.b64encode(animated_webp(4096, 4096, 1)).decode()
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
    validator = MediaValidator(MediaSettings(max_decode_memory_bytes=192 * MIB))
    await validator.prepare_messages(messages)  # libwebp loaded, first use paid
    with peak_growth() as peak:
        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(validator.prepare_messages, messages)
    assert peak.bytes < 400 * MIB  # one decode at a time
    assert validator.budget.reserved == 0
