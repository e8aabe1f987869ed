"""Admission to a saturated engine: priority classes first, then weighted fair share.

Each model has ``slots``: the requests this gateway replica lets run on it at once (the
variant's ``max_num_seqs`` times its replicas, as ``/v1/models`` publishes them, split
across the gateway replicas; ``FairShareSettings``). Below that, a request starts at once.
At it, requests wait here, not in the engine's queue, and the next slot that frees goes to:

1. the best class waiting (``interactive``, then ``standard``, then ``batch``); the
   ``batch`` class never holds more than ``batch_fraction`` of the slots, so live traffic
   finds a slot free even under a bulk flood;
2. within the class, the tenant whose virtual start is earliest (start-time fair
   queueing: a tenant's start is the later of the queue's virtual clock and its previous
   finish; each start adds ``1 / weight`` to its finish, ``weight`` being the key's), so
   tenants of equal weight get equal turns however much each offers;
3. within a tenant, first come, first served.

A request waits at most ``max_wait`` seconds, then gets ``EngineSaturated`` (503 with
``Retry-After``); one whose client leaves while it waits just leaves the queue.

Why per gateway replica and not a queue in Redis: the decision is made on every request of
a saturated model, and a shared queue would put a Redis round trip (and a wake-up
protocol) on each; the replicas behind one Service see the same mix of traffic, so each
applying the shares to its part of the slots gives the same shares overall, and vLLM's own
priority order still holds for anything past the bound.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import anyio

from gateway.errors import ServiceUnavailable
from gateway.model_info import ModelInfo
from gateway.priority import PriorityClass
from gateway.settings import FairShareSettings

RANK = {c: i for i, c in enumerate(PriorityClass)}  # interactive first


class EngineSaturated(ServiceUnavailable):
    """Every slot of the model stayed taken for as long as a request may wait."""

    default_code = "engine_saturated"


@dataclass
class _Waiter:
    tenant: str
    rank: int
    weight: float
    granted: asyncio.Future[None]


@dataclass
class Slot:
    """One running request's place on a model; ``release`` (idempotent) frees it."""

    queue: ModelQueue | None
    rank: int

    def release(self) -> None:
        queue, self.queue = self.queue, None
        if queue is not None:
            queue.finished(self.rank)


@dataclass
class ModelQueue:
    """The slots of one model and the requests waiting for them."""

    slots: int
    batch_slots: int
    clock: float = 0.0
    running: int = 0
    running_batch: int = 0
    _finish: dict[str, float] = field(default_factory=dict)
    _waiting: dict[tuple[int, str], deque[_Waiter]] = field(default_factory=dict)

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    def _may_run(self, rank: int) -> bool:
        if self.running >= self.slots:
            return False
        return rank != RANK[PriorityClass.BATCH] or self.running_batch < self.batch_slots

    def _start(self, tenant: str, rank: int, weight: float) -> None:
        start = max(self.clock, self._finish.get(tenant, 0.0))
        self._finish[tenant] = start + 1.0 / weight
        self.clock = start
        self.running += 1
        self.running_batch += rank == RANK[PriorityClass.BATCH]

    def try_start(self, tenant: str, rank: int, weight: float) -> bool:
        """Start at once when a slot is free and nobody waits for one."""
        if self._waiting or not self._may_run(rank):
            return False
        self._start(tenant, rank, weight)
        return True

    def enqueue(self, waiter: _Waiter) -> None:
        """Wait in line; started at once if a slot it may use is free (another class waits)."""
        self._waiting.setdefault((waiter.rank, waiter.tenant), deque()).append(waiter)
        self._grant()

    def withdraw(self, waiter: _Waiter) -> None:
        line = self._waiting.get((waiter.rank, waiter.tenant))
        if line is not None and waiter in line:
            line.remove(waiter)
            if not line:
                del self._waiting[(waiter.rank, waiter.tenant)]
        self._grant()

    def finished(self, rank: int) -> None:
        self.running -= 1
        self.running_batch -= rank == RANK[PriorityClass.BATCH]
        self._grant()

    def _next(self) -> tuple[int, str] | None:
        ready = [k for k in self._waiting if self._may_run(k[0])]
        if not ready:
            return None
        best = min(rank for rank, _ in ready)
        tenants = [k for k in ready if k[0] == best]
        return min(tenants, key=lambda k: (max(self.clock, self._finish.get(k[1], 0.0)), k[1]))

    def _grant(self) -> None:
        while (key := self._next()) is not None:
            line = self._waiting[key]
            waiter = line.popleft()
            if not line:
                del self._waiting[key]
            if waiter.granted.done():  # its request was cancelled in the meantime
                continue
            self._start(waiter.tenant, waiter.rank, waiter.weight)
            waiter.granted.set_result(None)

    def snapshot(self) -> tuple[int, int]:
        """Running and waiting requests."""
        return self.running, self.waiting


