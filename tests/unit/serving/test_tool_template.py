"""The Gemma 3 tool template, rendered the way vLLM renders it (transformers' jinja)."""

from __future__ import annotations

import ast
from typing import Any

import pytest
from transformers.utils.chat_template_utils import render_jinja_template

from serving.catalog import chat_template_text

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city <with markup & quotes'>",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "metric": {"type": "boolean"}},
                "required": ["city"],
            },
        },
    }
]


def render(messages: list[dict[str, Any]], **kwargs: Any) -> str:
    rendered, _ = render_jinja_template(
        [messages],
        chat_template=chat_template_text("gemma3_tools"),
        bos_token="<bos>",
        **kwargs,
    )
    return rendered[0]


def round_trip() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    # vLLM hands templates the arguments as a dict.
                    "function": {
                        "name": "get_weather",
                        "arguments": {"city": "Paris", "metric": True},
                    },
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Oslo"}},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"celsius": 18}'},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "4 C"}]},
    ]


def test_plain_chat_is_gemmas_turn_format() -> None:
    text = render(
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Bye"},
        ],
        add_generation_prompt=True,
    )
    assert text == (
        "<bos><start_of_turn>user\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nBye<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_system_and_tools_open_the_first_user_turn() -> None:
    text = render(round_trip()[:2], tools=TOOLS, add_generation_prompt=True)
    first_turn = text.split("<end_of_turn>")[0]
    assert first_turn.startswith("<bos><start_of_turn>user\nAnswer briefly.\n\n")
    assert "[func_name1(params_name1=params_value1" in first_turn
    assert '"name": "get_weather"' in first_turn
    assert "<with markup & quotes'>" in first_turn  # JSON, not HTML-escaped
    assert first_turn.endswith("Weather in Paris and Oslo?")
    assert text.count("get_weather") == 1
    assert text.endswith("<start_of_turn>model\n")


def test_tool_calls_render_as_a_python_list_the_pythonic_parser_reads() -> None:
    text = render(round_trip(), tools=TOOLS, add_generation_prompt=True)
    model_turn = text.split("<start_of_turn>model\n")[1].split("<end_of_turn>")[0]
    assert model_turn == '[get_weather(city="Paris", metric=True), get_weather(city="Oslo")]'
    calls = ast.parse(model_turn).body[0].value  # type: ignore[attr-defined]
    assert [c.func.id for c in calls.elts] == ["get_weather", "get_weather"]
    assert [kw.value.value for kw in calls.elts[0].keywords] == ["Paris", True]


def test_tool_results_are_one_user_turn_of_tool_output_blocks() -> None:
    text = render(round_trip(), tools=TOOLS, add_generation_prompt=True)
    results = text.split("<end_of_turn>\n")[2]
    assert results == (
        '<start_of_turn>user\n```tool_output\n{"celsius": 18}\n```\n```tool_output\n4 C\n```\n'
    )
    assert text.endswith("```\n<end_of_turn>\n<start_of_turn>model\n")


def test_string_arguments_render_as_given() -> None:
    messages = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "tool_calls": [{"function": {"name": "f", "arguments": 'a="b"'}}],
        },
    ]
    assert '<start_of_turn>model\n[f(a="b")]<end_of_turn>' in render(messages)


@pytest.mark.parametrize(
    ("kwargs", "image", "audio"),
    [
        ({}, "<start_of_image>", "<audio_soft_token>"),
        (
            {"image_token": "<image_soft_token>", "audio_token": "<audio_soft_token>"},
            "<image_soft_token>",
            "<audio_soft_token>",
        ),
    ],
)
def test_media_parts_become_the_models_placeholders(
    kwargs: dict[str, str], image: str, audio: str
) -> None:
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image"},
                {"type": "audio"},
            ],
        }
    ]
    text = render(messages, add_generation_prompt=True, **kwargs)
    assert f"<start_of_turn>user\nDescribe{image}{audio}<end_of_turn>" in text


def test_assistant_text_before_tool_calls_is_kept() -> None:
    messages = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [{"function": {"name": "f", "arguments": {"n": 1}}}],
        },
    ]
    assert "<start_of_turn>model\nChecking.\n[f(n=1)]<end_of_turn>" in render(messages)
