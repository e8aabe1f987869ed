"""The content guard: a guarded key's prompts, and answers, screened by a safety classifier.

``check_prompt`` runs after the key is admitted and before the engine sees the request
(the proxy's ``prepare``): a refusal releases the admission, nothing is charged.
``check_answer`` screens a JSON answer after it is settled (the engine did the work, so
its tokens are charged) and before the client sees it. ``screened`` wraps a relayed
stream: events are held back and the answer so far is screened every
``stream_check_chars`` characters and at its end, so nothing unscreened reaches the
client; a refused stream ends with a ``content_policy_violation`` error event and
``[DONE]``, and its upstream request is cancelled (the engine stops).

A refusal is ``ContentPolicyViolation`` (400), counted in ``gateway_guard_*`` and
logged with the key, stage, categories and the content's SHA-256, never the content.
The guard fails closed: when no classifier answers, a guarded request is refused with
503 ``guard_unavailable``. Screening is the gateway's, so it is not charged to the key.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from gateway.errors import (
    ContentPolicyViolation,
    GatewayError,
    GuardUnavailable,
    InvalidRequest,
)
from gateway.metrics import GatewayMetrics
from gateway.moderation.classifier import Classifier
from gateway.moderation.policies import HARMS, answer_check, prompt_check
from gateway.moderation.scores import Thresholds, Verdict, verdicts
from gateway.moderation.settings import GuardSettings
from gateway.moderation.texts import answer_text, delta_text, has_token_prompt, prompt_text
from gateway.quotas.protocol import ApiKey
from gateway.routing import Needs, route
from gateway.upstream.client import Unavailable
from gateway.upstream.registry import ModelRegistry
from gateway.upstream.sse import DONE, error_event

logger = logging.getLogger("gateway.guard")
MODERATION_NEEDS = Needs(frozenset({"moderation"}), 1, 1)


@dataclass
class Guard:
    classifier: Classifier
    registry: ModelRegistry
    settings: GuardSettings
    metrics: GatewayMetrics
    aliases: Mapping[str, str]

    def _model(self) -> tuple[str, str]:
        """The classifier to ask and its policy family."""
        try:
            found = route(
                self.settings.model,
                MODERATION_NEEDS,
                self.registry.models,
                aliases=self.aliases,
                unhealthy=self.registry.unhealthy(),
            )
        except GatewayError as exc:
            raise GuardUnavailable(f"The content guard has no classifier: {exc.message}") from exc
        down = self.registry.down()
        for model in found.candidates:
            if model.id not in down and model.moderation_policy in HARMS:
                return model.id, model.moderation_policy
        raise GuardUnavailable("The content guard's classifiers are down or restarting.")

    async def _judge(self, key: ApiKey, stage: str, text: str, prompt: str = "") -> None:
        text = text[-self.settings.max_chars :]
        model, family = self._model()
        harms = HARMS[family]
        if stage == "prompt":
            prompts = [prompt_check(text, h) for h in harms]
        else:
            prompts = [answer_check(prompt[-self.settings.max_chars :], text, h) for h in harms]
        try:
            values = await self.classifier.scores(model, prompts)
        except (GatewayError, Unavailable) as exc:
            self.metrics.guard_checks.labels(stage, "failed").inc()
            raise GuardUnavailable(f"The content guard could not screen the {stage}.") from exc
        thresholds = Thresholds(key.guard.thresholds(stage), self.settings.default_threshold)
        verdict = verdicts(values, harms, thresholds)[0]
        if verdict.flagged:
            self._refuse(key, stage, text, verdict)
        self.metrics.guard_checks.labels(stage, "passed").inc()

    def _refuse(self, key: ApiKey, stage: str, text: str, verdict: Verdict) -> None:
        self.metrics.guard_checks.labels(stage, "refused").inc()
        for category in verdict.flagged_categories:
            self.metrics.guard_refusals.labels(stage, category).inc()
        logger.warning(
            "content guard refused a %s",
            stage,
            extra={
                "key_id": key.key_id,
                "stage": stage,
                "categories": list(verdict.flagged_categories),
                "content_sha256": hashlib.sha256(text.encode()).hexdigest(),
            },
        )
        raise ContentPolicyViolation(
            f"The {stage} was refused by the content guard "
            f"({', '.join(verdict.flagged_categories)})."
        )

    async def check_prompt(self, key: ApiKey, payload: Mapping[str, Any]) -> None:
        if not key.guard.screens_prompts:
            return
        if has_token_prompt(payload):
            raise InvalidRequest(
                "This key's prompts are screened as text: send the prompt as text, not as "
                "token ids.",
                param="prompt",
                code="unsupported_parameter",
            )
        await self._judge(key, "prompt", prompt_text(payload))

    async def check_answer(self, key: ApiKey, payload: Mapping[str, Any], body: Any) -> None:
        if key.guard.screens_answers:
            await self._judge(key, "answer", answer_text(body), prompt_text(payload))

    async def screened(
        self,
        key: ApiKey,
        payload: Mapping[str, Any],
        events: AsyncGenerator[bytes, None],
    ) -> AsyncGenerator[bytes, None]:
        """``events`` released only once the answer they carry has been screened."""
        held: list[bytes] = []
        answer, checked = "", 0
        async with aclosing(events) as upstream_events:
            async for chunk in upstream_events:
                held.append(chunk)
                answer += delta_text(chunk)
                due = len(answer) - checked >= self.settings.stream_check_chars
                if chunk != DONE and not due:
                    continue
                if len(answer) > checked:
                    try:
                        await self._judge(key, "answer", answer, prompt_text(payload))
                    except GatewayError as exc:
                        yield error_event(exc)
                        yield DONE
                        return
                    checked = len(answer)
                for released in held:
                    yield released
                held.clear()
        for released in held:
            yield released
