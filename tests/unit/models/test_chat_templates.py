"""Our Gemma 3, 3n and 4 chat templates render the documented turn format."""

from __future__ import annotations

from importlib.resources import files

import pytest
from transformers.utils.chat_template_utils import render_jinja_template

TEMPLATES = files("serving.models").joinpath("templates")


def _render(
    name: str,
    messages: list[dict[str, object]],
    generation_prompt: bool = True,
    tools: list[dict[str, object]] | None = None,
    **kwargs: object,
) -> str:
    rendered, _ = render_jinja_template(
        conversations=[messages],
        tools=tools,
        chat_template=TEMPLATES.joinpath(name).read_text(),
        add_generation_prompt=generation_prompt,
        bos_token="<bos>",
        eos_token="<eos>",
        **kwargs,
    )
    return rendered[0]


def test_gemma3_turns_and_system_prompt() -> None:
    text = _render(
        "gemma3_chat.jinja",
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": [{"type": "text", "text": "Again"}]},
        ],
    )
    assert text == (
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nAgain<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_gemma3_image_part_becomes_start_of_image() -> None:
    text = _render(
        "gemma3_chat.jinja",
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What?"}]}],
    )
    assert "<start_of_turn>user\n<start_of_image>What?<end_of_turn>" in text


def test_gemma3n_media_parts_become_soft_tokens() -> None:
    text = _render(
        "gemma3n_chat.jinja",
        [
            {
                "role": "user",
                "content": [{"type": "audio"}, {"type": "image"}, {"type": "text", "text": "?"}],
            }
        ],
    )
    assert "<audio_soft_token><image_soft_token>?" in text


def test_roles_must_alternate() -> None:
    with pytest.raises(Exception, match="alternate"):
        _render(
            "gemma3_chat.jinja",
            [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        )


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City"},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["city"],
        },
    },
}


def test_gemma4_turns_and_media_parts() -> None:
    text = _render(
        "gemma4_chat.jinja",
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {
                "role": "user",
                "content": [
                    {"type": "image"},
                    {"type": "audio"},
                    {"type": "video"},
                    {"type": "text", "text": " What? "},
                ],
            },
        ],
    )
    assert text == (
        "<bos><|turn>user\nHi<turn|>\n"
        "<|turn>model\nHello!<turn|>\n"
        "<|turn>user\n<|image|><|audio|><|video|>What?<turn|>\n"
        "<|turn>model\n"
    )


def test_gemma4_system_turn_carries_thinking_and_tool_declarations() -> None:
    text = _render(
        "gemma4_chat.jinja",
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?"}],
        tools=[WEATHER_TOOL],
        enable_thinking=True,
    )
    assert text.startswith(
        "<bos><|turn>system\n<|think|>\nBe brief."
        '<|tool>declaration:get_weather{description:<|"|>Weather for a city<|"|>,'
        'parameters:{properties:{city:{description:<|"|>City<|"|>,type:<|"|>STRING<|"|>},'
        'unit:{enum:[<|"|>c<|"|>,<|"|>f<|"|>],type:<|"|>STRING<|"|>}},'
        'required:[<|"|>city<|"|>],type:<|"|>OBJECT<|"|>}}<tool|><turn|>\n'
    )
    assert "<|think|>" not in _render("gemma4_chat.jinja", [{"role": "user", "content": "x"}])


def test_gemma4_tool_results_fold_into_the_open_model_turn() -> None:
    call = {"id": "c1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    messages: list[dict[str, object]] = [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "reasoning": "Ask the tool.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    text = _render("gemma4_chat.jinja", messages, tools=[WEATHER_TOOL])
    assert text.endswith(
        "<|turn>model\n<|channel>thought\nAsk the tool.\n<channel|>"
        '<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|>'
        '<|tool_response>response:get_weather{value:<|"|>sunny<|"|>}<tool_response|>'
    )
    # The answer continues the same model turn; earlier thinking is dropped from history.
    answered = [*messages, {"role": "assistant", "content": "<|channel>thought\nx<channel|>Sunny."}]
    answered.append({"role": "user", "content": "Thanks"})
    text = _render("gemma4_chat.jinja", answered, tools=[WEATHER_TOOL])
    assert "<tool_response|>Sunny.<turn|>\n<|turn>user\nThanks<turn|>\n<|turn>model\n" in text
    assert "<|channel>" not in text
