"""Priority classes: which requests an engine takes first when it has more than it can run.

Every engine schedules by priority (``scheduling_policy: priority``, ``serving.app``):
vLLM keeps its waiting requests ordered by their ``priority`` (lower first, then by
arrival) and, short of KV cache, preempts the running request of the lowest priority
first. A key carries a class; the gateway sets the engine priority of every request
from its key's class, whatever the client sent, and Batch API lines always run in
``batch``, the lowest. Requests from anywhere else (warm-up, probes) have vLLM's
default 0, the ``standard`` class.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class PriorityClass(StrEnum):
    INTERACTIVE = "interactive"
    STANDARD = "standard"
    BATCH = "batch"


DEFAULT_CLASS = PriorityClass.STANDARD

#: vLLM's request priority per class (lower is served first; vLLM's default is 0).
ENGINE_PRIORITY: dict[PriorityClass, int] = {
    PriorityClass.INTERACTIVE: -10,
    PriorityClass.STANDARD: 0,
    PriorityClass.BATCH: 10,
}


def engine_priority(priority_class: PriorityClass) -> int:
    return ENGINE_PRIORITY[priority_class]


def with_priority(body: dict[str, Any], priority_class: PriorityClass) -> dict[str, Any]:
    """The engine request ``body`` with the class's priority (a client's own is replaced)."""
    return {**body, "priority": engine_priority(priority_class)}
