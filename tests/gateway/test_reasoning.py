"""Thinking requests: the capability they need, the engine switch the gateway sets, and the
reasoning in answers passed through untouched and paid for in completion tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.errors import InvalidRequest
from gateway.quotas.protocol import ApiKey
from gateway.reasoning import thinking_payload, wants_thinking
from gateway.routing import chat_needs
from tests.gateway.conftest import gateway_settings
from tests.gateway.test_quota_path import RecordingGate, finishes
from tests.support.servers import serve_in_thread
from tests.support.stub_upstream import (
    ANSWER,
    GEMMA_4_MODEL,
    TEXT_MODEL,
    VISION_MODEL,
    StubUpstream,
    gemma_4_cards,
)

USER = {"role": "user", "content": "Why is the sky blue?"}
THINKING = ["The ", "sky ", "scatters ", "blue."]


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [USER], **extra}


@pytest.mark.parametrize(
    ("extra", "wanted"),
    [
        ({}, False),
        ({"reasoning_effort": "low"}, True),
        ({"reasoning_effort": "high"}, True),
        ({"reasoning_effort": "none"}, False),
        ({"reasoning_effort": "minimal"}, False),
        ({"chat_template_kwargs": {"enable_thinking": True}}, True),
        ({"chat_template_kwargs": {"enable_thinking": False}, "reasoning_effort": "high"}, False),
        ({"chat_template_kwargs": {"enable_thinking": True}, "reasoning_effort": "none"}, True),
    ],
)
def test_thinking_needs_the_reasoning_capability(extra: dict[str, Any], wanted: bool) -> None:
    body = chat(**extra)
    assert wants_thinking(body) is wanted
    assert ("reasoning" in chat_needs(body).capabilities) is wanted


def test_the_switch_follows_the_effort_unless_the_client_set_it() -> None:
    on = thinking_payload(chat(reasoning_effort="medium", chat_template_kwargs={"x": 1}))
    assert on["reasoning_effort"] == "medium"
    assert on["chat_template_kwargs"] == {"x": 1, "enable_thinking": True}
    off = thinking_payload(chat(reasoning_effort="minimal"))
    assert off["chat_template_kwargs"] == {"enable_thinking": False}
    explicit = chat(reasoning_effort="high", chat_template_kwargs={"enable_thinking": False})
    assert thinking_payload(explicit) == explicit
    assert thinking_payload(chat()) == chat()


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"chat_template_kwargs": ["enable_thinking"]}, "chat_template_kwargs"),
        ({"chat_template_kwargs": {"enable_thinking": "yes"}}, "chat_template_kwargs."),
    ],
)
def test_unusable_switches_are_refused(extra: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        thinking_payload(chat(**extra))
    assert str(caught.value.param).startswith(param)


@pytest.fixture
def stub() -> Iterator[StubUpstream]:
    with StubUpstream(gemma_4_cards()) as upstream:
        yield upstream


def test_auto_sends_thinking_to_a_reasoning_model_with_the_switch_on(
    http: httpx.Client, stub: StubUpstream
) -> None:
    response = http.post("/v1/chat/completions", json=chat(reasoning_effort="high"))
    assert response.headers["x-gemma-model"] == GEMMA_4_MODEL
    sent = stub.requests[-1][1]
    assert sent["reasoning_effort"] == "high"
    assert sent["chat_template_kwargs"] == {"enable_thinking": True}


def test_no_thinking_stays_on_the_smallest_model(http: httpx.Client, stub: StubUpstream) -> None:
    for extra in ({}, {"reasoning_effort": "none"}):
        response = http.post("/v1/chat/completions", json=chat(**extra))
        assert response.headers["x-gemma-model"] == TEXT_MODEL
    assert stub.requests[-1][1]["chat_template_kwargs"] == {"enable_thinking": False}


def test_a_named_model_without_reasoning_is_refused(http: httpx.Client) -> None:
    body = chat(model=VISION_MODEL, chat_template_kwargs={"enable_thinking": True})
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "model_capability_missing"
    bad = http.post("/v1/chat/completions", json=chat(reasoning_effort="extreme"))
    assert (bad.status_code, bad.json()["error"]["param"]) == (400, "reasoning_effort")


class AnyCapabilityKeys:
    async def authenticate(self, secret: str) -> ApiKey:
        return ApiKey("k1", "t1")


@pytest.fixture
def gate() -> RecordingGate:
    return RecordingGate()


@pytest.fixture
def metered(stub: StubUpstream, gate: RecordingGate) -> Iterator[httpx.Client]:
    settings = gateway_settings(stub.base_url, quota={"enabled": True, "default_max_tokens": 100})
    app = create_app(settings, key_store=AnyCapabilityKeys(), quota_gate=gate)
    with (
        serve_in_thread(app) as url,
        httpx.Client(base_url=url, timeout=30, headers={"authorization": "Bearer k"}) as client,
    ):
        yield client


#: 7 prompt tokens, 4 thinking pieces and 5 answer words, one completion token each.
USED = 7 + len(THINKING) + len(ANSWER.split(" "))


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_an_answer_keeps_its_reasoning_and_is_settled_with_thinking_tokens(
    metered: httpx.Client, stub: StubUpstream, gate: RecordingGate, field: str
) -> None:
    stub.knobs.reasoning, stub.knobs.reasoning_field = THINKING, field
    response = metered.post("/v1/chat/completions", json=chat(reasoning_effort="low"))
    body = response.json()
    message = body["choices"][0]["message"]
    assert (message[field], message["content"]) == ("".join(THINKING), ANSWER)
    assert body["usage"]["completion_tokens"] == len(THINKING) + 5
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": len(THINKING)}
    assert finishes(gate) == [("settle", GEMMA_4_MODEL, USED)]


def events(response: httpx.Response) -> list[dict[str, Any]]:
    lines = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


@pytest.mark.parametrize("include_usage", [True, False])
@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_a_stream_keeps_its_reasoning_deltas_and_is_settled_with_thinking_tokens(
    metered: httpx.Client,
    stub: StubUpstream,
    gate: RecordingGate,
    field: str,
    include_usage: bool,
) -> None:
    stub.knobs.reasoning, stub.knobs.reasoning_field = THINKING, field
    body = chat(
        reasoning_effort="high", stream=True, stream_options={"include_usage": include_usage}
    )
    with metered.stream("POST", "/v1/chat/completions", json=body) as response:
        chunks = events(response)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert [d[field] for d in deltas if field in d] == THINKING
    assert "".join(d.get("content", "") for d in deltas) == ANSWER + " "
    assert all("usage" not in c for c in chunks if c["choices"])
    usage = [c["usage"] for c in chunks if not c["choices"]]
    if include_usage:
        assert usage[0]["completion_tokens"] == len(THINKING) + 5
        assert usage[0]["completion_tokens_details"] == {"reasoning_tokens": len(THINKING)}
    else:
        assert usage == []
    assert finishes(gate) == [("settle", GEMMA_4_MODEL, USED)]
