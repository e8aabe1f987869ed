"""The generated configs against Ray Serve LLM and vLLM themselves (no cluster, no engine).

Ray's ``LLMConfig`` validation, its split of ``engine_kwargs`` into vLLM engine and
frontend arguments (an unknown name fails there), the ingress's ``/v1/models`` handlers
and the LoRA loader are all called directly.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException
from ray.llm._internal.serve.core.configs.accelerators import CPUConfig, GPUConfig
from ray.llm._internal.serve.core.configs.openai_api_models import to_model_metadata
from ray.serve.llm import LLMConfig
from vllm.entrypoints.launchers.cli_args import FrontendArgs
from vllm.entrypoints.openai.models.protocol import LoRAModulePath

from serving.app import AppArgs, build_llm_configs, serving_args
from serving.catalog import Catalog, load_catalog
from serving.ingress import GemmaIngress
from serving.lora import StaticLoraLoader, StaticLoraServer

HOME = "/srv/gemma"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def built(catalog: Catalog, profile: str) -> dict[str, LLMConfig]:
    configs = build_llm_configs(AppArgs(profile=profile, catalog=catalog, models_home=HOME))
    return {c.model_id: c for c in configs}


@pytest.mark.parametrize("profile", sorted(load_catalog().profiles))
def test_every_profile_validates_and_splits_into_known_vllm_arguments(
    catalog: Catalog, profile: str
) -> None:
    target = catalog.profile(profile).target
    for config in built(catalog, profile).values():
        variant = catalog.variants[config.model_id]
        engine = config.get_engine_config()  # raises "Unknown engine argument: ..."
        assert engine is not None
        frontend = FrontendArgs(**engine.frontend_kwargs)
        assert engine.engine_kwargs["max_model_len"] == config.engine_kwargs["max_model_len"]
        if "tool_call_parser" in config.engine_kwargs:
            assert frontend.enable_auto_tool_choice
            assert frontend.tool_call_parser == variant.tool_call_parser
            # Gemma 3 uses the packaged tool template, Gemma 4 its tokenizer's own.
            assert (frontend.chat_template is not None) == (variant.chat_template is not None)
        # vLLM engine arguments, not frontend ones.
        assert engine.engine_kwargs.get("reasoning_parser") == variant.reasoning_parser
        speculative = engine.engine_kwargs.get("speculative_config")
        assert (speculative is not None) == (variant.engines[target].speculative is not None)


def test_cpu_configs(catalog: Catalog) -> None:
    configs = built(catalog, "cpu-dev")
    for config in configs.values():
        assert isinstance(config.accelerator_config, CPUConfig)
        assert config.accelerator_type is None
        assert config.get_engine_config().placement_bundles == [{"CPU": 1}]
    assert configs["gemma-3-270m"].max_request_context_length == 4096


def test_an_engine_profiles_stream_batching_interval_reaches_the_engine_replica(
    catalog: Catalog,
) -> None:
    from types import SimpleNamespace

    from ray.llm._internal.serve.constants import MODEL_RESPONSE_BATCH_TIMEOUT_MS

    from serving.server import GemmaLLMServer

    for profile in ("cpu-full", "gke-l4"):
        target = catalog.profile(profile).target
        for model_id, config in built(catalog, profile).items():
            interval = catalog.variants[model_id].engines[target].stream_batching_interval_ms
            replica: Any = SimpleNamespace(_llm_config=config)
            if interval is None:  # Ray Serve LLM's own default
                assert "stream_batching_interval_ms" not in config.experimental_configs
                interval = MODEL_RESPONSE_BATCH_TIMEOUT_MS
            assert GemmaLLMServer._get_batch_interval_ms(replica) == interval
    # The real 270M on the CPU, where a stream's tokens come ~100 ms apart: batches there
    # form only past Ray's default.
    config = built(catalog, "cpu-dev")["gemma-3-270m"]
    assert config.experimental_configs["stream_batching_interval_ms"] > (
        MODEL_RESPONSE_BATCH_TIMEOUT_MS
    )


def test_gpu_configs_request_their_accelerator(catalog: Catalog) -> None:
    configs = built(catalog, "gke-l4")
    twenty_seven = built(catalog, "gke-a100")["gemma-3-27b-it"]
    for config in configs.values():
        assert isinstance(config.accelerator_config, GPUConfig)
        assert config.accelerator_type == "L4"
    bundles = twenty_seven.get_engine_config().placement_bundles
    assert bundles == [{"GPU": 1, "accelerator_type:A100-80G": 0.001}] * 2


def test_lora_variant_uses_the_static_lora_server(catalog: Catalog) -> None:
    config = built(catalog, "cpu-dev")["gemma-3-270m"]
    assert config.server_cls is StaticLoraServer
    assert config.lora_config is not None
    assert config.lora_config.dynamic_lora_loading_path is None
    frontend = FrontendArgs(**config.get_engine_config().frontend_kwargs)
    assert frontend.lora_modules == [
        LoRAModulePath(
            name="gemma-3-270m:tiny-lora",
            path=f"{HOME}/fixtures/tiny-lora-gemma-3-270m",
            base_model_name="gemma-3-270m",
        )
    ]
    assert config.get_engine_config().engine_kwargs["enable_lora"] is True


def test_static_lora_loader_resolves_served_adapters(catalog: Catalog) -> None:
    config = built(catalog, "cpu-dev")["gemma-3-270m"]
    loader = StaticLoraLoader()
    disk = asyncio.run(loader.load_model_from_config("gemma-3-270m:tiny-lora", config))
    assert disk.model_id == "gemma-3-270m:tiny-lora"
    assert Path(disk.local_path) == Path(HOME) / "fixtures/tiny-lora-gemma-3-270m"
    assert disk.max_total_tokens == 4096
    with pytest.raises(HTTPException) as caught:
        asyncio.run(loader.load_model_from_config("gemma-3-270m:missing", config))
    assert caught.value.status_code == 404
    assert "gemma-3-270m:tiny-lora" in str(caught.value.detail)


class Health:
    """A deployment handle's ``check_health`` method: answers, raises, or never answers."""

    def __init__(self, outcome: str) -> None:
        self.outcome = outcome
        self.cancelled = False

    def remote(self) -> Health:
        return self

    def cancel(self) -> None:
        self.cancelled = True

    def __await__(self) -> Any:
        if self.outcome == "hang":
            yield from asyncio.sleep(3600).__await__()
        if self.outcome == "dead":
            raise RuntimeError("EngineDeadError")
        return None


