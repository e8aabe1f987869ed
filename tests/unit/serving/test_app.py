"""Profile -> LLMConfig data: engine kwargs, resources, env vars, autoscaling, LoRA, metadata."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from serving.app import (
    INGRESS_CLS,
    LORA_SERVER_CLS,
    SERVER_CLS,
    AppArgs,
    adapter_model_id,
    cpu_env,
    engine_kwargs,
    serving_args,
)
from serving.catalog import Catalog, chat_template_text, load_catalog
from serving.logs import vllm_logging_env

HOME = Path("/srv/gemma")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def configs(catalog: Catalog, profile: str) -> dict[str, dict[str, Any]]:
    args = AppArgs(profile=profile, catalog=catalog, models_home=str(HOME))
    data = serving_args(args)["llm_configs"]
    return {c["model_loading_config"]["model_id"]: c for c in data}


def test_cpu_dev_builds_one_engine_per_variant(catalog: Catalog) -> None:
    assert list(configs(catalog, "cpu-dev")) == ["gemma-3-270m", "tiny-random-gemma-4"]
    assert list(configs(catalog, "cpu-full")) == [
        "gemma-3-270m",
        "tiny-random-gemma-4",
        "tiny-random-embeddinggemma",
        "tiny-random-shieldgemma",
    ]
    assert list(configs(catalog, "cpu-gemma3-media")) == [
        "tiny-random-gemma-3-vision",
        "tiny-random-gemma-3n",
        "tiny-random-shieldgemma-2",
    ]


def test_cpu_dev_270m(catalog: Catalog) -> None:
    config = configs(catalog, "cpu-dev")["gemma-3-270m"]
    assert config["model_loading_config"]["model_source"] == str(HOME / "models/gemma-3-270m")
    kwargs = config["engine_kwargs"]
    assert {k: kwargs[k] for k in ("dtype", "max_model_len", "max_num_seqs", "enforce_eager")} == {
        "dtype": "float32",
        "max_model_len": 4096,
        "max_num_seqs": 8,
        "enforce_eager": True,
    }
    assert "gpu_memory_utilization" not in kwargs
    assert "limit_mm_per_prompt" not in kwargs
    assert config["accelerator_config"] == {"kind": "cpu"}
    assert config["placement_group_config"] == {"bundles": [{"CPU": 1}]}
    assert kwargs["kv_cache_memory_bytes"] == 2**29
    assert config["runtime_env"]["env_vars"] == {
        "MALLOC_ARENA_MAX": "2",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        "VLLM_TARGET_DEVICE": "cpu",
        **cpu_env(),
        **vllm_logging_env(),
    }
    assert "accelerator_type" not in config


def test_tool_calling_kwargs(catalog: Catalog) -> None:
    kwargs = configs(catalog, "cpu-dev")["gemma-3-270m"]["engine_kwargs"]
    assert kwargs["enable_auto_tool_choice"] is True
    assert kwargs["tool_call_parser"] == "pythonic"
    assert kwargs["chat_template"] == chat_template_text("gemma3_tools")
    assert kwargs["chat_template_content_format"] == "openai"


def test_fixtures_keep_their_tokenizer_template_and_get_mm_limits(catalog: Catalog) -> None:
    built = configs(catalog, "cpu-gemma3-media")
    vision = built["tiny-random-gemma-3-vision"]
    audio = built["tiny-random-gemma-3n"]
    assert vision["model_loading_config"]["model_source"] == str(
        HOME / "fixtures/tiny-random-gemma-3-vision"
    )
    assert vision["engine_kwargs"]["limit_mm_per_prompt"] == {"image": 1}
    assert audio["engine_kwargs"]["limit_mm_per_prompt"] == {"image": 1, "audio": 1}
    for config in (vision, audio):
        assert "chat_template" not in config["engine_kwargs"]
        assert "tool_call_parser" not in config["engine_kwargs"]
    gemma4 = configs(catalog, "cpu-dev")["tiny-random-gemma-4"]["engine_kwargs"]
    assert "chat_template" not in gemma4
    assert gemma4["limit_mm_per_prompt"] == {
        "image": 1,
        "audio": 1,
        "video": {"count": 1, "num_frames": 4},
    }
    assert gemma4["media_io_kwargs"] == {"video": {"num_frames": 4}}
    assert (gemma4["tool_call_parser"], gemma4["reasoning_parser"]) == (
        "gemma4_constrained",
        "gemma4",
    )


def test_lora_adapters_become_static_modules_served_by_the_lora_server(catalog: Catalog) -> None:
    config = configs(catalog, "cpu-dev")["gemma-3-270m"]
    kwargs = config["engine_kwargs"]
    assert kwargs["enable_lora"] is True
    assert kwargs["max_loras"] == 1
    assert kwargs["max_lora_rank"] == 16
    assert kwargs["lora_modules"] == [
        {
            "name": "gemma-3-270m:tiny-lora",
            "path": str(HOME / "fixtures/tiny-lora-gemma-3-270m"),
            "base_model_name": "gemma-3-270m",
        }
    ]
    assert config["server_cls"] == LORA_SERVER_CLS
    assert config["lora_config"] == {"max_num_adapters_per_replica": 1}
    no_lora = configs(catalog, "cpu-dev")["tiny-random-gemma-4"]
    assert no_lora["server_cls"] == SERVER_CLS
    assert "lora_config" not in no_lora


def test_adapter_model_id_follows_ray_serve_llm() -> None:
    assert adapter_model_id("gemma-3-270m", "tiny-lora") == "gemma-3-270m:tiny-lora"


def test_deployment_config_autoscaling_health_and_shutdown(catalog: Catalog) -> None:
    cpu = configs(catalog, "cpu-dev")["gemma-3-270m"]["deployment_config"]
    assert cpu == {
        "autoscaling_config": {"min_replicas": 1, "max_replicas": 1, "target_ongoing_requests": 16},
        "health_check_period_s": 10,
        "health_check_timeout_s": 30,
        "graceful_shutdown_wait_loop_s": 2,
        "graceful_shutdown_timeout_s": 60,
    }
    gpu = configs(catalog, "gke-l4")["gemma-3-12b-it"]["deployment_config"]
    assert gpu["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 4,
        "target_ongoing_requests": 8,
    }


def test_gke_l4_engines(catalog: Catalog) -> None:
    built = configs(catalog, "gke-l4")
    assert set(built) == set(catalog.profile("gke-l4").variants)
    twelve = built["gemma-3-12b-it"]
    assert twelve["accelerator_type"] == "L4"
    assert twelve["model_loading_config"]["model_source"] == "google/gemma-3-12b-it"
    assert twelve["runtime_env"] == {"env_vars": vllm_logging_env()}  # JSON logs only
    assert "placement_group_config" not in twelve
    kwargs = twelve["engine_kwargs"]
    assert kwargs["quantization"] == "fp8"
    assert kwargs["gpu_memory_utilization"] == 0.9
    assert kwargs["tensor_parallel_size"] == 1
    assert kwargs["limit_mm_per_prompt"] == {"image": 2}
    assert kwargs["dtype"] == "bfloat16"
    assert "enable_lora" not in kwargs  # the 270M's fixture adapter is cpu-only


def test_27b_on_h100_and_a100(catalog: Catalog) -> None:
    h100 = configs(catalog, "gke-h100")["gemma-3-27b-it"]
    assert h100["accelerator_type"] == "H100"
    assert h100["engine_kwargs"]["quantization"] == "fp8"
    a100 = configs(catalog, "gke-a100")["gemma-3-27b-it"]
    assert a100["accelerator_type"] == "A100-80G"
    assert a100["engine_kwargs"]["tensor_parallel_size"] == 2
    assert "quantization" not in a100["engine_kwargs"]


def test_gemma_3n_template_tokens(catalog: Catalog) -> None:
    # No GKE profile serves Gemma 3n any more (Gemma 4 E2B/E4B took its place there).
    kwargs = engine_kwargs(catalog.variants["gemma-3n-E4B-it"], "nvidia-l4", HOME)
    assert kwargs["default_chat_template_kwargs"] == {
        "image_token": "<image_soft_token>",
        "audio_token": "<audio_soft_token>",
    }
    assert kwargs["limit_mm_per_prompt"] == {"image": 1, "audio": 1}


def test_engine_kwargs_escape_hatch_wins(catalog: Catalog) -> None:
    data = catalog.model_dump()
    data["variants"]["gemma-3-1b-it"]["engines"]["nvidia-l4"]["engine_kwargs"] = {
        "enable_prefix_caching": True,
        "max_num_seqs": 7,
    }
    edited = Catalog.model_validate(data)
    kwargs = configs(edited, "gke-l4")["gemma-3-1b-it"]["engine_kwargs"]
    assert kwargs["enable_prefix_caching"] is True
    assert kwargs["max_num_seqs"] == 7
    assert kwargs["scheduling_policy"] == "priority"  # the gateway sets each request's
    assert kwargs["scheduler_cls"] == "serving.scheduling.PrefillFirstScheduler"


def test_ingress_gets_capabilities_per_model(catalog: Catalog) -> None:
    args = serving_args(AppArgs(profile="cpu-dev", catalog=catalog))
    ingress = args["ingress_cls_config"]
    assert ingress["ingress_cls"] == INGRESS_CLS
    metadata = ingress["ingress_extra_kwargs"]["model_metadata"]
    assert metadata["gemma-3-270m"] == {
        "capabilities": ["text", "tools"],
        "kind": "model",
        "hf_id": "google/gemma-3-270m",
        "context_length": 32768,
        "max_model_len": 4096,
        "engine_slots": 8,  # max_num_seqs 8 x one replica on the CPU
        "target": "cpu",
        "adapters": ["gemma-3-270m:tiny-lora"],
    }
    gke = serving_args(AppArgs(profile="gke-l4", catalog=catalog))["ingress_cls_config"]
    l4 = gke["ingress_extra_kwargs"]["model_metadata"]["gemma-3-1b-it"]
    assert l4["engine_slots"] == 128 * 4  # max_num_seqs x max_replicas
    assert metadata["tiny-random-gemma-4"]["capabilities"] == [
        "text",
        "vision",
        "audio",
        "video",
        "tools",
        "reasoning",
    ]
    assert metadata["tiny-random-gemma-4"]["kind"] == "fixture"


def test_models_home_defaults_to_the_environment(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GEMMA_SERVING_HOME", str(tmp_path))
    data = serving_args(AppArgs(profile="cpu-text", catalog=catalog))["llm_configs"]
    assert data[0]["model_loading_config"]["model_source"] == str(tmp_path / "models/gemma-3-270m")


def test_app_args_read_the_catalog_file_when_not_embedded(tmp_path: Path) -> None:
    text = Path(load_catalog.__code__.co_filename).with_name("catalog.yaml").read_text()
    path = tmp_path / "c.yaml"
    path.write_text(text.replace("max_num_seqs: 8\n", "max_num_seqs: 3\n", 1))
    data = serving_args(AppArgs(profile="cpu-text", catalog_path=str(path)))["llm_configs"]
    assert data[0]["engine_kwargs"]["max_num_seqs"] == 3


def test_app_args_reject_unknown_keys() -> None:
    with pytest.raises(ValueError, match="profil"):
        AppArgs.model_validate({"profil": "cpu-dev"})


def test_gemma_4_parsers_and_mtp_draft_reach_the_engine(catalog: Catalog) -> None:
    kwargs = configs(catalog, "gke-l4")["gemma-4-E2B-it"]["engine_kwargs"]
    assert kwargs["reasoning_parser"] == "gemma4"
    assert (kwargs["enable_auto_tool_choice"], kwargs["tool_call_parser"]) == (
        True,
        "gemma4_constrained",
    )
    assert "chat_template" not in kwargs  # Gemma 4's tokenizer brings its own template
    assert kwargs["speculative_config"] == {
        "method": "mtp",
        "model": "google/gemma-4-E2B-it-assistant",
        "num_speculative_tokens": 1,
    }
    assert kwargs["limit_mm_per_prompt"] == {"image": 1, "audio": 1, "video": 1}
    twelve = configs(catalog, "gke-l4")["gemma-4-12B-it"]["engine_kwargs"]
    assert twelve["quantization"] == "fp8"
    assert twelve["limit_mm_per_prompt"] == {"image": 2, "audio": 1}
    gemma_3 = configs(catalog, "gke-l4")["gemma-3-4b-it"]["engine_kwargs"]
    assert "reasoning_parser" not in gemma_3
    assert "speculative_config" not in gemma_3


def test_big_gemma_4_engines_on_h100_and_a100(catalog: Catalog) -> None:
    h100 = configs(catalog, "gke-h100")
    assert h100["gemma-4-31B-it"]["engine_kwargs"]["quantization"] == "fp8"
    assert h100["gemma-4-31B-it"]["engine_kwargs"]["tensor_parallel_size"] == 1
    assert "quantization" not in h100["gemma-4-26B-A4B-it"]["engine_kwargs"]
    a100 = configs(catalog, "gke-a100")["gemma-4-31B-it"]
    assert a100["engine_kwargs"]["tensor_parallel_size"] == 2
    assert "quantization" not in a100["engine_kwargs"]
    assert a100["deployment_config"]["autoscaling_config"]["max_replicas"] == 1


def test_a_local_mtp_draft_resolves_under_the_models_home(catalog: Catalog) -> None:
    from serving.runner import local_sources

    data = catalog.model_dump()
    data["variants"]["gemma-4-E2B-it"]["mtp_draft"]["source"] = "local:e2b-assistant"
    edited = Catalog.model_validate(data)
    kwargs = configs(edited, "gke-l4")["gemma-4-E2B-it"]["engine_kwargs"]
    assert kwargs["speculative_config"]["model"] == str(HOME / "models/e2b-assistant")
    assert "local:e2b-assistant" in local_sources(edited, "gke-l4")
    assert "local:e2b-assistant" not in local_sources(catalog, "gke-l4")


def test_cpu_engines_compute_on_every_core_of_the_host() -> None:
    from serving.app import cpu_env

    assert cpu_env()["OMP_NUM_THREADS"] == str(len(os.sched_getaffinity(0)))


def test_cpu_engines_run_on_jemalloc_where_the_host_has_it(tmp_path: Path) -> None:
    from serving.app import CPU_ENV, cpu_env

    library = tmp_path / "libjemalloc.so.2"
    assert cpu_env(library, threads=3) == {**CPU_ENV, "OMP_NUM_THREADS": "3"}
    library.write_bytes(b"")
    env = cpu_env(library)
    assert env["LD_PRELOAD"] == str(library)
    assert "dirty_decay_ms" in env["MALLOC_CONF"]
    assert {k: env[k] for k in CPU_ENV} == CPU_ENV
