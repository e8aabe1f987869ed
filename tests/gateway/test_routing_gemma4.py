"""Routing over a fleet of Gemma 3, 3n and 4: video and thinking need Gemma 4, the rest the
smallest variant that can, by parameter count when the cards give it."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import MissingCapability
from gateway.model_info import model_from_card
from gateway.routing import Needs, chat_needs, route
from gateway.settings import DEFAULT_ALIASES

ALL_GEMMA_4 = ["text", "vision", "audio", "video", "tools", "reasoning"]
FLEET = [
    # Listed largest first, so only params_b can put them in order.
    ("gemma-4-31B-it", 34.95, ["text", "vision", "tools", "reasoning"]),
    ("gemma-3-27b-it", 27.4, ["text", "vision", "tools"]),
    ("gemma-4-12B-it", 13.35, ["text", "vision", "audio", "tools", "reasoning"]),
    ("gemma-4-E4B-it", 8.95, ALL_GEMMA_4),
    ("gemma-3n-E4B-it", 7.85, ["text", "vision", "audio", "tools"]),
    ("gemma-4-E2B-it", 5.7, ALL_GEMMA_4),
    ("gemma-3n-E2B-it", 5.44, ["text", "vision", "audio", "tools"]),
    ("gemma-3-4b-it", 4.3, ["text", "vision", "tools"]),
    ("gemma-3-1b-it", 1.0, ["text", "tools"]),
]


def card(model_id: str, params_b: float | None, capabilities: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"capabilities": capabilities, "max_model_len": 32_768}
    if params_b is not None:
        meta["params_b"] = params_b
    return {"id": model_id, "metadata": meta}


MODELS = tuple(model_from_card(card(*entry), i) for i, entry in enumerate(FLEET))


def served(requested: str, *capabilities: str, unhealthy: tuple[str, ...] = ()) -> list[str]:
    needs = Needs(frozenset({"text", *capabilities}), 100)
    found = route(requested, needs, MODELS, aliases=DEFAULT_ALIASES, unhealthy=unhealthy)
    return [m.id for m in found.candidates]


def test_text_alone_still_goes_to_the_smallest() -> None:
    assert served("auto")[0] == "gemma-3-1b-it"
    assert served("auto", "tools")[0] == "gemma-3-1b-it"
    assert served("auto", "vision")[0] == "gemma-3-4b-it"
    assert served("auto", "audio")[0] == "gemma-3n-E2B-it"


def test_video_goes_to_a_video_capable_variant() -> None:
    assert served("auto", "video") == ["gemma-4-E2B-it", "gemma-4-E4B-it"]
    assert served("auto", "video", "audio", "tools") == ["gemma-4-E2B-it", "gemma-4-E4B-it"]
    assert served("auto", "video", unhealthy=("gemma-4-E2B-it",)) == [
        "gemma-4-E4B-it",
        "gemma-4-E2B-it",
    ]


def test_reasoning_goes_to_a_reasoning_capable_variant() -> None:
    expected = ["gemma-4-E2B-it", "gemma-4-E4B-it", "gemma-4-12B-it", "gemma-4-31B-it"]
    assert served("auto", "reasoning") == expected
    assert served("gemma-4", "reasoning") == expected
    assert served("auto", "reasoning", "audio") == expected[:3]


def test_aliases_keep_to_their_family() -> None:
    assert served("gemma-3", "vision") == ["gemma-3-4b-it", "gemma-3-27b-it"]
    assert served("gemma-3n", "audio") == ["gemma-3n-E2B-it", "gemma-3n-E4B-it"]
    assert served("gemma-4") == [
        "gemma-4-E2B-it",
        "gemma-4-E4B-it",
        "gemma-4-12B-it",
        "gemma-4-31B-it",
    ]
    with pytest.raises(MissingCapability) as caught:
        served("gemma-3n", "video")
    assert "video" in caught.value.message
    assert "gemma-4-E2B-it, gemma-4-E4B-it" in caught.value.message
    with pytest.raises(MissingCapability):
        served("gemma-3-27b-it", "reasoning")


def test_a_video_part_needs_video_and_counts_its_token_budget() -> None:
    part = {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAA"}}
    body = {"model": "auto", "messages": [{"role": "user", "content": [part]}]}
    assert chat_needs(body).capabilities == {"text", "video"}
    small, large = chat_needs(body, video_tokens=100), chat_needs(body, video_tokens=5_000)
    assert large.prompt_tokens - small.prompt_tokens == 4_900
    assert chat_needs(body).primary == "video"
    thinking = {**body, "reasoning_effort": "high", "tools": [{"type": "function"}]}
    assert chat_needs(thinking).capabilities == {"text", "video", "reasoning", "tools"}


def test_a_video_too_long_for_a_context_moves_to_a_longer_one() -> None:
    cards = [card("gemma-4-E2B-it", 5.7, ALL_GEMMA_4), card("gemma-4-E4B-it", 8.95, ALL_GEMMA_4)]
    cards[0]["metadata"]["max_model_len"] = 2_048
    models = tuple(model_from_card(c, i) for i, c in enumerate(cards))
    part = {"type": "video_url", "video_url": {"url": "x"}}
    needs = chat_needs({"messages": [{"role": "user", "content": [part]}]})
    found = route("auto", needs, models, aliases=DEFAULT_ALIASES)
    assert [m.id for m in found.candidates] == ["gemma-4-E4B-it"]


def test_the_published_cards_of_a_gke_profile() -> None:
    """The cards as serving publishes them (no params_b: catalog order decides size)."""
    from serving.app import model_metadata
    from serving.catalog import load_catalog

    catalog = load_catalog()
    target = catalog.profile("gke-l4").target
    cards = [
        {"id": v.id, "metadata": model_metadata(v, target)}
        for v in catalog.profile_variants("gke-l4")
    ]
    models = tuple(model_from_card(c, i) for i, c in enumerate(cards))

    def first(*capabilities: str) -> str:
        needs = Needs(frozenset({"text", *capabilities}), 100)
        return route("auto", needs, models, aliases=DEFAULT_ALIASES).candidates[0].id

    assert first() == "gemma-3-1b-it"
    assert first("vision") == "gemma-3-4b-it"
    assert first("video") == "gemma-4-E2B-it"
    assert first("reasoning") == "gemma-4-E2B-it"
