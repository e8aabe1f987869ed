"""Chat templates: the prompt text (and images) the engine sees for one request.

Chat lines are rendered with the variant's chat template from the catalog (the same
template and ``chat_template_kwargs`` the serving engine gets), or the tokenizer's own
when the catalog names none; completion lines pass their prompt through. The engine
tokenizes the prompt text with special tokens, as vLLM's completions endpoint does, so a
rendered chat prompt drops the template's own leading BOS: one BOS, as in serving. Images arrive
as validated ``data:`` URLs and leave as Pillow images for vLLM's multimodal input; the
template only sees that an image is there (it emits the model's image token).

``PromptRenderer`` is a row function for Ray Data's ``Dataset.map`` (one tokenizer per
worker); it works the same called directly, which is how it is tested.
"""

from __future__ import annotations

import base64
import io
import json
from functools import cached_property
from typing import Any

IMAGE_PLACEHOLDER = {"type": "image_url", "image_url": {"url": ""}}


def _strip_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    stripped = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            parts = [IMAGE_PLACEHOLDER if p.get("type") == "image_url" else p for p in content]
            message = {**message, "content": parts}
        stripped.append(message)
    return stripped


def decode_image(data_url: str) -> Any:
    """A Pillow image from a validated ``data:image/...;base64,`` URL."""
    from PIL import Image

    encoded = data_url.split(",", 1)[1]
    image = Image.open(io.BytesIO(base64.b64decode(encoded)))
    return image.convert("RGB")


class PromptRenderer:
    """Renders rows ``{messages (JSON text) | prompt, images, ...}`` into engine prompts."""

    def __init__(
        self,
        model_source: str,
        chat_template: str | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.model_source = model_source
        self.chat_template = chat_template
        self.chat_template_kwargs = dict(chat_template_kwargs or {})

    @cached_property
    def tokenizer(self) -> Any:
        """Loaded at the first chat line: a job of completion lines never needs it, and its
        load (transformers and the vocabulary) would take CPU from the engine's start."""
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model_source)

    @cached_property
    def leading_bos(self) -> str:
        return self._added_bos()

    def _added_bos(self) -> str:
        """The BOS text the tokenizer adds by itself (the engine tokenizes the prompt)."""
        bos = self.tokenizer.bos_token
        ids = self.tokenizer("x").input_ids
        return str(bos) if bos and ids and ids[0] == self.tokenizer.bos_token_id else ""

    def render_chat(self, messages: list[dict[str, Any]]) -> str:
        last_role = messages[-1].get("role") if messages else "user"
        add_generation_prompt = last_role != "assistant"
        text = self.tokenizer.apply_chat_template(
            _strip_images(messages),
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
            **self.chat_template_kwargs,
        )
        text = str(text)
        # The template starts with BOS and so does the engine's tokenization: keep one.
        return text.removeprefix(self.leading_bos) if self.leading_bos else text

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        messages = row.get("messages")
        prompt = self.render_chat(json.loads(messages)) if messages else str(row["prompt"])
        images = [decode_image(url) for url in list(row.get("images") or [])]
        return {
            "custom_id": row["custom_id"],
            "prompt": prompt,
            "sampling_params": row["sampling_params"],
            "multimodal_data": {"image": images} if images else None,
        }
