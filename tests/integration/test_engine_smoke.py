"""vLLM's CPU engine under Ray Serve LLM loads the prepared models and generates.

The 270M is the real Gemma 3 270M: its greedy output must equal Hugging Face transformers'
greedy output token for token (both in float32 from the same prepared directory). The
vision and audio checkpoints are random-weight fixtures: they must accept real media and
generate, and the prompt must have grown by the media's soft tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from serving.models.store import resolve_source
from tests.integration.conftest import MEDIA_MODEL, TEXT_MODEL
from tests.integration.media_checks import audio_part, image_part, media_tokens, video_part

pytestmark = pytest.mark.integration

PROMPTS = ["The capital of France is", "Water boils at", "def fibonacci(n):"]
MAX_TOKENS = 16


def _transformers_greedy(prompts: list[str]) -> list[list[int]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_source("local:gemma-3-270m")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    outputs = []
    with torch.no_grad():
        for prompt in prompts:
            inputs = tokenizer(prompt, return_tensors="pt")
            generated = model.generate(
                **inputs, max_new_tokens=MAX_TOKENS, do_sample=False, top_p=None, top_k=None
            )
            # Both sides keep a sampled end-of-turn/EOS token as the last id.
            outputs.append(generated[0, inputs["input_ids"].shape[1] :].tolist())
    return outputs


def test_270m_greedy_matches_transformers(serve_client: OpenAI) -> None:
    engine = []
    for prompt in PROMPTS:
        completion = serve_client.completions.create(
            model=TEXT_MODEL,
            prompt=prompt,
            max_tokens=MAX_TOKENS,
            temperature=0.0,
            extra_body={"return_token_ids": True},
        )
        choice = completion.choices[0].model_dump()
        engine.append(list(choice["token_ids"]))
        assert completion.usage is not None
        assert completion.usage.completion_tokens == len(choice["token_ids"])
    assert engine == _transformers_greedy(PROMPTS)


def test_270m_knows_where_water_boils(serve_client: OpenAI) -> None:
    completion = serve_client.completions.create(
        model=TEXT_MODEL, prompt="Water boils at", max_tokens=8, temperature=0.0
    )
    assert "100" in completion.choices[0].text


def test_media_fixture_takes_an_image(serve_client: OpenAI) -> None:
    # Gemma 4's image soft tokens (at least 64 at its smallest budget) and their markers.
    assert media_tokens(serve_client, MEDIA_MODEL, image_part()) >= 64


def test_media_fixture_takes_a_16khz_clip(serve_client: OpenAI) -> None:
    # Gemma 4's audio encoder gives 25 soft tokens per second.
    assert media_tokens(serve_client, MEDIA_MODEL, audio_part(2.5)) >= 60


def test_media_fixture_takes_an_mp4_video(serve_client: OpenAI, tmp_path: Path) -> None:
    # The profile samples 4 frames of a video, 70 soft tokens each.
    assert media_tokens(serve_client, MEDIA_MODEL, video_part(tmp_path)) >= 4 * 70
