"""Our Gemma 3 and 3n chat templates render the documented turn format."""

from __future__ import annotations

from importlib.resources import files

import pytest
from transformers.utils.chat_template_utils import render_jinja_template

TEMPLATES = files("serving.models").joinpath("templates")


def _render(name: str, messages: list[dict[str, object]], generation_prompt: bool = True) -> str:
    rendered, _ = render_jinja_template(
        conversations=[messages],
        chat_template=TEMPLATES.joinpath(name).read_text(),
        add_generation_prompt=generation_prompt,
        bos_token="<bos>",
        eos_token="<eos>",
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
