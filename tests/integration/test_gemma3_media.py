"""The Gemma 3 vision and Gemma 3n fixtures on their own profile, ``cpu-gemma3-media``.

cpu-dev's media engine is the Gemma 4 fixture; these two still ship in the catalog (Gemma 3
4B-27B and 3n serve images and audio on GKE), so their engines are started here, apart from
the shared stack, and shown to take real media and (Gemma 3n, through vLLM's speech-to-text
endpoint) to transcribe.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from openai import OpenAI

from serving.runner import LocalServing, shutdown, start_serving, wait_ready
from tests.integration.media_checks import audio_part, image_part, media_tokens, transcribes
from tests.support.servers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.own_engines, pytest.mark.timeout(1800)]

PROFILE = "cpu-gemma3-media"
VISION_MODEL = "tiny-random-gemma-3-vision"
AUDIO_MODEL = "tiny-random-gemma-3n"


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
