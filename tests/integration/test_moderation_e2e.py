"""``/v1/moderations`` and the guard on the ShieldGemma fixture (cpu-full), with the openai client.

The fixture has ShieldGemma's architecture and random weights, so its scores are noise; the
tests check what the engine's scores become (a softmax over ``Yes`` and ``No`` read through
vLLM's ``logprob_token_ids``) and force each guard decision with thresholds of 0 (every
score is above it) and 1 (none is).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from gateway.moderation.policies import CATEGORIES
from serving.runner import LocalServing
from tests.integration.conftest import MODERATION_MODEL, TEXT_MODEL
from tests.support.chat_stream import drain
from tests.support.local_gateway import gateway_in_front, key_client, usage_by_model

pytestmark = pytest.mark.integration

ADMIN = "admin-key-for-moderation-e2e"
NEVER = dict.fromkeys(CATEGORIES, 1.0)
ALWAYS = dict.fromkeys(CATEGORIES, 0.0)
MESSAGES: Any = [{"role": "user", "content": "Write a poem about the sea."}]


@pytest.fixture(scope="module")
def gateway(serve_stack: LocalServing) -> Iterator[str]:
    with gateway_in_front(
        serve_stack.base_url,
        name="moderation-e2e",
        admin_key=ADMIN,
        guard={"stream_check_chars": 16},
    ) as url:
        yield url


def _client(gateway: str, **fields: Any) -> OpenAI:
    return key_client(gateway, ADMIN, "moderation-e2e", **fields)


def test_moderations_score_every_category_from_the_engine(gateway: str) -> None:
    with _client(gateway) as api:
        answer = api.moderations.create(input=["a calm sea", "a quiet harbour"])
        assert answer.model == MODERATION_MODEL
        assert answer.id.startswith("modr-")
        assert len(answer.results) == 2
        for result in answer.results:
            dumped = result.model_dump(exclude_none=True)
            scores = dumped["category_scores"]
            assert set(scores) == set(CATEGORIES)
            assert all(0 < s < 1 for s in scores.values())  # a softmax of two labels
            assert dumped["categories"] == {c: s > 0.5 for c, s in scores.items()}
            assert result.flagged == any(s > 0.5 for s in scores.values())
        # The same text scores the same (greedy, one token): the engine's numbers, not noise
        # made here.
        again = api.moderations.create(input="a calm sea").results[0]
        assert again.category_scores == answer.results[0].category_scores
        usage = usage_by_model(api)[MODERATION_MODEL]
        assert usage["requests"] == 2
        assert usage["tokens"] > 8 * 100


def test_a_guarded_prompt_is_refused_and_nothing_is_charged(gateway: str) -> None:
    with _client(gateway, guard={"mode": "prompts", "prompt_thresholds": ALWAYS}) as api:
        with pytest.raises(openai.BadRequestError) as refused:
            api.chat.completions.create(model=TEXT_MODEL, messages=MESSAGES, max_tokens=8)
        assert refused.value.code == "content_policy_violation"
        assert usage_by_model(api).get(TEXT_MODEL, {}).get("tokens", 0) == 0
    with _client(gateway, guard={"mode": "prompts", "prompt_thresholds": NEVER}) as api:
        answer = api.chat.completions.create(model=TEXT_MODEL, messages=MESSAGES, max_tokens=8)
        assert answer.choices[0].message.content


def test_answers_are_screened_streamed_or_not(gateway: str) -> None:
    refuse_answers = {
        "mode": "prompts_and_answers",
        "prompt_thresholds": NEVER,
        "answer_thresholds": ALWAYS,
    }
    with _client(gateway, guard=refuse_answers) as api:
        with pytest.raises(openai.BadRequestError) as refused:
            api.chat.completions.create(model=TEXT_MODEL, messages=MESSAGES, max_tokens=16)
        assert refused.value.code == "content_policy_violation"
        stream = api.chat.completions.create(
            model=TEXT_MODEL, messages=MESSAGES, max_tokens=64, stream=True
        )
        shown, broken = drain(stream)
        assert "content guard" in str(broken)
        assert shown == ""  # every screening refused: nothing unscreened was shown
    let_through = {**refuse_answers, "answer_thresholds": NEVER}
    with _client(gateway, guard=let_through) as api:
        stream = api.chat.completions.create(
            model=TEXT_MODEL, messages=MESSAGES, max_tokens=32, stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert len(text) > 16  # screened more than once on the way, all of it shown
    metrics = httpx.get(f"{gateway}/metrics").text
    assert re.search(
        r'gateway_guard_refusals_total\{category="\w+",stage="answer"\} [1-9]', metrics
    )
    assert re.search(
        r'gateway_guard_checks_total\{outcome="passed",stage="answer"\} [1-9]', metrics
    )
