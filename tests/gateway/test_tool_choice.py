"""Tool calls are the engine's business: ``tools`` and ``tool_choice`` reach it as sent.

The gateway knows no tool-call parser (Gemma 3 uses vLLM's ``pythonic``, Gemma 4 its
``gemma4``); it only routes requests with tools to variants that have ``tools``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.stub_upstream import GEMMA_4_MODEL, TEXT_MODEL, StubUpstream, gemma_4_cards

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture
def stub() -> Iterator[StubUpstream]:
    with StubUpstream(gemma_4_cards()) as upstream:
        yield upstream


@pytest.mark.parametrize(
    "tool_choice",
    ["required", "auto", "none", {"type": "function", "function": {"name": "get_weather"}}],
    ids=["required", "auto", "none", "named"],
)
@pytest.mark.parametrize(
    ("model", "served"), [(GEMMA_4_MODEL, GEMMA_4_MODEL), ("auto", TEXT_MODEL)]
)
def test_tools_and_tool_choice_are_forwarded_intact(
    http: httpx.Client, stub: StubUpstream, model: str, served: str, tool_choice: Any
) -> None:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": TOOLS,
        "tool_choice": tool_choice,
        "parallel_tool_calls": False,
    }
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["x-gemma-model"] == served
    sent = stub.requests[-1][1]
    assert (sent["tools"], sent["tool_choice"]) == (TOOLS, tool_choice)
    assert sent["parallel_tool_calls"] is False
