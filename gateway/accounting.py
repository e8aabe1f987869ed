"""Token accounting: what a request may cost (reserved at admission) and what it cost.

    reserve = prompt estimate (all prompts) + prompts x choices x completion cap
    choices = max(n, best_of);   cap = the client's max_completion_tokens / max_tokens

A request that sets no cap gets one, written into the payload sent to the engine, so the
engine never generates more than was reserved: chat's ``max_completion_tokens`` (vLLM's
chat protocol reads it before the deprecated ``max_tokens``; with neither it would
generate up to the context) is ``QuotaSettings.default_max_tokens``; completions'
``max_tokens`` is the smaller of that and ``COMPLETIONS_DEFAULT_MAX_TOKENS``, the API's
own default (OpenAI's and vLLM's). A written cap is lowered to the room the serving
model's context leaves beside the longest prompt's estimate (vLLM refuses a prompt that
does not fit beside its cap; the estimate over-counts, see ``gateway.routing``); a cap
the client set is never changed.

An embeddings request generates nothing: its needs carry a cap of 0 set by the request
(``gateway.routing.embedding_needs``), so it reserves its inputs' estimate, its payload goes
as it came, and it settles to the engine's count of its input tokens.

Settling takes the engine's ``usage.total_tokens``. Without it: the prompt estimate for
a JSON answer, plus a token per 3 bytes for any other answer, or a token per chunk for
a stream.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.model_info import ModelInfo
from gateway.routing import BYTES_PER_TOKEN, Needs

COMPLETIONS_PATH = "/v1/completions"
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
CHAT_CAP_FIELD = "max_completion_tokens"
COMPLETIONS_CAP_FIELD = "max_tokens"


@dataclass(frozen=True, slots=True)
class Budget:
    """The completion cap of one request: its tokens, the payload field, who set it."""

    cap: int
    field: str = CHAT_CAP_FIELD
    explicit: bool = False


def budget(path: str, needs: Needs, default_max_tokens: int) -> Budget:
    """The cap the engine is held to for a request to ``path`` (see the module docstring)."""
    field, default = CHAT_CAP_FIELD, default_max_tokens
    if path == COMPLETIONS_PATH:
        field, default = COMPLETIONS_CAP_FIELD, min(COMPLETIONS_DEFAULT_MAX_TOKENS, default)
    if needs.max_tokens is not None:
        return Budget(needs.max_tokens, field, explicit=True)
    return Budget(default, field)


def reservation(needs: Needs, budget: Budget) -> int:
    """The most tokens the request may use: every prompt and every completion at its cap."""
    return needs.prompt_tokens + needs.prompts * needs.choices * budget.cap


def engine_payload(
    payload: Mapping[str, Any], needs: Needs, budget: Budget, model: ModelInfo
) -> dict[str, Any]:
    """``payload`` for ``model``, carrying the cap the request was reserved for."""
    if budget.explicit:
        return dict(payload)
    cap = budget.cap
    if model.context_length is not None:
        cap = max(1, min(cap, model.context_length - needs.longest_prompt_tokens))
    return {**payload, budget.field: cap}


def reported_tokens(usage: Mapping[str, Any] | None) -> int | None:
    """The engine's ``total_tokens``, if a usage object carries it."""
    total = usage.get("total_tokens") if isinstance(usage, Mapping) else None
    return int(total) if isinstance(total, int) else None


def answered_tokens(body: Any, needs: Needs) -> int:
    """What a JSON answer used: its usage, else the prompt estimate."""
    usage = body.get("usage") if isinstance(body, Mapping) else None
    total = reported_tokens(usage if isinstance(usage, Mapping) else None)
    return needs.prompt_tokens if total is None else total


def text_tokens_used(content: bytes, needs: Needs) -> int:
    """What a non-JSON answer (plain text) used: the prompt estimate and its bytes."""
    return needs.prompt_tokens + math.ceil(len(content) / BYTES_PER_TOKEN)


def streamed_tokens(usage: Mapping[str, Any] | None, chunks: int, needs: Needs) -> int:
    """What a stream used: the last usage seen, else the prompt estimate and one per chunk."""
    total = reported_tokens(usage)
    return needs.prompt_tokens + chunks if total is None else total
