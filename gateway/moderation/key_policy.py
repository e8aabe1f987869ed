"""A key's guard: whether its prompts (and answers) are screened, and at which thresholds.

Modes: ``off`` (the default), ``prompts`` (every prompt is screened before the engine
sees it) and ``prompts_and_answers`` (answers too, streamed ones included). Thresholds
are per category, apart for prompts and answers (an operator may hold answers to a
stricter bar); a category without one has the gateway's default
(``GATEWAY_GUARD__DEFAULT_THRESHOLD``). Written as ``[prompt:|answer:]category=value``
(no stage: both), as ``gemma-serving keys`` and the admin API take them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

STAGES = ("prompt", "answer")


class GuardMode(StrEnum):
    OFF = "off"
    PROMPTS = "prompts"
    PROMPTS_AND_ANSWERS = "prompts_and_answers"


@dataclass(frozen=True, slots=True)
class GuardPolicy:
    mode: GuardMode = GuardMode.OFF
    prompt_thresholds: Mapping[str, float] = field(default_factory=dict)
    answer_thresholds: Mapping[str, float] = field(default_factory=dict)

    @property
    def screens_prompts(self) -> bool:
        return self.mode is not GuardMode.OFF

    @property
    def screens_answers(self) -> bool:
        return self.mode is GuardMode.PROMPTS_AND_ANSWERS

    def thresholds(self, stage: str) -> Mapping[str, float]:
        return self.prompt_thresholds if stage == "prompt" else self.answer_thresholds

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "prompt_thresholds": dict(self.prompt_thresholds),
            "answer_thresholds": dict(self.answer_thresholds),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> GuardPolicy:
        if not data:
            return cls()
        return cls(
            GuardMode(data.get("mode") or GuardMode.OFF),
            _checked(data.get("prompt_thresholds") or {}),
            _checked(data.get("answer_thresholds") or {}),
        )


def _checked(values: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for category, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"the threshold of {category!r} must be a number from 0 to 1")
        out[str(category)] = float(value)
    return out


def parse_thresholds(
    items: Iterable[str], categories: Iterable[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """``[prompt:|answer:]category=value`` items as (prompt, answer) thresholds."""
    known = set(categories)
    by_stage: dict[str, dict[str, float]] = {stage: {} for stage in STAGES}
    for item in items:
        name, sep, value = item.partition("=")
        stage, _, category = name.rpartition(":")
        if not sep or category not in known or stage not in ("", *STAGES):
            raise ValueError(
                f"{item!r}: write [prompt:|answer:]CATEGORY=VALUE with a category of "
                f"{', '.join(sorted(known))}"
            )
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{item!r}: {value!r} is not a number") from None
        if not 0 <= number <= 1:
            raise ValueError(f"{item!r}: a threshold is from 0 to 1")
        for each in (stage,) if stage else STAGES:
            by_stage[each][category] = number
    return by_stage["prompt"], by_stage["answer"]
