"""ShieldGemma 2 (``ShieldGemma2ForImageClassification``) on vLLM, as a plugin model.

ShieldGemma 2 is Gemma 3's image-text model wrapped in a classifier: transformers reads the
logits of ``Yes`` and ``No`` at the last position of a prompt that holds one image and one
policy, and scores ``P(Yes)`` by a softmax over the two. vLLM 0.29 has no such class, so
``register`` (a ``vllm.general_plugins`` entry point) names vLLM's Gemma 3 model under
ShieldGemma 2's architecture. The engine runs it as a generator (the catalog says
``runner: generate``) and the gateway asks one chat completion per (image, policy) for one
token with ``logprob_token_ids`` = the two labels (``gateway.moderation.image_scores``),
the same softmax the model card describes.

What differs from Gemma 3 is only where things are: the config class
(``ShieldGemma2Config``, whose fields Gemma 3's processor reads under the same names) and
one more ``model.`` level in front of every weight. The hub checkpoint (saved by
transformers 4.50) holds ``model.language_model.model.*``, ``model.vision_tower.vision_model.*``
and ``model.multi_modal_projector.*``: vLLM's Gemma 3 names under the wrapper's level.
transformers 5 writes ``model.model.language_model.model.*`` and ``model.model.vision_tower.*``
(without SigLIP's ``vision_model.`` level); the mapper reads both.
"""

from __future__ import annotations

ARCHITECTURE = "ShieldGemma2ForImageClassification"
_MODEL = "serving.shieldgemma2_model:ShieldGemma2ForImageClassification"


def register() -> None:
    """The ``vllm.general_plugins`` entry point: register ShieldGemma 2's architecture."""
    from vllm import ModelRegistry

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(ARCHITECTURE, _MODEL)
