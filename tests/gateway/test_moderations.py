"""``/v1/moderations`` and the content guard through the gateway, in front of the stub.

The stub's classifier scores a judgement prompt 0.97 when it holds one of
``knobs.flag_words`` and 0.02 otherwise, so each decision here is known in advance.
Keys, quotas and usage live in the shared Redis, under a prefix of this test's own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from gateway.app import create_app
from gateway.moderation.policies import CATEGORIES
from tests.gateway.conftest import gateway_settings
from tests.support.chat_stream import drain
from tests.support.media import png_data_url
from tests.support.servers import serve_in_thread
from tests.support.shared_redis import SHARED_REDIS_URL, unique_prefix
from tests.support.stub_upstream import (
    ANSWER,
    IMAGE_JUDGEMENT_TOKENS,
    IMAGE_MODERATION_MODEL,
    LABEL_IDS,
    MODERATION_MODEL,
    TEXT_MODEL,
    StubUpstream,
    moderation_cards,
)

ADMIN = "admin-secret-for-moderations"
MAX_INPUTS = 3
FLAG = "forbidden-word"


@pytest.fixture
def stub() -> Iterator[StubUpstream]:
    with StubUpstream(moderation_cards()) as upstream:
        upstream.knobs.flag_words = {FLAG}
        yield upstream


@pytest.fixture
def gateway(stub: StubUpstream) -> Iterator[str]:
    with unique_prefix("gw-moderation") as prefix:
        quota = {"redis_url": SHARED_REDIS_URL, "key_prefix": prefix, "timeout": 1.0}
        settings = gateway_settings(
            stub.base_url, quota=quota, admin_key=ADMIN, guard={"stream_check_chars": 8}
        )
        settings.limits.max_moderation_inputs = MAX_INPUTS
        with serve_in_thread(create_app(settings)) as url:
            yield url


def _key(gateway: str, **fields: Any) -> str:
    created = httpx.post(
        f"{gateway}/admin/keys",
        json={"tenant": "moderation", "limits": {"tokens_per_day": 1_000_000}, **fields},
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert created.status_code == 201, created.text
    secret: str = created.json()["key"]
    return secret


def _client(gateway: str, secret: str) -> OpenAI:
    return OpenAI(base_url=gateway + "/v1", api_key=secret, max_retries=0, timeout=30)


@pytest.fixture
def api(gateway: str) -> Iterator[OpenAI]:
    with _client(gateway, _key(gateway)) as client:
        yield client


def _sent(stub: StubUpstream, path: str) -> list[dict[str, Any]]:
    return [body for p, body in stub.requests if p == path]


def test_moderations_in_openai_shape(api: OpenAI, stub: StubUpstream) -> None:
    one = api.moderations.create(input="a lighthouse at dusk")
    assert one.id.startswith("modr-")
    assert one.model == MODERATION_MODEL
    [result] = one.results
    assert result.flagged is False
    assert result.model_dump(exclude_none=True)["categories"] == dict.fromkeys(CATEGORIES, False)
    scores = result.model_dump(exclude_none=True)["category_scores"]
    assert set(scores) == set(CATEGORIES)
    assert all(score == pytest.approx(0.02) for score in scores.values())

    many = api.moderations.create(model="auto", input=["calm text", f"a {FLAG} here"])
    assert [r.flagged for r in many.results] == [False, True]
    flagged = many.results[1].model_dump(exclude_none=True)
    assert flagged["categories"] == dict.fromkeys(CATEGORIES, True)
    assert flagged["category_applied_input_types"]["hate"] == ["text"]

    [scored, _] = _sent(stub, "/v1/completions")
    assert scored["logprob_token_ids"] == [LABEL_IDS["Yes"], LABEL_IDS["No"]]
    assert scored["max_tokens"] == 1
    assert len(scored["prompt"]) == len(CATEGORIES)
    assert "Human Question: a lighthouse at dusk" in scored["prompt"][0]
    assert len(_sent(stub, "/tokenize")) == 2  # Yes and No, asked once for the model


def test_content_parts_make_one_result(api: OpenAI) -> None:
    parts: Any = [{"type": "text", "text": "first"}, {"type": "text", "text": FLAG}]
    answer = api.moderations.create(input=parts)
    assert len(answer.results) == 1
    assert answer.results[0].flagged


def _image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def test_images_are_judged_per_policy_by_the_image_classifier_and_charged(
    gateway: str, stub: StubUpstream
) -> None:
    stub.knobs.flag_words = {"No Violence/Gore content"}  # the stub flags one policy's text
    secret = _key(gateway)
    with _client(gateway, secret) as api:
        one = api.moderations.create(input=[_image(png_data_url())])  # type: ignore[list-item]
        two = api.moderations.create(
            input=[_image(png_data_url()), _image(png_data_url(32, 32))]  # type: ignore[list-item]
        )
    assert one.model == two.model == IMAGE_MODERATION_MODEL
    [result] = one.results
    shown = result.model_dump(exclude_none=True)
    assert shown["categories"] == {"dangerous": False, "sexual": False, "violence": True}
    assert shown["category_scores"]["violence"] == pytest.approx(0.97)
    assert shown["category_scores"]["sexual"] == pytest.approx(0.02)
    assert shown["category_applied_input_types"] == {key: ["image"] for key in shown["categories"]}
    assert len(two.results) == 1
    assert two.results[0].flagged

    judged = _sent(stub, "/v1/chat/completions")
    assert len(judged) == 3 + 6  # an image once per policy
    for body in judged:
        image, policy = body["messages"][0]["content"]
        assert image["type"] == "image_url"
        assert image["image_url"]["url"].startswith("data:")
        assert policy["text"].endswith(").")
        assert body["max_tokens"] == 1
        assert body["logprobs"] is True
        assert body["logprob_token_ids"] == [LABEL_IDS["Yes"], LABEL_IDS["No"]]
    assert [b["messages"][0]["content"][1]["text"].split(":")[0] for b in judged[:3]] == [
        "No Dangerous Content",
        "No Sexually Explicit content",
        "No Violence/Gore content",
    ]
    usage = httpx.get(f"{gateway}/v1/usage", headers={"authorization": f"Bearer {secret}"})
    [row] = usage.json()["data"]
    read = sum(
        IMAGE_JUDGEMENT_TOKENS + len(b["messages"][0]["content"][1]["text"]) // 4 + 1
        for b in judged
    )
    assert row["model"] == IMAGE_MODERATION_MODEL
    assert row["day"] == {**row["day"], "requests": 2, "tokens": read}


def test_text_classifiers_and_image_classifiers_take_only_their_inputs(
    api: OpenAI, gateway: str, stub: StubUpstream
) -> None:
    assert api.moderations.create(input="words").model == MODERATION_MODEL
    mixed: Any = [{"type": "text", "text": "a caption"}, _image(png_data_url())]
    with pytest.raises(openai.BadRequestError) as refused:
        api.moderations.create(input=mixed)
    assert refused.value.code == "unsupported_value"
    with pytest.raises(openai.BadRequestError) as refused:
        api.moderations.create(model=MODERATION_MODEL, input=[_image(png_data_url())])  # type: ignore[list-item]
    assert refused.value.code == "model_capability_missing"
    with pytest.raises(openai.BadRequestError) as refused:
        api.moderations.create(model=IMAGE_MODERATION_MODEL, input="words")
    assert refused.value.code == "model_capability_missing"
    with pytest.raises(openai.BadRequestError) as refused:  # checked as chat's images are
        api.moderations.create(input=[_image("data:image/png;base64,AAAA")])  # type: ignore[list-item]
    assert refused.value.status_code == 400
    assert _sent(stub, "/v1/chat/completions") == []


def test_an_image_judgement_the_engine_refuses_fails_the_request_and_charges_nothing(
    gateway: str, stub: StubUpstream
) -> None:
    secret = _key(gateway)
    stub.knobs.unavailable = {IMAGE_MODERATION_MODEL}
    with _client(gateway, secret) as api, pytest.raises(openai.APIStatusError) as failed:
        api.moderations.create(input=[_image(png_data_url())])  # type: ignore[list-item]
    assert failed.value.status_code == 503
    usage = httpx.get(f"{gateway}/v1/usage", headers={"authorization": f"Bearer {secret}"})
    assert all(row["day"]["tokens"] == 0 for row in usage.json()["data"])


def test_the_key_is_charged_what_the_classifier_read(gateway: str, stub: StubUpstream) -> None:
    secret = _key(gateway)
    with _client(gateway, secret) as api:
        api.moderations.create(input="one text")
    usage = httpx.get(f"{gateway}/v1/usage", headers={"authorization": f"Bearer {secret}"})
    [row] = usage.json()["data"]
    prompt_tokens = sum(max(1, len(p) // 4) for p in _sent(stub, "/v1/completions")[0]["prompt"])
    assert row["model"] == MODERATION_MODEL
    assert row["day"]["tokens"] == prompt_tokens + len(CATEGORIES)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"input": ""}, "empty_input"),
        ({"input": []}, "empty_input"),
        ({"input": ["fine", "  "]}, "empty_input"),
        ({"input": ["a", "b", "c", "d"]}, "too_many_inputs"),
        ({"input": 42}, None),
        ({"input": [{"type": "audio", "data": "x"}]}, "invalid_type"),
        ({"input": "x", "model": TEXT_MODEL}, "model_capability_missing"),
        ({"input": "x", "threshold": 0.1}, "unknown_parameter"),
        ({"model": "auto"}, None),
    ],
)
def test_bad_input_is_a_400_and_the_gateway_keeps_serving(
    api: OpenAI, gateway: str, body: dict[str, Any], code: str | None
) -> None:
    answer = httpx.post(
        f"{gateway}/v1/moderations",
        json=body,
        headers={"authorization": f"Bearer {api.api_key}"},
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    assert api.moderations.create(input="still serving").results


def test_auto_never_sends_a_chat_to_the_classifier(api: OpenAI, stub: StubUpstream) -> None:
    chat = api.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    assert chat.model != MODERATION_MODEL
    with pytest.raises(openai.BadRequestError) as refused:
        api.chat.completions.create(
            model=MODERATION_MODEL, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.code == "model_capability_missing"


def _metric(gateway: str, name: str, **labels: str) -> float:
    """The value of one series of the gateway's ``/metrics`` (0 when it is not there)."""
    for line in httpx.get(f"{gateway}/metrics").text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_guarded_prompt_is_refused_before_the_engine_and_logged_by_hash(
    gateway: str, stub: StubUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    secret = _key(gateway, guard={"mode": "prompts"})
    with _client(gateway, secret) as api, caplog.at_level(logging.WARNING, "gateway.guard"):
        fine = api.chat.completions.create(
            model=TEXT_MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=4
        )
        assert fine.choices[0].message.content == ANSWER
        with pytest.raises(openai.BadRequestError) as refused:
            api.chat.completions.create(
                model=TEXT_MODEL,
                messages=[{"role": "user", "content": f"tell me a {FLAG}"}],
                max_tokens=4,
            )
    assert refused.value.code == "content_policy_violation"
    assert len(_sent(stub, "/v1/chat/completions")) == 1  # the refused one never went
    [record] = [r for r in caplog.records if r.name == "gateway.guard"]
    assert len(record.__dict__["content_sha256"]) == 64
    assert record.__dict__["stage"] == "prompt"
    assert FLAG not in record.getMessage()
    assert FLAG not in json.dumps(record.__dict__, default=str)
    assert _metric(gateway, "gateway_guard_refusals_total", stage="prompt", category="hate") == 1
    assert _metric(gateway, "gateway_guard_checks_total", stage="prompt", outcome="passed") == 1
    usage = httpx.get(f"{gateway}/v1/usage", headers={"authorization": f"Bearer {secret}"})
    [row] = usage.json()["data"]
    assert fine.usage is not None
    assert row["day"]["tokens"] == fine.usage.total_tokens  # nothing charged for the refusal


def test_a_key_without_a_guard_is_never_screened(api: OpenAI, stub: StubUpstream) -> None:
    api.chat.completions.create(
        model=TEXT_MODEL, messages=[{"role": "user", "content": FLAG}], max_tokens=4
    )
    assert _sent(stub, "/v1/completions") == []


def test_answers_are_screened_whole_and_streamed(gateway: str, stub: StubUpstream) -> None:
    stub.knobs.flag_words = {"stub"}  # the stub's answer: "Hello from the stub upstream."
    secret = _key(gateway, guard={"mode": "prompts_and_answers"})
    messages: Any = [{"role": "user", "content": "say hello"}]
    with _client(gateway, secret) as api:
        with pytest.raises(openai.BadRequestError) as refused:
            api.chat.completions.create(model=TEXT_MODEL, messages=messages, max_tokens=8)
        assert refused.value.code == "content_policy_violation"
        stream = api.chat.completions.create(
            model=TEXT_MODEL, messages=messages, max_tokens=8, stream=True
        )
        shown, broken = drain(stream)
    assert "content guard" in str(broken)
    assert shown.startswith("Hello")
    assert "stub" not in shown
    assert _metric(gateway, "gateway_guard_refusals_total", stage="answer", category="sexual") == 2


def test_thresholds_per_key_and_stage(gateway: str, stub: StubUpstream) -> None:
    stub.knobs.flag_words = {"stub"}
    guard = {
        "mode": "prompts_and_answers",
        "answer_thresholds": dict.fromkeys(CATEGORIES, 0.99),
    }
    with _client(gateway, _key(gateway, guard=guard)) as api:
        answer = api.chat.completions.create(
            model=TEXT_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=8
        )
    assert answer.choices[0].message.content == ANSWER  # 0.97 is under 0.99


def test_the_guard_fails_closed(gateway: str, stub: StubUpstream) -> None:
    stub.knobs.unavailable = {MODERATION_MODEL}
    with (
        _client(gateway, _key(gateway, guard={"mode": "prompts"})) as api,
        pytest.raises(openai.APIStatusError) as refused,
    ):
        api.chat.completions.create(
            model=TEXT_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    assert refused.value.status_code == 503
    assert _sent(stub, "/v1/chat/completions") == []


@pytest.mark.parametrize(
    "guard",
    [
        {"mode": "sometimes"},
        {"mode": "prompts", "prompt_thresholds": {"hate": 1.5}},
        {"mode": "prompts", "prompt_thresholds": {"violence": 0.5}},
        {"mode": "prompts", "answer_thresholds": {"hate": "0.5"}},
        {"mode": "prompts", "extra": 1},
    ],
)
def test_the_admin_api_refuses_a_bad_guard(gateway: str, guard: dict[str, Any]) -> None:
    created = httpx.post(
        f"{gateway}/admin/keys",
        json={"tenant": "moderation", "guard": guard},
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert created.status_code == 400, created.text


def test_the_admin_api_sets_and_shows_a_guard(gateway: str) -> None:
    admin = {"authorization": f"Bearer {ADMIN}"}
    created = httpx.post(f"{gateway}/admin/keys", json={"tenant": "t"}, headers=admin).json()
    assert created["guard"]["mode"] == "off"
    guard = {"mode": "prompts_and_answers", "answer_thresholds": {"sexual": 0.2}}
    changed = httpx.put(f"{gateway}/admin/keys/{created['id']}/guard", json=guard, headers=admin)
    assert changed.status_code == 200, changed.text
    shown = httpx.get(f"{gateway}/admin/keys/{created['id']}", headers=admin).json()
    assert shown["guard"] == {
        "mode": "prompts_and_answers",
        "prompt_thresholds": {},
        "answer_thresholds": {"sexual": 0.2},
    }


def test_the_guard_screens_the_responses_api_too(gateway: str, stub: StubUpstream) -> None:
    with _client(gateway, _key(gateway, guard={"mode": "prompts"})) as api:
        fine = api.responses.create(model=TEXT_MODEL, input="hello", max_output_tokens=8)
        assert fine.output_text == ANSWER
        with pytest.raises(openai.BadRequestError) as refused:
            api.responses.create(model=TEXT_MODEL, input=f"a {FLAG}", max_output_tokens=8)
    assert refused.value.code == "content_policy_violation"
    assert len(_sent(stub, "/v1/chat/completions")) == 1


def test_a_guarded_key_s_token_prompts_are_refused(gateway: str, stub: StubUpstream) -> None:
    with (
        _client(gateway, _key(gateway, guard={"mode": "prompts"})) as api,
        pytest.raises(openai.BadRequestError) as refused,
    ):
        api.completions.create(model=TEXT_MODEL, prompt=[5, 6, 7], max_tokens=4)
    assert refused.value.code == "unsupported_parameter"
    assert _sent(stub, "/v1/completions") == []
