"""The routing table: needs from content, candidates from models, errors when none fit."""

from __future__ import annotations

import pytest

from gateway.errors import ContextLengthExceeded, MissingCapability, ModelNotFound
from gateway.model_info import model_from_card
from gateway.routing import Needs, chat_needs, route
from tests.support.media import png_data_url, wav_base64
from tests.support.stub_upstream import default_cards

MODELS = tuple(model_from_card(c, i) for i, c in enumerate(default_cards()))
ALIASES = {"gemma-3": "gemma-3-", "tiny": "tiny-random-"}


def needs(*capabilities: str, prompt: int = 10, max_tokens: int | None = None) -> Needs:
    return Needs(frozenset({"text", *capabilities}), prompt, max_tokens)


def ids(requested: str, want: Needs, **kwargs: object) -> list[str]:
    found = route(requested, want, MODELS, aliases=ALIASES, **kwargs)  # type: ignore[arg-type]
    return [m.id for m in found.candidates]


def test_cards_give_capabilities_context_and_adapter_base() -> None:
    by_id = {m.id: m for m in MODELS}
    assert by_id["gemma-3-270m"].capabilities == {"text", "tools"}
    assert by_id["gemma-3-270m"].context_length == 4096
    assert by_id["gemma-3-270m:tiny-lora"].base_model_id == "gemma-3-270m"
    assert by_id["tiny-random-gemma-3n"].capabilities == {
        "text",
        "vision",
        "audio",
        "transcription",
    }


@pytest.mark.parametrize(
    ("message", "capabilities"),
    [
        ({"role": "user", "content": "hi"}, {"text"}),
        (
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
            {"text", "vision"},
        ),
        (
            {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]},
            {"text", "audio"},
        ),
    ],
)
def test_needs_read_from_content(message: dict, capabilities: set[str]) -> None:
    assert chat_needs({"messages": [message]}).capabilities == capabilities


def test_tools_need_tools_and_size_counts_media() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "x" * 300},
                    {"type": "image_url", "image_url": {"url": png_data_url()}},
                    {"type": "input_audio", "input_audio": {"data": wav_base64(), "format": "wav"}},
                ],
            }
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "max_tokens": 50,
    }
    found = chat_needs(body)
    assert found.capabilities == {"text", "vision", "audio", "tools"}
    assert found.max_tokens == 50
    assert 100 + 300 + 200 <= found.prompt_tokens < 1000  # media counted fixed, not by bytes


@pytest.mark.parametrize(
    ("requested", "want", "expected"),
    [
        ("auto", needs(), ["gemma-3-270m", "tiny-random-gemma-3-vision", "tiny-random-gemma-3n"]),
        ("auto", needs("vision"), ["tiny-random-gemma-3-vision", "tiny-random-gemma-3n"]),
        ("auto", needs("audio"), ["tiny-random-gemma-3n"]),
        ("auto", needs("tools"), ["gemma-3-270m"]),
        ("tiny", needs("vision"), ["tiny-random-gemma-3-vision", "tiny-random-gemma-3n"]),
        ("gemma-3", needs(), ["gemma-3-270m"]),
        ("gemma-3-270m", needs(), ["gemma-3-270m"]),
        ("gemma-3-270m:tiny-lora", needs(), ["gemma-3-270m:tiny-lora"]),
    ],
)
def test_candidates(requested: str, want: Needs, expected: list[str]) -> None:
    assert ids(requested, want) == expected


def test_unhealthy_models_go_last() -> None:
    order = ids("auto", needs("vision"), unhealthy={"tiny-random-gemma-3-vision"})
    assert order == ["tiny-random-gemma-3n", "tiny-random-gemma-3-vision"]


def test_named_fallback_is_opt_in() -> None:
    assert ids("tiny-random-gemma-3-vision", needs("vision"), fallback_named=True) == [
        "tiny-random-gemma-3-vision",
        "tiny-random-gemma-3n",
    ]


def test_named_model_without_capability_names_who_has_it() -> None:
    with pytest.raises(MissingCapability) as caught:
        ids("gemma-3-270m", needs("audio"))
    assert "audio" in caught.value.message
    assert "tiny-random-gemma-3n" in caught.value.message
    assert caught.value.status_code == 400


def test_alias_without_capability() -> None:
    with pytest.raises(MissingCapability, match="tiny-random-gemma-3n"):
        ids("gemma-3", needs("vision"))


def test_unknown_model() -> None:
    with pytest.raises(ModelNotFound):
        ids("gpt-4o", needs())


def test_context_too_long() -> None:
    with pytest.raises(ContextLengthExceeded):
        ids("auto", needs(prompt=4000, max_tokens=500))
    assert ids("auto", needs(prompt=3000, max_tokens=500))[0] == "gemma-3-270m"


def test_the_gemma_4_alias_routes_to_the_gemma_4_variants_of_a_profile() -> None:
    from gateway.settings import DEFAULT_ALIASES
    from serving.app import model_metadata
    from serving.catalog import load_catalog

    catalog = load_catalog()
    target = catalog.profile("gke-l4").target
    cards = [
        {"id": v.id, "metadata": model_metadata(v, target)}
        for v in catalog.profile_variants("gke-l4")
    ]
    models = tuple(model_from_card(c, i) for i, c in enumerate(cards))

    def served(requested: str, want: Needs) -> list[str]:
        found = route(requested, want, models, aliases=DEFAULT_ALIASES)
        return [m.id for m in found.candidates]

    gemma_4 = ["gemma-4-E2B-it", "gemma-4-E4B-it", "gemma-4-12B-it"]
    assert served("gemma-4", needs()) == gemma_4
    assert served("gemma-4", needs("audio")) == gemma_4
    assert not set(served("gemma-3", needs())) & set(gemma_4)
    assert served("auto", needs("audio"))[0] == "gemma-4-E2B-it"
