"""The gateway's settings, read from ``GATEWAY_*`` environment variables.

Nested groups use ``__``: ``GATEWAY_LIMITS__MAX_MESSAGES=64``,
``GATEWAY_QUOTA__ENABLED=false``,
``GATEWAY_MEDIA__MAX_IMAGE_PIXELS=1000000``, ``GATEWAY_ALIASES='{"gemma-3": "gemma-3-"}'``,
``GATEWAY_BATCHES__FILES_DIR=/data/batches``, ``GATEWAY_SERVER__HEADER_TIMEOUT=10``,
``GATEWAY_GUARD__MODEL=shieldgemma-2b``.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.batches.settings import BatchSettings
from gateway.media.settings import MediaSettings
from gateway.moderation.settings import GuardSettings
from gateway.quotas.settings import QuotaSettings
from gateway.server.settings import ServerSettings

UnknownFieldPolicy = Literal["reject", "drop", "forward"]

#: vLLM's documented extra sampling and chat parameters, accepted beside OpenAI's own.
VLLM_EXTRA_PARAMS: tuple[str, ...] = (
    "top_k",
    "min_p",
    "repetition_penalty",
    "length_penalty",
    "min_tokens",
    "stop_token_ids",
    "include_stop_str_in_output",
    "ignore_eos",
    "skip_special_tokens",
    "spaces_between_special_tokens",
    "truncate_prompt_tokens",
    "prompt_logprobs",
    "allowed_token_ids",
    "bad_words",
    "use_beam_search",
    "echo",
    "add_generation_prompt",
    "continue_final_message",
    "add_special_tokens",
    "chat_template_kwargs",
    "mm_processor_kwargs",
    "structured_outputs",
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
    "guided_decoding_backend",
    "return_tokens_as_token_ids",
    "documents",
)

#: Aliases a request may name instead of a model: each maps to a model id prefix.
DEFAULT_ALIASES: dict[str, str] = {
    "gemma-3": "gemma-3-",
    "gemma-3n": "gemma-3n-",
    "gemma-4": "gemma-4-",
}


class RequestLimits(BaseModel):
    """What one request may ask for; every refusal is an OpenAI error before any upstream call.

    ``unknown_fields`` decides what happens to body fields that are neither OpenAI's nor in
    ``extra_params`` (default: vLLM's documented extra sampling parameters): ``reject``
    answers 400 naming the field, ``drop`` removes it, ``forward`` passes it on.

    Bodies are held in memory while they arrive and while their request runs; the bytes
    held per process are capped in all (503) and per client address for requests without
    an authenticated key (429), both with ``Retry-After``. A body must arrive within
    ``body_timeout`` and never pause longer than ``body_stall_timeout`` (408).
    """

    max_body_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, description="Largest request body (413 above it)."
    )
    body_bytes_in_flight: int = Field(
        default=128 * 1024 * 1024,
        ge=1024,
        description="Request-body bytes one process holds at once, all requests together "
        "(503 with Retry-After past it).",
    )
    peer_body_bytes_in_flight: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Request-body bytes one client address holds at once while its requests "
        "carry no authenticated key (every request when keys are off; 429 past it).",
    )
    body_timeout: float = Field(
        default=120.0, gt=0, description="Seconds a request body may take to arrive in full."
    )
    body_stall_timeout: float = Field(
        default=15.0,
        gt=0,
        description="Seconds a request body may pause between two of its chunks.",
    )
    max_messages: int = Field(default=256, ge=1, description="Most messages in one chat request.")
    max_tokens: int = Field(default=8192, ge=1, description="Largest max_tokens a request may set.")
    max_n: int = Field(default=4, ge=1, description="Largest n (choices) a request may set.")
    max_embedding_inputs: int = Field(
        default=2048, ge=1, description="Most inputs in one embeddings request (OpenAI's cap)."
    )
    max_moderation_inputs: int = Field(
        default=32,
        ge=1,
        description="Most texts in one moderations request (each is judged once per category).",
    )
    unknown_fields: UnknownFieldPolicy = Field(
        default="reject", description="reject | drop | forward body fields not otherwise known."
    )
    extra_params: list[str] = Field(
        default_factory=lambda: list(VLLM_EXTRA_PARAMS),
        description="Non-OpenAI body fields accepted and forwarded (vLLM sampling params).",
    )

    @model_validator(mode="after")
    def _budgets_hold_a_body(self) -> Self:
        smallest = min(self.body_bytes_in_flight, self.peer_body_bytes_in_flight)
        if smallest < self.max_body_bytes:
            raise ValueError(
                f"body_bytes_in_flight and peer_body_bytes_in_flight ({smallest}) must hold "
                f"at least one body of max_body_bytes ({self.max_body_bytes})"
            )
        return self


class FairShareSettings(BaseModel):
    """How this replica shares each model's slots when they are all taken (``gateway.fair_share``).

    A model's slots are its ``engine_slots`` from ``/v1/models`` (``max_num_seqs`` times its
    most replicas) divided by ``gateway_replicas`` and rounded up, or ``slots[model]``.
    """

    enabled: bool = Field(default=True, description="Hold requests past a model's slots here.")
    max_wait: float = Field(
        default=60.0, gt=0, description="Seconds a request waits for a slot (then 503)."
    )
    batch_fraction: float = Field(
        default=0.75,
        gt=0,
        le=1,
        description="Most of a model's slots batch-class requests hold at once.",
    )
    gateway_replicas: int = Field(
        default=1, ge=1, description="Gateway replicas sharing the engines' slots."
    )
    slots: dict[str, int] = Field(
        default_factory=dict, description="Slots per model id, instead of the published ones."
    )


class TelemetrySettings(BaseModel):
    """What traces may record beyond timings, ids and counts (exporting is set by ``OTEL_*``).

    Prompts, completions, media and API keys are never recorded. ``record_content_hash``
    adds the SHA-256 of the request's prompt (or messages) to its span, so identical
    prompts can be matched without storing them.
    """

    record_content_hash: bool = Field(
        default=False, description="Record a SHA-256 of the prompt content on request spans."
    )


class GatewaySettings(BaseSettings):
    """Everything one gateway process needs; built once and injected into ``create_app``."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_nested_delimiter="__", extra="ignore"
    )

    host: str = Field(default="127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port the gateway listens on.")
    upstream_url: str = Field(
        default="http://127.0.0.1:8000", description="Root URL of the serving application (no /v1)."
    )
    upstream_connect_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to connect upstream."
    )
    upstream_read_timeout: float = Field(
        default=600.0,
        gt=0,
        description="Seconds to wait for an upstream answer or the next stream chunk.",
    )
    upstream_first_byte_timeout: float = Field(
        default=600.0,
        gt=0,
        description="Seconds a non-streamed request waits for its answer to begin; after it, "
        "the next candidate is tried or the client gets a 503.",
    )
    upstream_stream_first_byte_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a streamed request waits for its first event (Serve sends the "
        "head with the first token); after it, as for upstream_first_byte_timeout.",
    )
    upstream_retry_after: int = Field(
        default=5,
        ge=1,
        description="Retry-After seconds of a 503 when no variant can take a request.",
    )
    upstream_pool_size: int = Field(
        default=256, ge=1, description="Most open connections to the serving application."
    )
    model_refresh_interval: float = Field(
        default=2.0,
        gt=0,
        description="Seconds between polls of the upstream's /v1/models (its models and "
        "their engines' health); a failed upstream answer polls at once.",
    )
    unhealthy_cooldown: float = Field(
        default=15.0,
        ge=0,
        description="Seconds a model that failed (503, refused) is skipped by routing.",
    )
    ready_capabilities: list[str] = Field(
        default_factory=lambda: ["text"],
        description="Capabilities an up variant must offer for /readyz to answer 200 "
        "(e.g. text,vision,audio); /readyz reports every capability either way.",
    )
    fallback_named_models: bool = Field(
        default=False,
        description="Also fall back to another model when the request names one explicitly "
        "(aliases and 'auto' always fall back).",
    )
    aliases: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ALIASES),
        description="Alias -> model id prefix; 'auto' (every model) is always defined.",
    )
    limits: RequestLimits = Field(default_factory=lambda: RequestLimits.model_validate({}))
    server: ServerSettings = Field(default_factory=lambda: ServerSettings.model_validate({}))
    quota: QuotaSettings = Field(default_factory=lambda: QuotaSettings.model_validate({}))
    media: MediaSettings = Field(default_factory=lambda: MediaSettings.model_validate({}))
    batches: BatchSettings = Field(default_factory=lambda: BatchSettings.model_validate({}))
    fair_share: FairShareSettings = Field(
        default_factory=lambda: FairShareSettings.model_validate({})
    )
    telemetry: TelemetrySettings = Field(
        default_factory=lambda: TelemetrySettings.model_validate({})
    )
    guard: GuardSettings = Field(default_factory=lambda: GuardSettings.model_validate({}))
    admin_key: SecretStr | None = Field(
        default=None,
        description="Bearer secret of the admin API (admin routes are off without it).",
    )