class Engine:
    """A stand-in for an LLMServer deployment handle: only its health check is called."""

    def __init__(self, outcome: str = "up") -> None:
        self.check_health = Health(outcome)


def ingress(catalog: Catalog, profile: str, health: dict[str, str] | None = None) -> GemmaIngress:
    args = serving_args(AppArgs(profile=profile, catalog=catalog, models_home=HOME))
    configs = [LLMConfig.model_validate(c) for c in args["llm_configs"]]
    kwargs: dict[str, Any] = {
        **args["ingress_cls_config"]["ingress_extra_kwargs"],
        "health_timeout_s": 0.2,
    }
    outcomes = health or {}
    return GemmaIngress(
        {c.model_id: Engine(outcomes.get(c.model_id, "up")) for c in configs},
        {c.model_id: to_model_metadata(c.model_id, c) for c in configs},
        lora_paths={},
        **kwargs,
    )


def test_models_list_says_which_engines_answer(catalog: Catalog) -> None:
    app = ingress(catalog, "cpu-dev", {"gemma-3-270m": "dead", "tiny-random-gemma-4": "hang"})
    cards = {card.id: card.metadata for card in asyncio.run(app.models()).data}
    assert cards["gemma-3-270m"]["health"] == {"status": "down", "reason": "RuntimeError"}
    assert cards["gemma-3-270m:tiny-lora"]["health"] == cards["gemma-3-270m"]["health"]
    assert cards["tiny-random-gemma-4"]["health"] == {
        "status": "down",
        "reason": "no replica answered within 0.2s",
    }
    healthy = {
        card.id: card.metadata for card in asyncio.run(ingress(catalog, "cpu-dev").models()).data
    }
    assert {c["health"]["status"] for c in healthy.values()} == {"up"}


