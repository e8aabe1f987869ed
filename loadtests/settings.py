"""Load test settings, read from ``GEMMA_LOADTEST_*`` environment variables.

``GEMMA_LOADTEST_KEYS=gsk-a,gsk-b`` spreads users over several API keys,
``GEMMA_LOADTEST_MIX=stream=4,chat=1,tools=1,image=1,audio=1`` weighs the traffic,
``GEMMA_LOADTEST_SHAPE=ramp|step|spike|soak`` picks a load shape (none: locust's
``-u``/``-r``/``-t`` drive the run). The mix, keys, model and token budget can also be
given on locust's command line (``--mix``, ``--keys``, ``--model``, ``--max-tokens``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ShapeName = Literal["none", "ramp", "step", "spike", "soak"]

DEFAULT_MIX = "stream=4,chat=2,tools=1,image=1,audio=1"
DEFAULT_PROMPTS = Path(__file__).resolve().parent / "prompts.jsonl"


class LoadtestSettings(BaseSettings):
    """What one locust process needs to know before its users start."""

    model_config = SettingsConfigDict(env_prefix="GEMMA_LOADTEST_", extra="ignore")

    keys: str = Field(default="", description="Comma-separated API keys, spread over users.")
    mix: str = Field(default=DEFAULT_MIX, description="capability=weight pairs, comma-separated.")
    model: str = Field(default="auto", description="Model id or alias sent in every request.")
    max_tokens: int = Field(default=64, ge=1, description="max_tokens of every request.")
    wait_min: float = Field(default=0.1, ge=0, description="Least think time between requests.")
    wait_max: float = Field(default=1.0, ge=0, description="Most think time between requests.")
    timeout: float = Field(default=300.0, gt=0, description="Seconds one request may take.")
    prompts: Path = Field(default=DEFAULT_PROMPTS, description="JSONL prompt set.")
    shape: ShapeName = Field(default="none", description="Load shape class to run.")
    users: int = Field(default=10, ge=1, description="Peak users of a shape.")
    spawn_rate: float = Field(default=2.0, gt=0, description="Users started per second.")
    ramp_seconds: float = Field(default=60.0, gt=0, description="ramp/soak: time to peak.")
    hold_seconds: float = Field(default=120.0, ge=0, description="ramp: time at peak.")
    step_users: int = Field(default=2, ge=1, description="step: users added per step.")
    step_seconds: float = Field(default=30.0, gt=0, description="step: length of a step.")
    spike_users: int = Field(default=40, ge=1, description="spike: users during the spike.")
    spike_seconds: float = Field(default=20.0, gt=0, description="spike: its length.")
    base_seconds: float = Field(default=60.0, gt=0, description="spike: time before and after.")
    soak_seconds: float = Field(default=600.0, gt=0, description="soak: whole run length.")

    def key_list(self) -> list[str]:
        return split_keys(self.keys)


def split_keys(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]
