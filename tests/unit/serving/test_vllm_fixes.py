"""The vLLM plugin's fixes, each shown against the fault it fixes (real oneDNN, real processor)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from serving.models.store import resolve_source
from serving.vllm_fixes import contiguous_input, register, without_video_count


def test_onednn_mm_refuses_a_transposed_input_and_the_fix_computes_it() -> None:
    from vllm import _custom_ops as ops

    if not hasattr(torch.ops._C, "create_onednn_mm_handler"):
        pytest.skip("this vLLM build has no oneDNN GEMM")  # GPU builds
    weight = torch.randn(24, 16)  # (n, k), as vLLM keeps linear weights
    handler = ops.create_onednn_mm(weight.t(), 32)
    x = torch.randn(16, 5).t()  # (5, 16), a transposed view: stride(-1) != 1
    original = getattr(ops.onednn_mm, "__wrapped__", ops.onednn_mm)
    with pytest.raises(RuntimeError, match="stride"):
        original(handler, x, None)
    fixed = contiguous_input(original)(handler, x, None)
    torch.testing.assert_close(fixed, x @ weight.t(), rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def gemma4_processor() -> Any:
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(resolve_source("fixture:tiny-random-gemma-4"))


def test_gemma4_processor_refuses_expanded_video_tokens_without_videos_and_the_fix_lets_them(
    gemma4_processor: Any,
) -> None:
    prompt = ["Describe " + gemma4_processor.video_token * 3]
    cls = type(gemma4_processor)
    original = getattr(cls.validate_inputs, "__wrapped__", cls.validate_inputs)
    with pytest.raises(ValueError, match="video"):
        original(gemma4_processor, text=prompt)
    without_video_count(original)(gemma4_processor, text=prompt)
    assert gemma4_processor.video_token is not None  # put back after the call


def test_register_applies_each_fix_once() -> None:
    from transformers.models.gemma4.processing_gemma4 import Gemma4Processor
    from vllm import _custom_ops as ops

    register()
    register()
    assert ops.onednn_mm.__wrapped__ is not None  # type: ignore[attr-defined]
    assert not hasattr(ops.onednn_mm.__wrapped__, "__wrapped__")  # type: ignore[attr-defined]
    validate = Gemma4Processor.validate_inputs
    assert not hasattr(validate.__wrapped__, "__wrapped__")  # type: ignore[attr-defined]