def test_models_list_carries_capabilities_and_adapter_ids(catalog: Catalog) -> None:
    listed = asyncio.run(ingress(catalog, "cpu-full").models())
    ids = [card.id for card in listed.data]
    assert ids == [
        "gemma-3-270m",
        "gemma-3-270m:tiny-lora",
        "tiny-random-gemma-4",
        "tiny-random-embeddinggemma",
        "tiny-random-shieldgemma",
    ]
    cards = {card.id: card.metadata for card in listed.data}
    assert cards["gemma-3-270m"]["capabilities"] == ["text", "tools"]
    assert cards["gemma-3-270m"]["max_request_context_length"] == 4096  # Ray's own field
    assert cards["tiny-random-gemma-4"]["capabilities"] == [
        "text",
        "vision",
        "audio",
        "video",
        "tools",
        "reasoning",
    ]
    assert cards["tiny-random-gemma-4"]["kind"] == "fixture"
    assert cards["tiny-random-shieldgemma"]["capabilities"] == ["moderation"]
    assert cards["tiny-random-shieldgemma"]["moderation_policy"] == "shieldgemma"
    assert "moderation_policy" not in cards["gemma-3-270m"]
    adapter = cards["gemma-3-270m:tiny-lora"]
    assert adapter["base_model_id"] == "gemma-3-270m"
    assert adapter["model_id"] == "gemma-3-270m:tiny-lora"
    assert adapter["capabilities"] == ["text", "tools"]
    assert "adapters" not in adapter


def test_model_lookup(catalog: Catalog) -> None:
    app = ingress(catalog, "cpu-dev")
    card = asyncio.run(app.model("gemma-3-270m:tiny-lora"))
    assert card is not None
    assert card.id == "gemma-3-270m:tiny-lora"
    assert asyncio.run(app.model("gemma-3-270m:unknown")) is None
    base = asyncio.run(app.model("tiny-random-gemma-4"))
    assert base is not None
    assert "video" in base.metadata["capabilities"]


def direct_replica(catalog: Catalog, outcome: str = "up") -> Any:
    """What ``GemmaLLMServer.models`` reads of a direct-streaming engine replica: its
    ``LLMConfig`` (cpu-text's, as built), its engine's health check and how long to wait
    for it."""
    from types import SimpleNamespace

    (config,) = built(catalog, "cpu-text").values()

    async def check_health() -> None:
        if outcome == "hang":
            await asyncio.sleep(3600)
        if outcome == "dead":
            raise RuntimeError("EngineDeadError")

    return SimpleNamespace(_llm_config=config, check_health=check_health, health_timeout_s=0.1)


def test_a_direct_streaming_engine_lists_the_cards_the_ingress_lists(catalog: Catalog) -> None:
    """cpu-text's engine replica has no ingress in front: it lists its model and adapter
    with the same catalog metadata as the OpenAI ingress of a profile serving the same
    variant on the same target, and its engine's health."""
    from serving.server import GemmaLLMServer

    args = serving_args(AppArgs(profile="cpu-text", catalog=catalog, models_home=HOME))
    assert list(args) == ["llm_configs"]  # no ingress
    listed = asyncio.run(GemmaLLMServer.models(direct_replica(catalog)))
    via_ingress = asyncio.run(ingress(catalog, "cpu-dev").models()).model_dump()
    assert listed["object"] == "list"
    assert listed["data"] == via_ingress["data"][:2]
    assert [c["id"] for c in listed["data"]] == ["gemma-3-270m", "gemma-3-270m:tiny-lora"]

    dead = asyncio.run(GemmaLLMServer.models(direct_replica(catalog, "dead")))
    assert {c["metadata"]["health"]["status"] for c in dead["data"]} == {"down"}
    hung = asyncio.run(GemmaLLMServer.models(direct_replica(catalog, "hang")))
    assert hung["data"][0]["metadata"]["health"]["reason"] == "no replica answered within 0.1s"


def test_direct_streaming_needs_ray_told_and_one_variant(
    catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.app import DIRECT_STREAMING_ENV, build_app, missing_direct_streaming_env
    from serving.catalog import Profile
    from serving.config_export import serve_config_yaml

    for name in DIRECT_STREAMING_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="RAY_SERVE_ENABLE_HA_PROXY=1"):
        build_app(AppArgs(profile="cpu-text", catalog=catalog, models_home=HOME))
    assert missing_direct_streaming_env(DIRECT_STREAMING_ENV) == []
    assert missing_direct_streaming_env({}) == list(DIRECT_STREAMING_ENV)
    with pytest.raises(ValueError, match="exactly one variant"):
        Profile(
            target="cpu", variants=("gemma-3-270m", "tiny-random-gemma-4"), direct_streaming=True
        )
    header = serve_config_yaml(catalog, "cpu-text").splitlines()[1]
    assert header == (
        "# Direct streaming: every Ray pod needs RAY_SERVE_ENABLE_HA_PROXY=1 "
        "RAY_SERVE_LLM_ENABLE_DIRECT_STREAMING=1 RAY_SERVE_INGRESS_REQUEST_ROUTER_FORWARD_BODY=1 "
        "in its environment."
    )
    assert "Direct streaming" not in serve_config_yaml(catalog, "cpu-dev")
