"""From texts and images to moderation results: engine requests, scores, the OpenAI shape.

One ``/v1/completions`` request judges every (text, policy) pair at once: one prompt
each, one token generated, and vLLM's ``logprob_token_ids`` returning the log
probabilities of the ``Yes`` and ``No`` tokens at that position (raw, before sampling).
An image is judged by one chat completion per policy (``image_body``: the image and the
policy's text, which ShieldGemma 2's chat template wraps in its question), read the same
way. A pair's score is ``P(Yes) / (P(Yes) + P(No))``, the softmax over the two labels
that ShieldGemma's and ShieldGemma 2's model cards score with. A category is flagged
when its score is above the threshold (``> threshold``: 1 never flags, 0 flags any score
above zero).
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


def image_body(model: str, image: Mapping[str, Any], harm: Harm, labels: Labels) -> dict[str, Any]:
    """The chat completion that scores one image against one policy (one token, greedy)."""
    content = [dict(image), {"type": "text", "text": harm.image_rule()}]
    return {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": 1,
        "temperature": 0,
        "logprobs": True,
        "logprob_token_ids": [labels.yes, labels.no],
        "return_tokens_as_token_ids": True,
    }


def _label_logprob(top: Mapping[str, Any], token_id: int) -> float:
    value = top.get(f"token_id:{token_id}")
    if not isinstance(value, int | float):
        raise UpstreamError(f"The classifier's answer lacks the logprob of token {token_id}.")
    return float(value)


def _p_yes(top: Mapping[str, Any], labels: Labels) -> float:
    yes, no = _label_logprob(top, labels.yes), _label_logprob(top, labels.no)
    most = max(yes, no)
    return math.exp(yes - most) / (math.exp(yes - most) + math.exp(no - most))


def _chat_top(choice: Mapping[str, Any]) -> dict[str, Any] | None:
    """A chat choice's first-token logprobs as ``{"token_id:N": logprob}``."""
    content = (choice.get("logprobs") or {}).get("content") or [None]
    tops = content[0].get("top_logprobs") if isinstance(content[0], dict) else None
    if not isinstance(tops, list):
        return None
    return {str(t.get("token")): t.get("logprob") for t in tops if isinstance(t, dict)}


def _completion_top(choice: Mapping[str, Any]) -> dict[str, Any] | None:
    tops = (choice.get("logprobs") or {}).get("top_logprobs") or [None]
    return tops[0] if isinstance(tops[0], dict) else None


def scores(body: Any, count: int, labels: Labels) -> list[float]:
    """``P(Yes)`` of each of ``count`` prompts, in order, from the engine's answer: a
    completion (text judgements) or chat completions merged into one (image judgements)."""
    choices = body.get("choices") if isinstance(body, Mapping) else None
    if not isinstance(choices, list) or len(choices) != count:
        raise UpstreamError("The classifier answered a different number of prompts.")
    result = [0.0] * count
    for choice in choices:
        index = choice.get("index") if isinstance(choice, Mapping) else None
        if not isinstance(index, int) or not 0 <= index < count:
            raise UpstreamError("The classifier's answer has no label logprobs.")
        top = _chat_top(choice) if "message" in choice else _completion_top(choice)
        if top is None:
            raise UpstreamError("The classifier's answer has no label logprobs.")
        result[index] = _p_yes(top, labels)
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


def worst(of: Sequence[Verdict], thresholds: Thresholds) -> Verdict:
    """One verdict for several inputs judged as one (the images of a result): the highest
    score of each category, flagged against its threshold."""
    by_category: dict[str, float] = {}
    for verdict in of:
        for category, score in verdict.category_scores.items():
            by_category[category] = max(score, by_category.get(category, 0.0))
    flagged = tuple(c for c, s in by_category.items() if s > thresholds.of(c))
    return Verdict(by_category, flagged)


def moderation_result(
    verdict: Verdict, harms: Sequence[Harm], input_type: str = "text"
) -> dict[str, Any]:
    """One entry of ``results`` in OpenAI's moderation object."""
    return {
        "flagged": verdict.flagged,
        "categories": {h.category: h.category in verdict.flagged_categories for h in harms},
        "category_scores": {h.category: verdict.category_scores[h.category] for h in harms},
        "category_applied_input_types": {h.category: [input_type] for h in harms},
    }
