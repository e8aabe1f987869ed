"""The integration layer's one running stack: the ``cpu-full`` profile, started once per session.

An engine takes minutes to start on a CPU, so every integration test shares these fixtures:
``serve_stack`` (Ray Serve LLM with the real Gemma 3 270M, the Gemma 4 fixture, which
serves images, audio and video, the EmbeddingGemma fixture and the ShieldGemma fixture) and
the clients built on it. ``otlp_receiver`` starts first and Serve is started with its URL,
so Ray Serve's and the engines' spans of every integration test reach it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator

import pytest
from openai import OpenAI

from serving.runner import LocalServing, shutdown, start_serving, wait_ready
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.servers import free_port

# cpu-dev (what `make serve` starts) and the EmbeddingGemma and ShieldGemma fixtures.
PROFILE = "cpu-full"
TEXT_MODEL = "gemma-3-270m"
# The one media engine: the Gemma 4 fixture takes images, audio and video. The Gemma 3
# vision and Gemma 3n fixtures run in their own profile (test_gemma3_media.py).
MEDIA_MODEL = "tiny-random-gemma-4"
VISION_MODEL = MEDIA_MODEL
AUDIO_MODEL = MEDIA_MODEL
EMBEDDING_MODEL = "tiny-random-embeddinggemma"
MODERATION_MODEL = "tiny-random-shieldgemma"
SERVE_PORT = int(os.environ.get("GEMMA_SERVING_TEST_SERVE_PORT", "18000"))


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """An OTLP/HTTP receiver on a fixed free port, running before Serve starts."""
    with OtlpReceiver(port=free_port()) as receiver:
        yield receiver


@pytest.fixture(scope="session")
def serve_stack(otlp_receiver: OtlpReceiver) -> Iterator[LocalServing]:
    """The cpu-full Serve application on a loopback port, ready to answer, traced."""
    from serving.models.prepare import ensure_cpu_dev_models

    ensure_cpu_dev_models()
    with warnings.catch_warnings():  # Ray and vLLM warn while starting; not ours to fix.
        warnings.simplefilter("ignore")
        serving = start_serving(
            PROFILE, port=SERVE_PORT, otlp_traces_endpoint=otlp_receiver.traces_url
        )
        try:
            wait_ready(serving, timeout_s=1200)
        except BaseException:
            shutdown()
            raise
    yield serving
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shutdown()


@pytest.fixture(scope="session")
def serve_client(serve_stack: LocalServing) -> OpenAI:
    """The official OpenAI client pointed straight at Ray Serve's OpenAI ingress."""
    return OpenAI(base_url=serve_stack.base_url, api_key="unused", timeout=300, max_retries=0)