class FairShare:
    """Admission to each model's slots (``slots_of(model)``: ``None`` is unbounded)."""

    def __init__(
        self,
        slots_of: Callable[[str], int | None],
        *,
        max_wait: float,
        batch_fraction: float,
        retry_after: int,
    ) -> None:
        self._slots_of = slots_of
        self._max_wait = max_wait
        self._batch_fraction = batch_fraction
        self._retry_after = retry_after
        self._queues: dict[str, ModelQueue] = {}

    def queue(self, model: str) -> ModelQueue | None:
        slots = self._slots_of(model)
        if slots is None:
            return None
        queue = self._queues.get(model)
        if queue is None or queue.slots != slots:
            batch = max(1, int(slots * self._batch_fraction))
            fresh = ModelQueue(slots=slots, batch_slots=batch)
            if queue is not None:  # the published slots changed: keep what runs and waits
                fresh.running, fresh.running_batch = queue.running, queue.running_batch
                fresh.clock, fresh._finish, fresh._waiting = (
                    queue.clock,
                    queue._finish,
                    queue._waiting,
                )
            self._queues[model] = queue = fresh
        return queue

    def take_now(
        self, model: str, tenant: str, priority_class: PriorityClass, weight: float = 1.0
    ) -> Slot | None:
        """A slot on ``model`` if one is free and nobody waits (``None``: ``acquire`` waits)."""
        queue = self.queue(model)
        rank = RANK[priority_class]
        if queue is None:
            return Slot(None, rank)
        return Slot(queue, rank) if queue.try_start(tenant, rank, weight) else None

    async def acquire(
        self, model: str, tenant: str, priority_class: PriorityClass, weight: float = 1.0
    ) -> Slot:
        """A slot on ``model``, at once or after waiting (``EngineSaturated`` past ``max_wait``)."""
        slot = self.take_now(model, tenant, priority_class, weight)
        if slot is not None:
            return slot
        queue = self.queue(model)
        assert queue is not None  # take_now answers at once for unbounded models
        rank = RANK[priority_class]
        waiter = _Waiter(tenant, rank, weight, asyncio.get_running_loop().create_future())
        queue.enqueue(waiter)
        try:
            with anyio.fail_after(self._max_wait):
                await asyncio.shield(waiter.granted)
        except BaseException as exc:
            if waiter.granted.done():  # granted as it gave up: hand the slot on
                Slot(queue, rank).release()
            else:
                waiter.granted.cancel()
                queue.withdraw(waiter)
            if isinstance(exc, TimeoutError):
                raise EngineSaturated(
                    f"Every slot of {model} stayed taken for {self._max_wait:g}s; retry later.",
                    headers={"retry-after": str(self._retry_after)},
                ) from None
            raise
        return Slot(queue, rank)


def published_slots(
    settings: FairShareSettings, models: Callable[[], Iterable[ModelInfo]]
) -> Callable[[str], int | None]:
    """Each model's slots on this replica: the settings' or the published ones, split."""

    def slots_of(model_id: str) -> int | None:
        if not settings.enabled:
            return None
        if model_id in settings.slots:
            return settings.slots[model_id]
        found = next((m.engine_slots for m in models() if m.id == model_id), None)
        return None if found is None else math.ceil(found / settings.gateway_replicas)

    return slots_of


def from_settings(
    settings: FairShareSettings, models: Callable[[], Iterable[ModelInfo]], retry_after: int
) -> FairShare:
    return FairShare(
        published_slots(settings, models),
        max_wait=settings.max_wait,
        batch_fraction=settings.batch_fraction,
        retry_after=retry_after,
    )


#: A ``FairShare`` that bounds nothing (tests and tools that build a ``Dispatcher`` alone).
def unbounded() -> FairShare:
    return FairShare(lambda model: None, max_wait=1.0, batch_fraction=1.0, retry_after=1)
