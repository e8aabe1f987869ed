"""Asking a moderation model of the serving application for scores.

``label_ids`` reads a model's ``Yes`` and ``No`` token ids from Ray Serve LLM's
``/tokenize`` once and keeps them. ``Classifier.scores`` sends one scoring request
(``gateway.moderation.scores.engine_body``) and returns ``P(Yes)`` per prompt. The
guard calls it directly (its checks are not charged to the key); ``/v1/moderations``
sends the same body through the request path (keys, quotas, routing, tracing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.errors import UpstreamError
from gateway.moderation.policies import NO, YES
from gateway.moderation.scores import Labels, engine_body, scores
from gateway.upstream import client as upstream

COMPLETIONS = "/v1/completions"
TOKENIZE = "/tokenize"


@dataclass
class Classifier:
    client: upstream.Upstream
    _labels: dict[str, Labels] = field(default_factory=dict)

    async def _token_id(self, model: str, text: str) -> int:
        body = {"model": model, "prompt": text, "add_special_tokens": False}
        response = await self.client.send("POST", TOKENIZE, json=body)
        content = await upstream.read_body(response)
        if response.status != 200:
            _, error = upstream.error_payload(response.status, content)
            raise UpstreamError(
                f"'{model}' could not tokenize {text!r}: {error['error'].get('message')}"
            )
        answer = upstream.parse_json(content)
        tokens = answer.get("tokens") if isinstance(answer, dict) else None
        if not isinstance(tokens, list) or len(tokens) != 1 or not isinstance(tokens[0], int):
            raise UpstreamError(f"'{model}' has no single token for {text!r}.")
        return tokens[0]

    async def label_ids(self, model: str) -> Labels:
        """``model``'s ``Yes`` and ``No`` token ids (asked once per model)."""
        if model not in self._labels:
            self._labels[model] = Labels(
                await self._token_id(model, YES), await self._token_id(model, NO)
            )
        return self._labels[model]

    async def scores(self, model: str, prompts: Sequence[str]) -> list[float]:
        """``P(Yes)`` of each prompt on ``model``."""
        labels = await self.label_ids(model)
        response = await self.client.send(
            "POST", COMPLETIONS, json=engine_body(model, prompts, labels)
        )
        content = await upstream.read_body(response)
        if response.status != 200:
            raise UpstreamError(f"The classifier '{model}' answered {response.status}.")
        return scores(upstream.parse_json(content), len(prompts), labels)
