"""Token accounting: reservations, the cap sent to the engine, settlement (pure arithmetic)."""

from __future__ import annotations

import pytest

from gateway import accounting
from gateway.model_info import ModelInfo
from gateway.routing import Needs, chat_needs, completion_needs, route, text_tokens

DEFAULT = 1024
MODEL = ModelInfo(id="m", capabilities=frozenset({"text"}), context_length=4096, order=0)
USER = {"role": "user", "content": "hi"}


def reserved(path: str, needs: Needs) -> int:
    return accounting.reservation(needs, accounting.budget(path, needs, DEFAULT))


def test_every_prompt_of_a_completion_is_reserved_at_its_cap() -> None:
    prompts = [f"prompt {i}" for i in range(50)]
    needs = completion_needs({"prompt": prompts, "max_tokens": 100})
    assert (needs.prompts, needs.choices) == (50, 1)
    assert needs.prompt_tokens == sum(text_tokens(p) for p in prompts)
    assert reserved("/v1/completions", needs) == needs.prompt_tokens + 50 * 100


@pytest.mark.parametrize(
    ("prompt", "estimates"),
    [
        ("abcdef", [2]),
        (["abc", "abcdef"], [1, 2]),
        ([5, 6, 7], [3]),
        ([[5, 6], [7]], [2, 1]),
        ([], [0]),
    ],
)
def test_prompt_forms(prompt: object, estimates: list[int]) -> None:
    needs = completion_needs({"prompt": prompt})
    assert needs.prompts == len(estimates)
    assert needs.prompt_tokens == sum(estimates)
    assert needs.longest_prompt_tokens == max(estimates)


def test_best_of_and_n_reserve_the_larger() -> None:
    best_of = completion_needs({"prompt": "hi", "max_tokens": 100, "best_of": 8, "n": 2})
    assert reserved("/v1/completions", best_of) == best_of.prompt_tokens + 8 * 100
    chat = chat_needs({"messages": [USER], "n": 3, "max_completion_tokens": 50})
    assert reserved("/v1/chat/completions", chat) == chat.prompt_tokens + 3 * 50


def test_a_chat_without_a_cap_is_sent_and_reserved_the_default() -> None:
    needs = chat_needs({"messages": [USER]})
    budget = accounting.budget("/v1/chat/completions", needs, DEFAULT)
    assert (budget.cap, budget.field, budget.explicit) == (DEFAULT, "max_completion_tokens", False)
    assert accounting.reservation(needs, budget) == needs.prompt_tokens + DEFAULT
    sent = accounting.engine_payload({"messages": [USER]}, needs, budget, MODEL)
    assert sent["max_completion_tokens"] == DEFAULT


def test_a_completion_without_a_cap_gets_the_api_default() -> None:
    needs = completion_needs({"prompt": ["a", "b"]})
    budget = accounting.budget("/v1/completions", needs, DEFAULT)
    assert (budget.cap, budget.field) == (16, "max_tokens")
    assert accounting.reservation(needs, budget) == needs.prompt_tokens + 2 * 16
    assert accounting.budget("/v1/completions", needs, 8).cap == 8


def test_a_cap_the_client_set_is_sent_as_it_is() -> None:
    payload = {"messages": [USER], "max_tokens": 30}
    needs = chat_needs(payload)
    budget = accounting.budget("/v1/chat/completions", needs, DEFAULT)
    assert budget == accounting.Budget(30, "max_completion_tokens", explicit=True)
    assert accounting.engine_payload(payload, needs, budget, MODEL) == payload


def test_a_written_cap_leaves_the_longest_prompt_room_in_the_context() -> None:
    needs = Needs(frozenset({"text"}), 4500, prompts=2, longest_prompt=4000)
    budget = accounting.budget("/v1/chat/completions", needs, DEFAULT)
    assert accounting.engine_payload({}, needs, budget, MODEL)["max_completion_tokens"] == 96
    unknown = ModelInfo(id="u", capabilities=frozenset({"text"}), context_length=None, order=1)
    assert accounting.engine_payload({}, needs, budget, unknown)["max_completion_tokens"] == DEFAULT
    full = Needs(frozenset({"text"}), 5000)
    assert accounting.engine_payload({}, full, budget, MODEL)["max_completion_tokens"] == 1


def test_the_context_check_takes_the_longest_prompt_not_the_sum() -> None:
    needs = completion_needs({"prompt": ["x" * 300] * 50, "max_tokens": 100})
    assert needs.prompt_tokens == 5000  # more than the context, summed
    assert route("m", needs, [MODEL], aliases={}).candidates == (MODEL,)


def test_settlement_takes_the_usage_else_an_estimate() -> None:
    needs = Needs(frozenset({"text"}), 10)
    assert accounting.answered_tokens({"usage": {"total_tokens": 42}}, needs) == 42
    assert accounting.answered_tokens({"usage": None}, needs) == 10
    assert accounting.answered_tokens([], needs) == 10
    assert accounting.text_tokens_used(b"x" * 7, needs) == 13
    assert accounting.streamed_tokens({"total_tokens": 5}, 9, needs) == 5
    assert accounting.streamed_tokens(None, 9, needs) == 19
