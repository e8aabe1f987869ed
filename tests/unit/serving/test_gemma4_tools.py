"""Gemma 4's native call grammar: what it accepts is what vLLM's gemma4 parser reads back.

Each grammar is compiled by xgrammar (the engine's structured-output backend) and fed
whole strings; the accepted calls are then parsed by vLLM's registered
``gemma4_constrained`` tool parser (vLLM's own ``gemma4`` parsing underneath) into the
JSON arguments a client receives.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import xgrammar as xgr

from serving.gemma4_tools import PARSER_NAME, Unsupported, forced, native_grammar, register
from serving.models.store import resolve_source

Q = '<|"|>'
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "enum": ["Paris", "Rome"]},
                "days": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "options": {
                    "type": "object",
                    "properties": {"metric": {"type": "boolean"}, "scale": {"type": "number"}},
                    "required": ["metric"],
                },
                "note": {"type": ["string", "null"]},
            },
            "required": ["city"],
        },
    },
}
NOW: dict[str, Any] = {"type": "function", "function": {"name": "now", "parameters": {}}}


def call(name: str, args: str) -> str:
    return f"<|tool_call>call:{name}{{{args}}}<tool_call|>"


def accepts(grammar: str, text: str) -> bool:
    compiled = xgr.GrammarCompiler(xgr.TokenizerInfo([])).compile_grammar(grammar)
    matcher = xgr.GrammarMatcher(compiled, terminate_without_stop_token=True)
    return bool(matcher.accept_string(text) and matcher.is_completed())


FULL = (
    f"city:{Q}Paris{Q},days:3,tags:[{Q}a{Q},{Q}b c{Q}],options:{{metric:true,scale:-1.5}},note:null"
)


@pytest.mark.parametrize(
    "args",
    [f"city:{Q}Rome{Q}", FULL, f"city:{Q}Paris{Q},tags:[]", f"city:{Q}Paris{Q},note:{Q}x{Q}"],
)
def test_a_named_call_with_its_schema_is_accepted(args: str) -> None:
    assert accepts(native_grammar([WEATHER, NOW], "get_weather"), call("get_weather", args))


@pytest.mark.parametrize(
    "text",
    [
        "It is sunny.",  # prose
        call("get_weather", "days:3"),  # a required member missing
        call("get_weather", f"city:{Q}Oslo{Q}"),  # outside the enum
        call("get_weather", f",city:{Q}Paris{Q}"),  # a stray comma
        call("get_weather", f"days:3,city:{Q}Paris{Q}"),  # out of the declared order
        call("get_weather", 'city:"Paris"'),  # JSON quoting, not Gemma 4's
        call("get_weather", f"city:{Q}Paris{Q},options:{{scale:1}}"),  # nested required
        call("now", ""),  # another tool than the named one
        call("get_weather", f"city:{Q}Paris{Q}") * 2,  # a named choice is one call
    ],
)
def test_anything_else_is_refused(text: str) -> None:
    assert not accepts(native_grammar([WEATHER, NOW], "get_weather"), text)


def test_required_takes_any_tool_and_parallel_calls_unless_told_not_to() -> None:
    two = call("now", "") + call("get_weather", f"city:{Q}Rome{Q}")
    assert accepts(native_grammar([WEATHER, NOW], None), call("now", ""))
    assert accepts(native_grammar([WEATHER, NOW], None), two)
    assert accepts(native_grammar([WEATHER, NOW], None, parallel=False), call("now", ""))
    assert not accepts(native_grammar([WEATHER, NOW], None, parallel=False), two)
    assert not accepts(native_grammar([WEATHER, NOW], None), "")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"a": {"$ref": "#/defs/a"}}},
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}},
        {"type": "object", "properties": {"a": {"allOf": [{"type": "string"}]}}},
    ],
)
def test_schemas_it_cannot_express_are_refused(schema: dict[str, Any]) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": schema}}
    with pytest.raises(Unsupported):
        native_grammar([tool], "f")


def test_a_named_tool_that_is_not_offered_is_refused() -> None:
    with pytest.raises(Unsupported, match="no tool named"):
        native_grammar([NOW], "get_weather")


def test_which_tool_choices_force_a_call() -> None:
    assert forced("required") == (True, None)
    assert forced({"type": "function", "function": {"name": "now"}}) == (True, "now")
    assert forced("auto") == (False, None)
    assert forced("none") == (False, None)
    assert forced(None) == (False, None)


def test_the_registered_parser_constrains_required_and_named_and_reads_the_calls_back() -> None:
    from transformers import AutoTokenizer
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.tool_parsers import ToolParserManager

    register()
    parser_class = ToolParserManager.get_tool_parser(PARSER_NAME)
    tokenizer = AutoTokenizer.from_pretrained(resolve_source("fixture:tiny-random-gemma-4"))
    messages = [{"role": "user", "content": "Weather?"}]
    named = ChatCompletionRequest(
        model="m",
        messages=messages,
        tools=[WEATHER, NOW],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    parser = parser_class(tokenizer, named.tools)
    adjusted = parser.adjust_request(named)
    assert adjusted.structured_outputs is not None
    grammar = adjusted.structured_outputs.grammar
    assert grammar is not None
    assert accepts(grammar, call("get_weather", FULL))

    extracted = parser.extract_tool_calls(call("get_weather", FULL), adjusted)
    assert extracted.tools_called
    (tool_call,) = extracted.tool_calls
    assert tool_call.function.name == "get_weather"
    assert json.loads(tool_call.function.arguments) == {
        "city": "Paris",
        "days": 3,
        "tags": ["a", "b c"],
        "options": {"metric": True, "scale": -1.5},
        "note": None,
    }

    auto = ChatCompletionRequest(model="m", messages=messages, tools=[WEATHER], tool_choice="auto")
    assert parser_class(tokenizer, auto.tools).adjust_request(auto).structured_outputs is None
