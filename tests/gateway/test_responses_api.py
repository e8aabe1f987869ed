"""``/v1/responses`` with the openai client in front of the stub, and its conversions."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from openai import OpenAI

from gateway.responses.convert import chat_payload, response_object, skeleton
from gateway.responses.stream import ResponseEvents
from gateway.upstream.sse import StreamTally
from tests.support.media import png_data_url
from tests.support.stub_upstream import ANSWER, TEXT_MODEL, VISION_MODEL, StubUpstream

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def sent_chats(stub: StubUpstream) -> list[dict[str, Any]]:
    return [body for path, body in stub.requests if path == "/v1/chat/completions"]


def test_a_text_response_and_its_stream(openai_client: OpenAI, stub: StubUpstream) -> None:
    answer = openai_client.responses.create(
        model=TEXT_MODEL, input="Say hello.", instructions="Be brief.", max_output_tokens=16
    )
    assert answer.object == "response"
    assert answer.status == "completed"
    assert answer.output_text == ANSWER
    assert answer.model == TEXT_MODEL
    assert answer.usage is not None
    assert answer.usage.input_tokens == 7
    assert answer.usage.total_tokens == answer.usage.input_tokens + answer.usage.output_tokens
    [chat] = sent_chats(stub)
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello."},
    ]
    assert chat["max_completion_tokens"] == 16

    events = list(openai_client.responses.create(model=TEXT_MODEL, input="Say hello.", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "response.output_item.added" in kinds
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas.strip() == ANSWER  # the stub streams word by word
    done = events[-1].response
    assert done.output_text == deltas
    assert done.usage is not None
    assert done.usage.output_tokens > 0
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_tools_images_and_history_reach_chat_as_chat(
    openai_client: OpenAI, stub: StubUpstream
) -> None:
    openai_client.responses.create(
        model="auto",
        input=[
            {
                "role": "user",
                "content": [{"type": "input_text", "text": "The weather in Oslo?"}],
            },
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city": "Oslo"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        text={"format": {"type": "json_object"}},
    )
    [chat] = sent_chats(stub)
    assert chat["model"] == TEXT_MODEL  # auto: the smallest model with tools
    user, call, output = chat["messages"]
    assert user["content"] == [{"type": "text", "text": "The weather in Oslo?"}]
    assert call["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "Oslo"}',
    }
    assert output == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    assert chat["tools"] == [
        {"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["response_format"] == {"type": "json_object"}


def test_an_image_input_goes_to_a_model_that_sees(
    openai_client: OpenAI, stub: StubUpstream
) -> None:
    image = {"type": "input_image", "image_url": png_data_url(), "detail": "low"}
    content = [{"type": "input_text", "text": "What is in it?"}, image]
    answer = openai_client.responses.create(
        model="auto", input=[{"role": "user", "content": content}]
    )
    assert answer.model == VISION_MODEL
    [chat] = sent_chats(stub)
    part = chat["messages"][0]["content"][1]
    assert part["type"] == "image_url"
    assert part["image_url"]["detail"] == "low"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"store": True}, "store"),
        ({"background": True}, "background"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"tool_choice": {"type": "file_search"}}, "tool_choice"),
        ({"include": ["reasoning.encrypted_content"]}, "include"),
        ({"truncation": "auto"}, "truncation"),
        ({"text": {"format": {"type": "xml"}}}, "text.format"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0]",
        ),
        ({"input": []}, "input"),
        ({"input": 5}, "input"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"max_output_tokens": 10**6}, "max_output_tokens"),
        ({"temperature": "hot"}, "temperature"),
        ({"made_up": 1}, "made_up"),
    ],
)
def test_unsupported_or_bad_fields_are_a_400_and_nothing_is_sent(
    http: httpx.Client, stub: StubUpstream, body: dict[str, Any], param: str
) -> None:
    answer = http.post("/v1/responses", json={"model": TEXT_MODEL, "input": "hi", **body})
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert param in (error["param"] or "")
    assert not sent_chats(stub)
    ok = http.post("/v1/responses", json={"model": TEXT_MODEL, "input": "hi"})
    assert ok.status_code == 200


def test_a_tool_call_answer_becomes_function_call_items() -> None:
    request = {"model": "m", "input": "weather?", "tools": [WEATHER]}
    chat = {
        "model": "m",
        "choices": [
            {
                "message": {
                    "role": "assistant",
                    "content": None,
                    "reasoning": "The user wants Oslo.",
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 9,
            "completion_tokens": 6,
            "total_tokens": 15,
            "completion_tokens_details": {"reasoning_tokens": 4},
        },
    }
    answer = response_object(chat, request, "resp_1", "m")
    reasoning, call = answer["output"]
    assert reasoning["type"] == "reasoning"
    assert reasoning["content"][0]["text"] == "The user wants Oslo."
    assert (call["type"], call["call_id"], call["name"]) == (
        "function_call",
        "call_9",
        "get_weather",
    )
    assert json.loads(call["arguments"]) == {"city": "Oslo"}
    assert answer["usage"]["output_tokens_details"]["reasoning_tokens"] == 4
    cut = response_object(
        {**chat, "choices": [{**chat["choices"][0], "finish_reason": "length"}]},
        request,
        "resp_2",
        "m",
    )
    assert cut["status"] == "incomplete"
    assert cut["incomplete_details"] == {"reason": "max_output_tokens"}
    assert chat_payload(request)["tools"][0]["function"]["name"] == "get_weather"


def test_streamed_tool_call_chunks_become_argument_deltas() -> None:
    builder = ResponseEvents(skeleton({"model": "m"}, "resp_1", "m"))
    chunks = [
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": ""},
                            }
                        ]
                    }
                }
            ]
        },
        {
            "choices": [
                {"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}}
            ]
        },
        {
            "choices": [
                {
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]},
                    "finish_reason": "tool_calls",
                }
            ]
        },
    ]
    raw = [e for c in chunks for e in builder.chunk(c)]
    tally = StreamTally(include_usage=False)
    raw += builder.end(tally)
    events = [json.loads(e.decode().split("data: ", 1)[1]) for e in raw]
    kinds = [e["type"] for e in events]
    assert kinds == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[3]["arguments"] == '{"city":"Oslo"}'
    [item] = events[-1]["response"]["output"]
    assert (item["call_id"], item["name"]) == ("call_1", "get_weather")
