"""vLLM's CPU engine under Ray Serve LLM loads the prepared models and generates.

The 270M is the real Gemma 3 270M: its greedy output must equal Hugging Face transformers'
greedy output token for token (both in float32 from the same prepared directory). The
vision and audio checkpoints are random-weight fixtures: they must accept real media and
generate, and the prompt must have grown by the media's soft tokens.
"""

from __future__ import annotations

from typing import Any

import pytest
from openai import OpenAI

from serving.models.store import resolve_source
from tests.integration.conftest import AUDIO_MODEL, TEXT_MODEL, VISION_MODEL
from tests.support.media import png_data_url, wav_base64

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


def test_vision_fixture_accepts_an_image(serve_client: OpenAI) -> None:
    text_only = serve_client.chat.completions.create(
        model=VISION_MODEL,
        messages=[{"role": "user", "content": "Describe the picture."}],
        max_tokens=4,
    )
    with_image = serve_client.chat.completions.create(
        model=VISION_MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": png_data_url(320, 240)}},
                    {"type": "text", "text": "Describe the picture."},
                ],
            }
        ],
        max_tokens=4,
    )
    assert with_image.usage is not None
    assert text_only.usage is not None
    assert with_image.usage.completion_tokens > 0
    # 16 image soft tokens plus the start/end markers the processor adds.
    assert with_image.usage.prompt_tokens - text_only.usage.prompt_tokens >= 16


def test_audio_fixture_accepts_a_16khz_clip(serve_client: OpenAI) -> None:
    completion = serve_client.chat.completions.create(
        model=AUDIO_MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "input_audio",
                        "input_audio": {"data": wav_base64(2.5), "format": "wav"},
                    },
                    {"type": "text", "text": "Transcribe this."},
                ],
            }
        ],
        max_tokens=4,
    )
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    assert completion.usage.prompt_tokens >= 188  # Gemma 3n: 188 soft tokens per clip
