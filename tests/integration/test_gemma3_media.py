"""The Gemma 3 vision, Gemma 3n and ShieldGemma 2 fixtures on their profile, ``cpu-gemma3-media``.

cpu-dev's media engine is the Gemma 4 fixture; these still ship in the catalog (Gemma 3
4B-27B and 3n serve images and audio on GKE, ShieldGemma 2 judges images), so their engines
are started here, apart from the shared stack, and shown to take real media, (Gemma 3n,
through vLLM's speech-to-text endpoint) to transcribe, and (ShieldGemma 2, through the
gateway's ``/v1/moderations``) to score images. The ShieldGemma 2 fixture has random
weights: its scores are noise, so the test checks what they are made of.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from serving.runner import LocalServing, shutdown, start_serving, wait_ready
from tests.integration.media_checks import audio_part, image_part, media_tokens, transcribes
from tests.support.local_gateway import gateway_in_front, key_client, usage_by_model
from tests.support.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.own_engines, pytest.mark.timeout(1800)]

PROFILE = "cpu-gemma3-media"
VISION_MODEL = "tiny-random-gemma-3-vision"
AUDIO_MODEL = "tiny-random-gemma-3n"
IMAGE_MODERATION_MODEL = "tiny-random-shieldgemma-2"
ADMIN = "admin-key-for-image-moderation"
IMAGE_CATEGORIES = {"dangerous", "sexual", "violence"}


@pytest.fixture(scope="module")
def gemma3_media() -> Iterator[LocalServing]:
    with warnings.catch_warnings():  # Ray and vLLM warn while starting; not ours to fix.
        warnings.simplefilter("ignore")
        serving = start_serving(PROFILE, port=free_port())
        try:
            wait_ready(serving, timeout_s=1200)
            yield serving
        finally:
            shutdown()


@pytest.fixture(scope="module")
def client(gemma3_media: LocalServing) -> OpenAI:
    return OpenAI(base_url=gemma3_media.base_url, api_key="unused", timeout=300, max_retries=0)


def test_gemma3_vision_fixture_takes_an_image(client: OpenAI) -> None:
    # 16 image soft tokens plus the start/end markers the processor adds.
    assert media_tokens(client, VISION_MODEL, image_part()) >= 16


def test_gemma3n_fixture_takes_an_image_and_a_clip(client: OpenAI) -> None:
    assert media_tokens(client, AUDIO_MODEL, image_part()) >= 256  # MobileNetV5: 256 per image
    assert media_tokens(client, AUDIO_MODEL, audio_part(2.5)) >= 188  # 188 per clip


def test_gemma3n_fixture_transcribes(client: OpenAI) -> None:
    transcribes(client, AUDIO_MODEL)


@pytest.fixture(scope="module")
def gateway(gemma3_media: LocalServing) -> Iterator[str]:
    with gateway_in_front(gemma3_media.base_url, name="image-moderation", admin_key=ADMIN) as url:
        yield url


def test_shieldgemma2_fixture_scores_each_policy_from_its_label_tokens(client: OpenAI) -> None:
    """The engine itself: ShieldGemma 2's layout loads, its chat template wraps the policy,
    and ``logprob_token_ids`` gives the raw logprobs of ``Yes`` and ``No``."""
    policy = "No Violence/Gore content: The image shall not contain content that depicts gore."
    messages: Any = [
        {"role": "user", "content": [image_part(64, 48), {"type": "text", "text": policy}]}
    ]
    answer = client.chat.completions.create(
        model=IMAGE_MODERATION_MODEL,
        messages=messages,
        max_tokens=1,
        temperature=0,
        logprobs=True,
        extra_body={"logprob_token_ids": [10784, 3771], "return_tokens_as_token_ids": True},
    )
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > 16 + 60  # 16 image tokens and the wrapped policy
    assert answer.choices[0].logprobs is not None
    [first] = answer.choices[0].logprobs.content or []
    labels = {t.token: t.logprob for t in first.top_logprobs}
    assert {"token_id:10784", "token_id:3771"} <= set(labels)
    assert all(-math.inf < labels[t] <= 0 for t in ("token_id:10784", "token_id:3771"))


def test_images_are_moderated_through_the_gateway_and_charged(gateway: str) -> None:
    with key_client(gateway, ADMIN, "image-moderation") as api:
        answer = api.moderations.create(input=[image_part(64, 48)])
        assert answer.model == IMAGE_MODERATION_MODEL
        [result] = answer.results
        shown = result.model_dump(exclude_none=True)
        scores = shown["category_scores"]
        assert set(scores) == IMAGE_CATEGORIES
        assert all(0 < s < 1 for s in scores.values())  # a softmax of the two labels
        assert shown["categories"] == {c: s > 0.5 for c, s in scores.items()}
        assert shown["category_applied_input_types"] == {c: ["image"] for c in IMAGE_CATEGORIES}
        # Greedy and one token: the same image scores the same, a second one makes the
        # same single result from each category's higher score.
        again = api.moderations.create(input=[image_part(64, 48)]).results[0]
        assert again.category_scores == result.category_scores
        both = api.moderations.create(input=[image_part(64, 48), image_part(32, 96)]).results
        assert len(both) == 1
        for category, score in both[0].model_dump(exclude_none=True)["category_scores"].items():
            assert score >= scores[category]
        usage = usage_by_model(api)[IMAGE_MODERATION_MODEL]
        assert usage["requests"] == 3
        assert usage["tokens"] > 4 * 3 * (16 + 60)  # twelve judgements, each read whole

        with pytest.raises(openai.BadRequestError) as refused:
            api.moderations.create(
                input=[image_part(64, 48), {"type": "text", "text": "a caption"}]
            )
        assert refused.value.code == "unsupported_value"
    health = httpx.get(f"{gateway}/healthz", timeout=30)
    assert health.status_code == 200
