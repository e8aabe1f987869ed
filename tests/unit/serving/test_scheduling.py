"""serving.scheduling on vLLM's own scheduler: which requests each step runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
import torch
from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig
from vllm.sampling_params import SamplingParams
from vllm.utils.import_utils import resolve_obj_by_qualname
from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.output import SchedulerOutput
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
from vllm.v1.outputs import ModelRunnerOutput
from vllm.v1.request import Request
from vllm.v1.structured_output import StructuredOutputManager

from serving.app import SCHEDULER_CLS
from serving.models.fixtures import tiny_gemma3_text_config
from serving.scheduling import AsyncPrefillFirstScheduler, PrefillFirstScheduler

BLOCK = 16
BATCH, INTERACTIVE = 10, -10

TEXT_CONFIG = {
    "architectures": ["Gemma3ForCausalLM"],
    "model_type": "gemma3_text",
    "torch_dtype": "float32",
    **tiny_gemma3_text_config(),
}


def _scheduler(
    model_dir: Path,
    *,
    policy: Literal["fcfs", "priority"] = "priority",
    max_num_seqs: int = 8,
    budget: int = 256,
    num_blocks: int = 1000,
    async_scheduling: bool = False,
) -> Scheduler:
    config = VllmConfig(
        model_config=ModelConfig(model=str(model_dir), skip_tokenizer_init=True, dtype="float32"),
        scheduler_config=SchedulerConfig(
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=budget,
            max_model_len=2048,
            enable_chunked_prefill=True,
            policy=policy,
            async_scheduling=async_scheduling,
            is_encoder_decoder=False,
        ),
        cache_config=CacheConfig(block_size=BLOCK, enable_prefix_caching=False),
    )
    kv = KVCacheConfig(
        num_blocks=num_blocks,
        kv_cache_tensors=[],
        kv_cache_groups=[
            KVCacheGroupSpec(
                ["layer"],
                FullAttentionSpec(
                    block_size=BLOCK, num_kv_heads=1, head_size=32, dtype=torch.float32
                ),
            )
        ],
    )
    config.cache_config.num_gpu_blocks = num_blocks
    # vLLM's CPU platform turns asynchronous scheduling off; a GPU engine has it on.
    config.scheduler_config.async_scheduling = async_scheduling
    return PrefillFirstScheduler(
        vllm_config=config,
        kv_cache_config=kv,
        structured_output_manager=StructuredOutputManager(config),
        block_size=BLOCK,
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model")
    (path / "config.json").write_text(json.dumps(TEXT_CONFIG))
    return path


def _request(rid: str, priority: int, prompt: int = 8, max_tokens: int = 50) -> Request:
    return Request(
        request_id=rid,
        prompt_token_ids=[1] * prompt,
        sampling_params=SamplingParams(max_tokens=max_tokens, ignore_eos=True),
        pooling_params=None,
        priority=priority,
    )


def _step(scheduler: Scheduler) -> dict[str, int]:
    """One engine step: what it scheduled, each request answered with one token."""
    output: SchedulerOutput = scheduler.schedule()
    ids = list(output.num_scheduled_tokens)
    sampled = [
        []
        if scheduler.requests[i].num_computed_tokens < scheduler.requests[i].num_prompt_tokens
        else [7]
        for i in ids
    ]
    runner = ModelRunnerOutput(
        req_ids=ids,
        req_id_to_index={rid: n for n, rid in enumerate(ids)},
        sampled_token_ids=sampled,
        logprobs=None,
        prompt_logprobs_dict={},
        pooler_output=[],
    )
    scheduler.update_from_output(output, runner)
    return dict(output.num_scheduled_tokens)


def _running(scheduler: Scheduler, n: int, priority: int = BATCH) -> list[str]:
    ids = [f"bulk-{i}" for i in range(n)]
    for rid in ids:
        scheduler.add_request(_request(rid, priority))
    assert set(_step(scheduler)) == set(ids)  # all prefilled together
    assert set(_step(scheduler)) == set(ids)  # and decoding
    return ids


def test_a_better_class_prefills_alone_and_the_held_ones_resume(model_dir: Path) -> None:
    scheduler = _scheduler(model_dir)
    bulk = _running(scheduler, 6)
    scheduler.add_request(_request("live", INTERACTIVE, prompt=20))

    assert _step(scheduler) == {"live": 20}  # its prefill runs alone
    resumed = _step(scheduler)  # then everyone decodes together
    assert set(resumed) == {"live", *bulk}
    assert all(tokens == 1 for tokens in resumed.values())
    # The held requests kept their place: nothing was preempted or recomputed.
    assert all(scheduler.requests[r].num_preemptions == 0 for r in bulk)
    assert len(scheduler.running) == 7


def test_a_chunked_prefill_holds_the_worse_ones_until_its_last_chunk(model_dir: Path) -> None:
    scheduler = _scheduler(model_dir, budget=64)
    bulk = _running(scheduler, 3)
    scheduler.add_request(_request("live", INTERACTIVE, prompt=150))

    assert _step(scheduler) == {"live": 64}
    assert _step(scheduler) == {"live": 64}
    assert _step(scheduler) == {"live": 22}
    assert set(_step(scheduler)) == {"live", *bulk}


def test_worse_waiting_requests_are_not_admitted_beside_the_better_prefill(
    model_dir: Path,
) -> None:
    scheduler = _scheduler(model_dir)
    bulk = _running(scheduler, 2)
    scheduler.add_request(_request("late-bulk", BATCH))
    scheduler.add_request(_request("live", INTERACTIVE))

    assert _step(scheduler) == {"live": 8}
    assert set(_step(scheduler)) == {"live", "late-bulk", *bulk}


def test_equal_or_better_running_requests_are_never_held(model_dir: Path) -> None:
    scheduler = _scheduler(model_dir)
    live = _running(scheduler, 2, priority=INTERACTIVE)
    scheduler.add_request(_request("bulk", BATCH))

    assert set(_step(scheduler)) == {"bulk", *live}


def test_a_full_engine_is_not_held_for_a_request_it_cannot_admit(model_dir: Path) -> None:
    scheduler = _scheduler(model_dir, max_num_seqs=4)
    bulk = _running(scheduler, 4)
    scheduler.add_request(_request("live", INTERACTIVE))

    # No slot for it: the bulk work goes on, and the request waits as vLLM would have it.
    assert set(_step(scheduler)) == set(bulk)
    assert scheduler.requests["live"].num_computed_tokens == 0


def test_a_request_short_of_kv_cache_is_held_for_once(model_dir: Path) -> None:
    scheduler = _scheduler(model_dir, num_blocks=8)  # 7 usable blocks of 16 tokens
    bulk = _running(scheduler, 3)
    scheduler.add_request(_request("live", INTERACTIVE, prompt=100))

    assert _step(scheduler) == {}  # held for, but it does not fit
    assert set(_step(scheduler)) >= set(bulk)  # so the bulk work is not held again


def test_first_come_first_served_engines_are_unchanged(model_dir: Path) -> None:
    scheduler = _scheduler(model_dir, policy="fcfs")
    bulk = _running(scheduler, 3)
    scheduler.add_request(_request("live", INTERACTIVE))

    assert set(_step(scheduler)) == {"live", *bulk}


def test_the_asynchronous_engines_get_the_asynchronous_scheduler(model_dir: Path) -> None:
    assert type(_scheduler(model_dir)) is PrefillFirstScheduler
    scheduler = _scheduler(model_dir, async_scheduling=True)
    assert type(scheduler) is AsyncPrefillFirstScheduler
    assert isinstance(scheduler, AsyncScheduler)
    assert resolve_obj_by_qualname(SCHEDULER_CLS) is PrefillFirstScheduler
