"""The traffic mix, the shipped prompt set and the request bodies built from them."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from loadtests.mix import CAPABILITIES, Mix, lead_for, parse_mix
from loadtests.payloads import chat_body
from loadtests.prompts import load_prompts
from loadtests.report import is_quota_refusal
from loadtests.settings import DEFAULT_MIX, DEFAULT_PROMPTS, split_keys


def test_parse_mix() -> None:
    assert parse_mix("stream=4, chat=1,image=0,audio") == {"stream": 4.0, "chat": 1.0, "audio": 1.0}
    assert set(parse_mix(DEFAULT_MIX)) == set(CAPABILITIES)


@pytest.mark.parametrize("text", ["video=1", "chat=-1", "chat=0", ""])
def test_bad_mixes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        parse_mix(text)


def test_mix_draws_by_weight() -> None:
    mix = Mix({"stream": 3, "chat": 1}, rng=random.Random(1))
    drawn = Counter(mix.draw() for _ in range(4000))
    assert set(drawn) == {"stream", "chat"}
    assert 2.5 < drawn["stream"] / drawn["chat"] < 3.5


def test_users_open_with_different_capabilities_then_follow_the_weights() -> None:
    weights = parse_mix(DEFAULT_MIX)
    firsts = [Mix(weights, lead=lead_for(weights, n)).draw() for n in range(len(weights))]
    assert sorted(firsts) == sorted(weights)
    mix = Mix({"stream": 3, "chat": 1}, rng=random.Random(1), lead="chat")
    assert mix.draw() == "chat"
    drawn = Counter(mix.draw() for _ in range(4000))
    assert 2.5 < drawn["stream"] / drawn["chat"] < 3.5
    assert Mix({"stream": 1}, lead="audio").draw() == "stream"  # a lead outside the mix


def test_shipped_prompts_vary_in_length() -> None:
    prompts = load_prompts(DEFAULT_PROMPTS)
    words = sorted(len(p.text.split()) for p in prompts)
    assert len(prompts) >= 50
    assert len({p.id for p in prompts}) == len(prompts)
    assert words[0] < 10
    assert words[-1] > 300


def test_split_keys() -> None:
    assert split_keys(" gsk-a, ,gsk-b,") == ["gsk-a", "gsk-b"]


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_bodies(capability: str) -> None:
    body = chat_body(capability, "Hi", model="auto", max_tokens=16)
    assert body["stream"] is (capability != "chat") if "stream" in body else capability == "chat"
    content = body["messages"][0]["content"]
    kinds = {part["type"] for part in content} if isinstance(content, list) else {"text"}
    expected = {"image": "image_url", "audio": "input_audio"}.get(capability, "text")
    assert expected in kinds
    assert ("tools" in body) is (capability == "tools")


def test_quota_refusal() -> None:
    body = {"error": {"type": "rate_limit_exceeded", "message": "slow down"}}
    assert is_quota_refusal(429, body)
    assert is_quota_refusal(429, {"error": {"type": "insufficient_quota"}})
    assert not is_quota_refusal(429, {"error": {"type": "server_error"}})
    assert not is_quota_refusal(503, body)
    assert not is_quota_refusal(429, "Too Many Requests")
