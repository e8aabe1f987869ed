"""Settings for media checks: image and audio limits and the remote image policy.

Nested in the gateway's settings as ``media``, so every field is set from the
environment as ``GATEWAY_MEDIA__<FIELD>`` (for example ``GATEWAY_MEDIA__MAX_IMAGE_PIXELS``).
List fields take JSON (``'["PNG","JPEG"]'``) or a comma-separated string (``PNG,JPEG``).

Audio defaults follow Gemma 3n's audio encoder: it consumes 16 kHz mono audio in
30-second chunks, so one audio part is capped at 30 seconds and every accepted clip is
resampled to 16 kHz mono before it reaches the engine.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import soundfile as sf
from PIL import Image
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

MIB = 1024 * 1024

DEFAULT_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
DEFAULT_AUDIO_FORMATS = ("WAV", "MP3", "FLAC", "OGG")


# List fields are decoded here, not by pydantic-settings, so the environment may hold
# JSON or a comma-separated string.
NameList = Annotated[list[str], NoDecode]


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        if value.lstrip().startswith("["):
            return json.loads(value)
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class MediaSettings(BaseModel):
    """Limits on the images and audio a request may carry, and where images may come from."""

    image_formats: NameList = Field(
        default=list(DEFAULT_IMAGE_FORMATS),
        description="Image formats accepted, as Pillow names them (PNG, JPEG, WEBP, GIF). "
        "Multi-picture JPEGs (Pillow's MPO) count as JPEG.",
    )
    max_image_bytes: int = Field(
        default=10 * MIB,
        ge=1,
        description="Largest image accepted, in bytes of the image file (base64 decoded).",
    )
    max_image_pixels: int = Field(
        default=4096 * 4096,
        ge=1,
        description="Largest width*height accepted; checked from the header before decoding, "
        "which refuses decompression bombs.",
    )
    max_images_per_request: int = Field(
        default=8, ge=0, description="Most image parts one request may carry, over all messages."
    )
    allow_remote_images: bool = Field(
        default=False,
        description="Fetch http(s) image URLs (from remote_image_hosts only); off: only data: "
        "URLs are accepted.",
    )
    remote_image_hosts: NameList = Field(
        default_factory=list,
        description="Hosts remote images may come from: exact names ('images.example.com') or "
        "suffixes ('*.example.com' or '.example.com'). Private and metadata addresses are "
        "refused even when listed.",
    )
    remote_fetch_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds one remote image may take in all: DNS, connects, redirects, body.",
    )
    remote_max_bytes: int = Field(
        default=10 * MIB, ge=1, description="Largest remote image body read, in bytes."
    )
    remote_max_redirects: int = Field(
        default=3,
        ge=0,
        description="Redirects followed per remote image; each hop is checked again.",
    )
    audio_formats: NameList = Field(
        default=list(DEFAULT_AUDIO_FORMATS),
        description="Audio container formats accepted, as libsndfile names them "
        "(WAV, MP3, FLAC, OGG).",
    )
    max_audio_bytes: int = Field(
        default=25 * MIB,
        ge=1,
        description="Largest encoded audio part or upload accepted, in bytes.",
    )
    max_audio_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest audio part accepted, in seconds (Gemma 3n's audio encoder takes "
        "30-second chunks).",
    )
    max_audio_parts: int = Field(
        default=4,
        ge=0,
        description="Most input_audio parts one request may carry, over all messages.",
    )
    max_audio_channels: int = Field(
        default=8,
        ge=1,
        description="Most channels an audio part may have (they are mixed to mono).",
    )
    audio_sample_rate: int = Field(
        default=16_000, ge=1, description="Sample rate audio is resampled to for the engine, in Hz."
    )
    max_concurrent_decodes: int = Field(
        default=4,
        ge=1,
        description="Media decodes one gateway process runs at once in worker threads.",
    )

    @field_validator("image_formats", "audio_formats", mode="before")
    @classmethod
    def _upper_formats(cls, value: Any) -> Any:
        value = _split_list(value)
        if isinstance(value, list):
            return [str(item).strip().upper() for item in value]
        return value

    @field_validator("image_formats")
    @classmethod
    def _known_to_pillow(cls, value: list[str]) -> list[str]:
        Image.init()
        unknown = [name for name in value if name not in Image.OPEN]
        if unknown:
            raise ValueError(f"Pillow cannot open image formats {unknown}")
        return value

    @field_validator("audio_formats")
    @classmethod
    def _known_to_libsndfile(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in sf.available_formats()]
        if unknown:
            raise ValueError(f"libsndfile cannot read audio formats {unknown}")
        return value

    @field_validator("remote_image_hosts", mode="before")
    @classmethod
    def _lower_hosts(cls, value: Any) -> Any:
        value = _split_list(value)
        if isinstance(value, list):
            return [str(item).strip().lower().rstrip(".") for item in value]
        return value
