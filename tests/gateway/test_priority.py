"""Priority classes map to vLLM request priorities in the order they promise."""

from __future__ import annotations

from gateway.priority import PriorityClass, engine_priority, with_priority


def test_classes_are_ordered_interactive_first_and_standard_is_vllms_default() -> None:
    order = [engine_priority(c) for c in PriorityClass]
    assert order == sorted(order)  # lower is scheduled first by vLLM
    assert len(set(order)) == len(order)
    assert engine_priority(PriorityClass.STANDARD) == 0


def test_the_keys_class_replaces_a_priority_in_the_body() -> None:
    body = {"model": "m", "priority": -1000}
    sent = with_priority(body, PriorityClass.BATCH)
    assert sent == {"model": "m", "priority": engine_priority(PriorityClass.BATCH)}
    assert body["priority"] == -1000  # the caller's dict is left alone
