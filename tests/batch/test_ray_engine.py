"""The data mapping around Ray Data LLM (no Ray started here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from batch.lines import parse_line
from batch.ray_engine import (
    VariantEngineSpec,
    request_row,
    result_from_response,
    result_from_row,
    serve_request,
    usage_telemetry_as_configured,
)
from gateway.priority import PriorityClass, engine_priority
from serving.app import cpu_env, llm_config_data
from serving.catalog import load_catalog
from serving.logs import vllm_logging_env
from serving.models.store import gemma_home
from tests.batch.support import TEXT, chat_line, completion_line, planner

ROOT = Path(__file__).resolve().parents[2]


def _spec() -> VariantEngineSpec:
    catalog = load_catalog()
    return VariantEngineSpec.from_llm_config(
        llm_config_data(catalog, catalog.variants[TEXT], "cpu", gemma_home())
    )


def test_spec_runs_the_serving_engine_profile_on_the_cpu_backend() -> None:
    spec = _spec()
    assert spec.variant == TEXT
    assert spec.cpu
    assert spec.env_vars == {**cpu_env(), **vllm_logging_env()}
    kwargs = spec.processor_engine_kwargs()
    assert kwargs["max_model_len"] == 4096
    assert kwargs["kv_cache_memory_bytes"] > 0
    assert "chat_template" not in kwargs
    assert "tool_call_parser" not in kwargs
    assert "enable_lora" not in kwargs
    assert spec.renderer_kwargs()["chat_template"] == spec.engine_kwargs["chat_template"]


def test_a_single_worker_cpu_engine_keeps_its_worker_in_the_engine_core() -> None:
    spec = _spec()
    assert spec.engine_env() == {**spec.env_vars, "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in spec.env_vars  # the Serve engines' own


def test_gpu_and_parallel_engines_keep_vllms_executor_choice() -> None:
    catalog = load_catalog()
    gpu = VariantEngineSpec.from_llm_config(
        llm_config_data(catalog, catalog.variants["gemma-3-1b-it"], "nvidia-l4", gemma_home())
    )
    assert not gpu.cpu
    assert gpu.engine_env() == gpu.env_vars
    parallel = _spec()
    parallel.engine_kwargs["tensor_parallel_size"] = 2
    assert parallel.engine_env() == parallel.env_vars


def test_config_sections_become_vllm_configs_as_on_the_command_line() -> None:
    from vllm.config import StructuredOutputsConfig

    catalog = load_catalog()
    fixture = catalog.variants["tiny-random-gemma-4"]
    spec = VariantEngineSpec.from_llm_config(llm_config_data(catalog, fixture, "cpu", gemma_home()))
    assert spec.engine_kwargs["structured_outputs_config"] == {"enable_in_reasoning": True}
    kwargs = spec.processor_engine_kwargs()
    section = kwargs["structured_outputs_config"]
    assert isinstance(section, StructuredOutputsConfig)
    assert section.enable_in_reasoning
    assert kwargs["max_num_batched_tokens"] == 1024


def test_a_variant_without_config_sections_leaves_vllm_out_of_the_driver() -> None:
    code = (
        "import sys\n"
        "from tests.batch.test_ray_engine import _spec\n"
        "kwargs = _spec().processor_engine_kwargs()\n"
        "assert kwargs['max_model_len'] == 4096\n"
        "print(sorted(m for m in sys.modules if m == 'vllm' or m.startswith('ray.llm')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"


def test_request_row_has_one_schema_for_chat_and_completion() -> None:
    p = planner()
    chat = request_row(p.plan(parse_line(chat_line("a", max_tokens=3))))
    completion = request_row(p.plan(parse_line(completion_line("b"))))
    assert chat.keys() == completion.keys()
    assert json.loads(chat["messages"]) == [{"role": "user", "content": "Hi"}]
    assert completion["prompt"] == "Once"
    assert chat["sampling_params"].keys() == completion["sampling_params"].keys()


def test_result_from_row() -> None:
    row = {
        "custom_id": "a",
        "generated_text": "hey",
        "num_input_tokens": 9,
        "num_generated_tokens": 3,
        "__inference_error__": "",
    }
    result = result_from_row(row, 3)
    assert (result.text, result.prompt_tokens, result.completion_tokens) == ("hey", 9, 3)
    assert (result.finish_reason, result.error) == ("length", None)
    failed = result_from_row({**row, "__inference_error__": "ValueError: too long"}, 3)
    assert failed.error == "ValueError: too long"


def test_serve_request_is_the_openai_request() -> None:
    p = planner()
    row = serve_request(p.plan(parse_line(chat_line("a", max_tokens=3, stop="x"))))
    assert (row["method"], row["dtype"]) == ("chat", "ChatCompletionRequest")
    kwargs = json.loads(row["request_kwargs_json"])
    assert kwargs["model"] == TEXT
    assert (kwargs["max_tokens"], kwargs["stop"], kwargs["stream"]) == (3, ["x"], False)
    # Batch lines share the live engines in the lowest class: vLLM schedules them last.
    assert kwargs["priority"] == engine_priority(PriorityClass.BATCH)
    assert kwargs["priority"] > max(engine_priority(c) for c in PriorityClass if c != "batch")
    completion = serve_request(p.plan(parse_line(completion_line("b"))))
    assert (completion["method"], json.loads(completion["request_kwargs_json"])["prompt"]) == (
        "completions",
        "Once",
    )


def test_result_from_response() -> None:
    row = {
        "custom_id": "a",
        "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1},
        "__inference_error__": "",
    }
    result = result_from_response(row, 4)
    assert (result.text, result.prompt_tokens, result.finish_reason) == ("hi", 5, "stop")
    assert result_from_response({"custom_id": "b", "__inference_error__": "x"}, 4).error == "x"


def test_ray_data_llms_telemetry_actor_is_skipped_only_when_usage_stats_are_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ray.llm._internal.batch.processor import vllm_engine_proc

    builders_own = vllm_engine_proc.get_or_create_telemetry_agent
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    with usage_telemetry_as_configured():
        agent = vllm_engine_proc.get_or_create_telemetry_agent()
        assert not hasattr(agent, "remote_telemetry_agent")  # no actor asked for
        agent.push_telemetry_report(object())  # and nothing sent: Ray is not even up
    assert vllm_engine_proc.get_or_create_telemetry_agent is builders_own

    with pytest.raises(RuntimeError), usage_telemetry_as_configured():
        raise RuntimeError("a failed build")
    assert vllm_engine_proc.get_or_create_telemetry_agent is builders_own

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "1")
    with usage_telemetry_as_configured():
        assert vllm_engine_proc.get_or_create_telemetry_agent is builders_own
