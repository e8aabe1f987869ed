"""Fixes for two faults of the pinned vLLM (0.29) with Gemma 4, loaded as a vLLM plugin.

vLLM loads every ``vllm.general_plugins`` entry point in each of its processes (the
frontend that renders prompts, the engine core, the workers); ``pyproject.toml`` names
``register`` there, so the fixes reach every process on the CPU and the GPU path alike.
Each one checks that the fault is still there before it changes anything, so a vLLM
that has fixed it is left as it is.

- ``contiguous_onednn_mm``: on the CPU, vLLM's unquantized linear layers call oneDNN
  through ``vllm._custom_ops.onednn_mm``, which requires a row-contiguous input. Gemma 4's
  audio tower passes a transposed view; the engine core dies on the first audio request
  ("Expected a.stride(-1) == 1"). The fix hands oneDNN a contiguous copy when needed.
- ``videoless_gemma4_prompts``: vLLM asks transformers' ``Gemma4Processor`` to tokenize a
  prompt whose video placeholders it expanded itself, without the videos (it processes
  them apart); transformers refuses ("Found N <|video|> tokens in the text but no videos
  were passed"), so every video request fails. The fix skips that count when no videos
  are passed, the case in which there is nothing to count against.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)
FIXED_MARK = "_gemma_serving_fix"


def contiguous_input(mm: Callable[..., Any]) -> Callable[..., Any]:
    """``onednn_mm(handler, x, bias)`` that passes oneDNN a row-contiguous ``x``."""

    @functools.wraps(mm)
    def onednn_mm(handler: Any, x: Any, bias: Any) -> Any:
        return mm(handler, x if x.stride(-1) == 1 else x.contiguous(), bias)

    setattr(onednn_mm, FIXED_MARK, True)
    return onednn_mm


def contiguous_onednn_mm() -> bool:
    from vllm import _custom_ops as ops

    current = getattr(ops, "onednn_mm", None)
    if current is None or getattr(current, FIXED_MARK, False):
        return False
    ops.onednn_mm = contiguous_input(current)
    return True


def without_video_count(validate: Callable[..., Any]) -> Callable[..., Any]:
    """``validate_inputs`` that does not count video placeholders when no videos come."""

    @functools.wraps(validate)
    def validate_inputs(self: Any, *args: Any, videos: Any = None, **kwargs: Any) -> Any:
        if videos is not None or getattr(self, "video_token", None) is None:
            return validate(self, *args, videos=videos, **kwargs)
        token, self.video_token = self.video_token, None
        try:
            return validate(self, *args, videos=videos, **kwargs)
        finally:
            self.video_token = token

    setattr(validate_inputs, FIXED_MARK, True)
    return validate_inputs


def videoless_gemma4_prompts() -> bool:
    try:
        from transformers.models.gemma4.processing_gemma4 import Gemma4Processor
    except ImportError:
        return False
    current = Gemma4Processor.validate_inputs
    if getattr(current, FIXED_MARK, False):
        return False
    Gemma4Processor.validate_inputs = without_video_count(current)  # type: ignore[method-assign]
    return True


def register() -> None:
    """The ``vllm.general_plugins`` entry point: apply the fixes this vLLM needs."""
    import vllm

    if not vllm.__version__.startswith("0.29."):
        return
    for fix in (contiguous_onednn_mm, videoless_gemma4_prompts):
        if fix():
            logger.debug("applied %s to vLLM %s", fix.__name__, vllm.__version__)
