"""The engines' scheduler: vLLM's priority scheduling, with a better class's prefill run alone.

vLLM's ``scheduling_policy: priority`` orders the waiting queue by request priority, so
an ``interactive`` request is admitted before any queued ``batch`` one (gateway.priority),
but once admitted it shares every engine step with the lower-class requests already
running: its first token waits for a step that also decodes all of them. On a GPU that
costs little; on a CPU a step's time grows with every sequence in it, and the interactive
time to first token grows with the bulk load.

``PrefillFirstScheduler`` is vLLM's scheduler with one rule added: while a request of a
better priority than some running ones is waiting or in its prefill, those worse ones sit
out the step (they keep their KV cache and resume at the next step; nothing is preempted
or recomputed), and only requests at least as good as it are admitted. So the first token
of a better class costs the steps of its own prefill, whatever the bulk load.

Two guards keep the bulk work going: the rule holds only for requests vLLM can admit
(one left waiting by a held step, short of KV cache for instance, is not held for again
until it runs), and once the better request's last prompt chunk is scheduled the held
ones run with it. Nothing changes under ``scheduling_policy: fcfs``.

vLLM takes the class by qualified name (``scheduler_cls``); ``PrefillFirstScheduler``
becomes ``AsyncPrefillFirstScheduler`` when the engine schedules asynchronously (GPUs; the
CPU platform turns it off), so the choice stays vLLM's.
"""

from __future__ import annotations

import itertools
from typing import Any

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.output import SchedulerOutput
from vllm.v1.core.sched.request_queue import SchedulingPolicy
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request


def _prefilling(request: Request) -> bool:
    return request.num_computed_tokens < request.num_prompt_tokens


class PrefillFirstScheduler(Scheduler):
    """vLLM's scheduler; a better class's prefill does not share its steps with worse ones."""

    def __new__(cls, *args: Any, **kwargs: Any) -> PrefillFirstScheduler:
        config = kwargs["vllm_config"] if "vllm_config" in kwargs else args[0]
        if cls is PrefillFirstScheduler and config.scheduler_config.async_scheduling:
            cls = AsyncPrefillFirstScheduler
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Waiting requests a held step could not admit: not held for again.
        self._not_admitted: set[str] = set()

    def schedule(self, *args: Any, **kwargs: Any) -> SchedulerOutput:
        urgent = self._urgent_priority()
        if urgent is None:
            return super().schedule(*args, **kwargs)
        order = self.running
        held = {id(r) for r in order if r.priority > urgent}
        if not held:
            return super().schedule(*args, **kwargs)
        visible = [r for r in order if id(r) not in held]
        # The queue iterates best first: stop at the first worse one.
        waiting_urgent = list(itertools.takewhile(lambda r: r.priority <= urgent, self.waiting))
        room = min(self.max_num_running_reqs - len(order), len(waiting_urgent))
        if room <= 0 and not any(_prefilling(r) for r in visible):
            return super().schedule(*args, **kwargs)  # nothing better could run alone
        limit = self.max_num_running_reqs
        self.running = visible
        # Only requests at least as good as the urgent one are admitted in this step.
        self.max_num_running_reqs = len(visible) + max(room, 0)
        try:
            output = super().schedule(*args, **kwargs)
        finally:
            self.max_num_running_reqs = limit
            kept = {id(r) for r in self.running}
            before = {id(r) for r in order}
            merged = [r for r in order if id(r) in held or id(r) in kept]
            self.running = merged + [r for r in self.running if id(r) not in before]
        self._not_admitted |= {
            r.request_id for r in waiting_urgent if r.request_id not in output.num_scheduled_tokens
        }
        return output

    def _urgent_priority(self) -> int | None:
        """The best priority waiting (and admissible) or in its prefill, if any.

        Every step asks this, so the waiting queue (a heap) is only peeked at, unless its
        head is a request a held step could not admit.
        """
        if self.policy != SchedulingPolicy.PRIORITY:
            return None
        candidates = [r.priority for r in self.running if _prefilling(r)]
        if self._not_admitted:
            self._not_admitted.intersection_update(r.request_id for r in self.waiting)
        if self.waiting:
            head: Request | None = self.waiting.peek_request()
            if head is not None and head.request_id in self._not_admitted:
                skipped = self._not_admitted
                head = next((r for r in self.waiting if r.request_id not in skipped), None)
            if head is not None:
                candidates.append(head.priority)
        return min(candidates, default=None)


class AsyncPrefillFirstScheduler(PrefillFirstScheduler, AsyncScheduler):
    """The same rule on vLLM's asynchronous scheduler."""
