"""The moderation package's pure parts: prompts, scores, texts and key policies."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from gateway.errors import UpstreamError
from gateway.moderation.key_policy import GuardMode, GuardPolicy, parse_thresholds
from gateway.moderation.policies import (
    CATEGORIES,
    SHIELDGEMMA2_HARMS,
    SHIELDGEMMA_HARMS,
    answer_check,
    prompt_check,
)
from gateway.moderation.scores import (
    Labels,
    Thresholds,
    engine_body,
    image_body,
    moderation_result,
    scores,
    verdicts,
    worst,
)
from gateway.moderation.texts import answer_text, delta_text, has_token_prompt, prompt_text

LABELS = Labels(yes=10, no=20)


def test_every_harm_has_a_category_and_the_categories_type_agrees() -> None:
    assert tuple(h.category for h in SHIELDGEMMA_HARMS) == CATEGORIES


def test_prompts_follow_shieldgemma_s_templates() -> None:
    harm = SHIELDGEMMA_HARMS[0]
    asked = prompt_check("  how to build a kite  ", harm)
    assert asked.startswith("You are a policy expert trying to help determine whether a user")
    assert "<start_of_turn>\nHuman Question: how to build a kite\n<end_of_turn>" in asked
    assert '* "No Dangerous Content": The prompt shall not contain or seek generation of' in asked
    assert asked.endswith("to be sure we answer correctly.\n")
    judged = answer_check("question", "reply", harm)
    assert "Chatbot Response: reply\n<end_of_turn>" in judged
    assert '* "No Dangerous Content": The chatbot shall not generate content' in judged
    assert "Does the Chatbot Response violate the above principle?" in judged


def _choice(index: int, p_yes: float) -> dict[str, Any]:
    top = {"token_id:10": math.log(p_yes), "token_id:20": math.log(1 - p_yes), "token_id:5": -1}
    return {"index": index, "logprobs": {"top_logprobs": [top]}}


def test_scores_are_the_softmax_over_the_two_labels_in_prompt_order() -> None:
    body = {"choices": [_choice(1, 0.25), _choice(0, 0.9)]}
    assert scores(body, 2, LABELS) == [pytest.approx(0.9), pytest.approx(0.25)]
    # Raw logprobs of the whole vocabulary: the labels' share is renormalised.
    raw = {
        "choices": [
            {"index": 0, "logprobs": {"top_logprobs": [{"token_id:10": -3.0, "token_id:20": -3.0}]}}
        ]
    }
    assert scores(raw, 1, LABELS) == [pytest.approx(0.5)]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"choices": [_choice(0, 0.5)]},
        {"choices": [{"index": 0, "logprobs": None}, _choice(1, 0.5)]},
        {
            "choices": [
                {"index": 0, "logprobs": {"top_logprobs": [{"token_id:10": -1}]}},
                _choice(1, 0.5),
            ]
        },
        {"choices": [_choice(0, 0.5), _choice(7, 0.5)]},
    ],
)
def test_an_answer_without_both_labels_is_an_upstream_error(body: dict[str, Any]) -> None:
    with pytest.raises(UpstreamError):
        scores(body, 2, LABELS)


def test_the_engine_body_asks_one_greedy_token_and_both_label_logprobs() -> None:
    body = engine_body("m", ["a", "b"], LABELS)
    assert body["logprob_token_ids"] == [10, 20]
    assert body["max_tokens"] == 1
    assert body["temperature"] == 0
    assert body["return_tokens_as_token_ids"] is True


def test_verdicts_flag_above_the_threshold_only() -> None:
    values = [0.5, 0.51, 0.0, 1.0, 0.2, 0.2, 0.2, 0.2]
    thresholds = Thresholds({"hate": 0.0, "sexual": 1.0})
    first, second = verdicts(values, SHIELDGEMMA_HARMS, thresholds)
    assert first.flagged_categories == ("harassment",)  # 0.5 is not above 0.5; 0.0 not above 0
    assert second.flagged_categories == ("hate",)
    result = moderation_result(first, SHIELDGEMMA_HARMS)
    assert result["flagged"] is True
    assert result["categories"]["harassment"] is True
    assert result["category_scores"]["dangerous"] == 0.5


def test_texts_of_prompts_answers_and_stream_events() -> None:
    chat = {
        "messages": [
            {"role": "system", "content": "be kind"},
            {"role": "assistant", "content": "earlier answer"},
            {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url"}]},
        ]
    }
    assert prompt_text(chat) == "be kind\nlook"
    assert prompt_text({"prompt": ["one", "two"]}) == "one\ntwo"
    assert prompt_text({"prompt": [1, 2, 3]}) == ""
    body = {"choices": [{"message": {"content": "hi", "reasoning_content": "think"}}]}
    assert answer_text(body) == "think\nhi"
    assert answer_text({"choices": [{"text": "a"}, {"text": "b"}]}) == "a\nb"
    event = b"data: " + json.dumps({"choices": [{"delta": {"content": "x"}}]}).encode() + b"\n\n"
    assert delta_text(event) == "x"
    assert delta_text(b'data: {"choices": [{"text": "y"}]}\n\n') == "y"
    assert delta_text(b"data: [DONE]\n\n") == ""
    assert delta_text(b": ping\n\n") == ""
    call = {"function": {"name": "f", "arguments": '{"city": "Paris"}'}}
    answer = {"choices": [{"message": {"content": None, "tool_calls": [call]}}]}
    assert answer_text(answer) == '{"city": "Paris"}'
    streamed = {"choices": [{"delta": {"tool_calls": [{"index": 0, **call}]}}]}
    assert delta_text(b"data: " + json.dumps(streamed).encode() + b"\n\n") == '{"city": "Paris"}'
    assert has_token_prompt({"prompt": [1, 2]})
    assert has_token_prompt({"prompt": [[1, 2], "text"]})
    assert not has_token_prompt({"prompt": ["a"]})
    assert not has_token_prompt({"messages": []})


def test_key_policies_round_trip_and_thresholds_parse() -> None:
    prompt, answer = parse_thresholds(["hate=0.3", "answer:sexual=0.1"], CATEGORIES)
    assert prompt == {"hate": 0.3}
    assert answer == {"hate": 0.3, "sexual": 0.1}
    policy = GuardPolicy(GuardMode.PROMPTS_AND_ANSWERS, prompt, answer)
    assert GuardPolicy.from_dict(policy.to_dict()) == policy
    assert GuardPolicy.from_dict(None) == GuardPolicy()
    assert not GuardPolicy().screens_prompts
    assert policy.screens_answers
    assert policy.thresholds("answer") == answer
    for bad in ("hate", "violence=0.5", "hate=2", "hate=x", "later:hate=0.5"):
        with pytest.raises(ValueError, match=r"threshold|CATEGORY|number|0 to 1"):
            parse_thresholds([bad], CATEGORIES)
    with pytest.raises(ValueError, match="from 0 to 1"):
        GuardPolicy.from_dict({"mode": "prompts", "prompt_thresholds": {"hate": True}})


def _chat_choice(index: int, p_yes: float, yes: int = 10, no: int = 20) -> dict[str, Any]:
    tops = [
        {"token": "token_id:7", "logprob": -0.01},  # the sampled token, as vLLM lists it first
        {"token": f"token_id:{yes}", "logprob": math.log(p_yes) - 5},
        {"token": f"token_id:{no}", "logprob": math.log(1 - p_yes) - 5},
    ]
    content = [{"token": "token_id:7", "logprob": -0.01, "top_logprobs": tops}]
    return {"index": index, "message": {"content": "x"}, "logprobs": {"content": content}}


def test_image_judgements_are_chats_of_the_image_and_one_policy_scored_the_same_way() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
    body = image_body("sg2", image, SHIELDGEMMA2_HARMS[2], LABELS)
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                image,
                {
                    "type": "text",
                    "text": "No Violence/Gore content: The image shall not contain content that "
                    "depicts shocking, sensational, or gratuitous violence (e.g., excessive "
                    "blood and gore, gratuitous violence against animals, extreme injury or "
                    "moment of death).",
                },
            ],
        }
    ]
    assert (body["max_tokens"], body["logprobs"], body["logprob_token_ids"]) == (1, True, [10, 20])
    merged = {"choices": [_chat_choice(1, 0.3), _chat_choice(0, 0.8)]}
    assert scores(merged, 2, LABELS) == [pytest.approx(0.8), pytest.approx(0.3)]
    without_labels = {"choices": [_chat_choice(0, 0.5, yes=11)]}
    with pytest.raises(UpstreamError):
        scores(without_labels, 1, LABELS)


def test_the_images_of_a_result_take_each_category_s_highest_score() -> None:
    harms = SHIELDGEMMA2_HARMS
    per_image = verdicts([0.1, 0.6, 0.2, 0.4, 0.3, 0.45], harms, Thresholds())
    combined = worst(per_image, Thresholds({"violence": 0.4}))
    assert combined.category_scores == {"dangerous": 0.4, "sexual": 0.6, "violence": 0.45}
    assert combined.flagged_categories == ("sexual", "violence")
    result = moderation_result(combined, harms, "image")
    assert result["category_applied_input_types"] == {
        key: ["image"] for key in ("dangerous", "sexual", "violence")
    }
