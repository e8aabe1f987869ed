from __future__ import annotations

import json
from pathlib import Path

import pytest

from batch.prompts import PromptRenderer, decode_image
from batch.ray_engine import VariantEngineSpec
from serving.app import llm_config_data
from serving.catalog import load_catalog
from serving.models.store import gemma_home
from tests.batch.support import TEXT, VISION, png_data_url


def _spec(variant: str) -> VariantEngineSpec:
    catalog = load_catalog()
    data = llm_config_data(catalog, catalog.variants[variant], "cpu", gemma_home())
    if not Path(data["model_loading_config"]["model_source"]).is_dir():
        pytest.skip(f"{variant} is not prepared (gemma-serving models prepare)")
    return VariantEngineSpec.from_llm_config(data)


@pytest.fixture(scope="module")
def renderer() -> PromptRenderer:
    return PromptRenderer(**_spec(TEXT).renderer_kwargs())


def test_chat_rows_get_the_catalog_template(renderer: PromptRenderer) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    row = renderer(
        {
            "custom_id": "a",
            "messages": json.dumps(messages),
            "prompt": "",
            "images": [],
            "sampling_params": {"max_tokens": 2},
        }
    )
    assert row["prompt"].startswith("<start_of_turn>user\nBe brief.")
    ids = renderer.tokenizer(row["prompt"]).input_ids  # as the engine tokenizes it
    assert ids.count(renderer.tokenizer.bos_token_id) == 1
    assert row["prompt"].endswith("<start_of_turn>model\n")
    assert row["multimodal_data"] is None
    assert row["sampling_params"] == {"max_tokens": 2}


def test_assistant_prefill_is_continued(renderer: PromptRenderer) -> None:
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hel"}]
    assert renderer.render_chat(messages).endswith("Hel")


def test_completion_rows_pass_their_prompt_through(renderer: PromptRenderer) -> None:
    row = renderer(
        {"custom_id": "p", "messages": "", "prompt": "Once", "images": [], "sampling_params": {}}
    )
    assert row["prompt"] == "Once"


def test_a_job_of_completion_rows_never_loads_the_tokenizer() -> None:
    fresh = PromptRenderer(**_spec(TEXT).renderer_kwargs())
    row = {"custom_id": "p", "messages": "", "prompt": "Once", "images": [], "sampling_params": {}}
    assert [fresh(row)["prompt"] for _ in range(3)] == ["Once"] * 3
    assert "tokenizer" not in vars(fresh)


def test_image_rows_carry_the_image_token_and_pixels() -> None:
    renderer = PromptRenderer(**_spec(VISION).renderer_kwargs())
    url = png_data_url(8)
    content = [{"type": "text", "text": "What?"}, {"type": "image_url", "image_url": {"url": url}}]
    row = renderer(
        {
            "custom_id": "i",
            "messages": json.dumps([{"role": "user", "content": content}]),
            "prompt": "",
            "images": [url],
            "sampling_params": {},
        }
    )
    assert row["prompt"].count("<|image|>") == 1  # the Gemma 4 fixture's image placeholder
    assert url not in row["prompt"]
    (image,) = row["multimodal_data"]["image"]
    assert image.size == (8, 8)


def test_decode_image_returns_rgb() -> None:
    assert decode_image(png_data_url(4)).mode == "RGB"
