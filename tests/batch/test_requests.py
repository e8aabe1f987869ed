from __future__ import annotations

import pytest

from batch.lines import parse_line
from batch.requests import profile_models, sampling_params
from gateway.errors import InvalidMedia, InvalidRequest, MissingCapability, ModelNotFound
from serving.catalog import load_catalog
from tests.batch.support import TEXT, VISION, chat_line, completion_line, image_line, planner


def test_profile_models_follow_catalog_order_with_engine_context() -> None:
    models = profile_models(load_catalog(), "cpu-dev")
    assert [m.id for m in models][:2] == [TEXT, VISION]
    assert models[0].context_length == 4096  # the CPU engine's max_model_len
    assert "vision" in models[1].capabilities


def test_sampling_params_carry_every_key_and_honour_the_body() -> None:
    params = sampling_params(
        {"max_completion_tokens": 7, "temperature": 0, "top_p": 0.5, "stop": "\n", "seed": 3}
    )
    assert params == {
        "max_tokens": 7,
        "temperature": 0.0,
        "top_p": 0.5,
        "stop": ["\n"],
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "seed": 3,
    }


def test_sampling_params_defaults() -> None:
    params = sampling_params({"max_tokens": 4, "temperature": None})
    assert params["max_tokens"] == 4
    assert (params["temperature"], params["top_p"], params["stop"]) == (1.0, 1.0, [])


def test_named_variant_is_served_by_itself() -> None:
    request = planner().plan(parse_line(chat_line("a", model=TEXT, max_tokens=3, stop=["x"])))
    assert (request.variant, request.endpoint, request.max_tokens) == (TEXT, "chat", 3)
    assert request.messages == [{"role": "user", "content": "Hi"}]
    assert request.sampling_params["stop"] == ["x"]


def test_auto_routes_text_to_the_first_text_variant_and_images_to_vision() -> None:
    p = planner()
    assert p.plan(parse_line(chat_line("a", model="auto"))).variant == TEXT
    assert p.plan(parse_line(image_line("b"))).variant == VISION


def test_alias_routes_by_prefix() -> None:
    assert planner().plan(parse_line(completion_line("a", model="gemma-3"))).variant == TEXT


def test_image_to_a_text_only_variant_is_a_capability_error() -> None:
    with pytest.raises(MissingCapability):
        planner().plan(parse_line(image_line("a", model=TEXT)))


def test_unknown_model_is_not_found() -> None:
    with pytest.raises(ModelNotFound) as caught:
        planner().plan(parse_line(chat_line("a", model="gpt-4")))
    assert caught.value.status_code == 404


def test_images_are_validated_like_the_gateway_does() -> None:
    request = planner().plan(parse_line(image_line("a")))
    assert len(request.images) == 1
    assert request.images[0].startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    "url",
    ["data:image/png;base64,AAAA", "https://example.com/cat.png", "data:text/plain;base64,aGk="],
)
def test_bad_images_are_refused(url: str) -> None:
    with pytest.raises(InvalidMedia):
        planner().plan(parse_line(image_line("a", url=url)))


def test_completion_prompt_in_a_one_item_list_is_accepted() -> None:
    assert planner().plan(parse_line(completion_line("a", prompt=["hello"]))).prompt == "hello"


@pytest.mark.parametrize("prompt", [[1, 2, 3], ["a", "b"]])
def test_other_completion_prompts_are_refused(prompt: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        planner().plan(parse_line(completion_line("a", prompt=prompt)))
    assert caught.value.param == "body.prompt"


def test_prompt_beyond_the_context_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        planner().plan(parse_line(chat_line("a", text="word " * 5000, model=TEXT)))
    assert caught.value.code == "context_length_exceeded"
