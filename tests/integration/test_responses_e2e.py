"""``/v1/responses`` through the gateway onto the real engines, with the openai client.

Text on the real 270M (answer and stream) and a named function call on the Gemma 4 fixture,
whose random weights call a tool only under the ``gemma4_constrained`` grammar (as in
``test_gateway_e2e.py``); the key is charged what the engine reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI

from serving.runner import LocalServing
from tests.integration.conftest import MEDIA_MODEL, TEXT_MODEL
from tests.integration.test_gateway_e2e import SPECIAL_CALL_TOKENS
from tests.support.local_gateway import gateway_in_front
from tests.support.tools import WEATHER_TOOL

pytestmark = pytest.mark.integration

ADMIN = "admin-key-for-responses-e2e"
#: The Responses API's shape of the chat tool.
WEATHER = {"type": "function", **WEATHER_TOOL["function"]}


@pytest.fixture(scope="module")
def gateway(serve_stack: LocalServing) -> Iterator[str]:
    # logit_bias (a chat field) reaches the engine through a Responses request
    with gateway_in_front(
        serve_stack.base_url,
        name="responses-e2e",
        admin_key=ADMIN,
        limits={"unknown_fields": "forward"},
    ) as url:
        yield url


@pytest.fixture
def secret(gateway: str) -> str:
    created = httpx.post(
        f"{gateway}/admin/keys",
        json={"tenant": "responses-e2e"},
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


@pytest.fixture
def api(gateway: str, secret: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway + "/v1", api_key=secret, max_retries=0, timeout=300) as client:
        yield client


def test_a_text_response_and_its_stream_on_the_270m(api: OpenAI, gateway: str, secret: str) -> None:
    request: dict[str, Any] = {
        "model": TEXT_MODEL,
        "instructions": "Answer in one sentence.",
        "input": "What does a lighthouse do?",
        "max_output_tokens": 12,
        "temperature": 0.0,
    }
    answer = api.responses.create(**request)
    assert answer.status in {"completed", "incomplete"}
    assert answer.output_text.strip()
    assert answer.model == TEXT_MODEL
    assert answer.usage is not None
    assert 0 < answer.usage.output_tokens <= 12

    events = list(api.responses.create(**request, stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created"
    assert kinds[-1] in {"response.completed", "response.incomplete"}
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = events[-1].response
    assert text == done.output_text == answer.output_text  # greedy: the same answer
    assert done.usage is not None

    usage = httpx.get(f"{gateway}/v1/usage", headers={"authorization": f"Bearer {secret}"}).json()
    [row] = usage["data"]
    charged = answer.usage.total_tokens + done.usage.total_tokens
    assert row["day"] == {"requests": 2, "tokens": charged, "batch_tokens": 0}


def test_a_named_function_call_on_the_gemma4_fixture(api: OpenAI) -> None:
    request: dict[str, Any] = {
        "model": MEDIA_MODEL,
        "input": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False,
        "max_output_tokens": 48,
        "temperature": 0.0,
        "extra_body": {"logit_bias": SPECIAL_CALL_TOKENS},
    }
    answer = api.responses.create(**request)
    calls = [item for item in answer.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather"
    assert json.loads(call.arguments)["city"] in {"Paris", "Rome", "Oslo"}

    events = list(api.responses.create(**request, stream=True))
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert deltas == done[0].arguments
    assert json.loads(done[0].arguments) == json.loads(call.arguments)
    [streamed] = [i for i in events[-1].response.output if i.type == "function_call"]
    assert streamed.name == "get_weather"
