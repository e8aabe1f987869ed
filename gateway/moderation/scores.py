"""From texts to moderation results: the engine request, its scores and the OpenAI shape.

One ``/v1/completions`` request judges every (text, policy) pair at once: one prompt
each, one token generated, and vLLM's ``logprob_token_ids`` returning the log
probabilities of the ``Yes`` and ``No`` tokens at that position (raw, before sampling).
A pair's score is ``P(Yes) / (P(Yes) + P(No))``, the softmax over the two labels that
ShieldGemma's model card scores with. A category is flagged when its score is above the
threshold (``> threshold``: 1 never flags, 0 flags any score above zero).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import UpstreamError
from gateway.moderation.policies import Harm

#: The threshold of a category nobody set one for.
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class Labels:
    """The vocabulary ids of a classifier's ``Yes`` and ``No`` tokens."""

    yes: int
    no: int


def engine_body(model: str, prompts: Sequence[str], labels: Labels) -> dict[str, Any]:
    """The completion request that scores ``prompts`` (one token each, greedy)."""
    return {
        "model": model,
        "prompt": list(prompts),
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": 2,
        "logprob_token_ids": [labels.yes, labels.no],
        "return_tokens_as_token_ids": True,
    }


def _label_logprob(top: Mapping[str, Any], token_id: int) -> float:
    value = top.get(f"token_id:{token_id}")
    if not isinstance(value, int | float):
        raise UpstreamError(f"The classifier's answer lacks the logprob of token {token_id}.")
    return float(value)


def scores(body: Any, count: int, labels: Labels) -> list[float]:
    """``P(Yes)`` of each of ``count`` prompts, in order, from the engine's completion."""
    choices = body.get("choices") if isinstance(body, Mapping) else None
    if not isinstance(choices, list) or len(choices) != count:
        raise UpstreamError("The classifier answered a different number of prompts.")
    result = [0.0] * count
    for choice in choices:
        index = choice.get("index")
        logprobs = choice.get("logprobs") or {}
        tops = logprobs.get("top_logprobs") or [None]
        if not isinstance(index, int) or not 0 <= index < count or not isinstance(tops[0], dict):
            raise UpstreamError("The classifier's answer has no label logprobs.")
        yes, no = _label_logprob(tops[0], labels.yes), _label_logprob(tops[0], labels.no)
        top = max(yes, no)
        result[index] = math.exp(yes - top) / (math.exp(yes - top) + math.exp(no - top))
    return result


@dataclass(frozen=True, slots=True)
class Verdict:
    """One text's scores per category, and which of them passed their threshold."""

    category_scores: dict[str, float]
    flagged_categories: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        return bool(self.flagged_categories)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Per-category thresholds; a category without one has ``default``."""

    by_category: Mapping[str, float] = field(default_factory=dict)
    default: float = DEFAULT_THRESHOLD

    def of(self, category: str) -> float:
        return self.by_category.get(category, self.default)


def verdicts(
    values: Sequence[float], harms: Sequence[Harm], thresholds: Thresholds
) -> list[Verdict]:
    """Scores laid out text-major (every harm of text 0, then of text 1, ...) as verdicts."""
    per_text = len(harms)
    out: list[Verdict] = []
    for start in range(0, len(values), per_text):
        by_category = {h.category: values[start + i] for i, h in enumerate(harms)}
        flagged = tuple(c for c, s in by_category.items() if s > thresholds.of(c))
        out.append(Verdict(by_category, flagged))
    return out


def moderation_result(verdict: Verdict, harms: Sequence[Harm]) -> dict[str, Any]:
    """One entry of ``results`` in OpenAI's moderation object."""
    return {
        "flagged": verdict.flagged,
        "categories": {h.category: h.category in verdict.flagged_categories for h in harms},
        "category_scores": {h.category: verdict.category_scores[h.category] for h in harms},
        "category_applied_input_types": {h.category: ["text"] for h in harms},
    }
