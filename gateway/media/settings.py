"""Settings for media checks: image, audio and video limits and the remote media policy.

Nested in the gateway's settings as ``media``, so every field is set from the
environment as ``GATEWAY_MEDIA__<FIELD>`` (for example ``GATEWAY_MEDIA__MAX_IMAGE_PIXELS``).
List fields take JSON (``'["PNG","JPEG"]'``) or a comma-separated string (``PNG,JPEG``).

Audio defaults follow Gemma 3n's audio encoder: it consumes 16 kHz mono audio in
30-second chunks, so one audio part is capped at 30 seconds and every accepted clip is
resampled to 16 kHz mono before it reaches the engine.

Video defaults follow Gemma 4, which has no video tower: vLLM samples at most 32 frames of
a video and feeds each one to the vision tower at 70 soft tokens (plus about 8 tokens of
timestamp and markers), so a video costs about 2,500 prompt tokens whatever its length.
The limits bound the work of reading it: vLLM's video loader decodes every frame up to
the last one it samples, so ``max_video_frames`` and ``max_video_frame_pixels`` are what
one video can cost the engine. Remote videos are off by default; when on, they follow the
remote image policy (hosts, address checks, redirects, timeout) with ``max_video_bytes``.

Decode memory is counted from each part's header before anything is decoded: one image
may take ``max_image_decode_bytes`` (frames x canvas), a video frame and an audio clip are
bounded by their size and duration limits, and one process holds at most
``max_decode_memory_bytes`` of decodes at once (``gateway.media.budget``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import soundfile as sf
from PIL import Image
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import NoDecode

from gateway.media.containers import CONTAINERS

MIB = 1024 * 1024

DEFAULT_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
DEFAULT_AUDIO_FORMATS = ("WAV", "MP3", "FLAC", "OGG")
DEFAULT_VIDEO_FORMATS = ("MP4", "MOV", "WEBM")
#: Prompt tokens one video counts for: Gemma 4's 32 sampled frames x (70 + 8) tokens.
DEFAULT_VIDEO_TOKENS = 2_500
#: A still WebP of 4096 x 4096: Pillow's RGBA canvas and the two libwebp keeps (measured).
DEFAULT_IMAGE_DECODE_BYTES = 3 * 4096 * 4096 * 4


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
    """Limits on the images, audio and video a request may carry, and where media may come from."""

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
        description="Hosts remote images and videos may come from: exact names "
        "('images.example.com') or suffixes ('*.example.com' or '.example.com'). Private and "
        "metadata addresses are refused even when listed.",
    )
    remote_fetch_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds one remote image or video may take in all: DNS, connects, "
        "redirects, body.",
    )
    remote_max_bytes: int = Field(
        default=10 * MIB, ge=1, description="Largest remote image body read, in bytes."
    )
    remote_max_redirects: int = Field(
        default=3,
        ge=0,
        description="Redirects followed per remote image or video; each hop is checked again.",
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
    video_formats: NameList = Field(
        default=list(DEFAULT_VIDEO_FORMATS),
        description="Video containers accepted, recognised from the file's first bytes: "
        "MP4, MOV (QuickTime), WEBM, MKV (Matroska), AVI. Any codec FFmpeg decodes inside.",
    )
    max_video_bytes: int = Field(
        default=20 * MIB,
        ge=1,
        description="Largest video accepted, in bytes of the file (base64 decoded, or the "
        "remote body). Inline videos are also bounded by limits.max_body_bytes.",
    )
    max_video_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Longest video accepted, in seconds (frames / frame rate, from the header "
        "and again from the packets).",
    )
    max_video_frames: int = Field(
        default=3_600,
        ge=1,
        description="Most frames a video may have (60 s at 60 fps); checked from the header "
        "before decoding, then by counting packets.",
    )
    max_video_frame_pixels: int = Field(
        default=1920 * 1088,
        ge=1,
        description="Largest frame width*height accepted (1080p), checked from the header "
        "before any frame is decoded.",
    )
    max_videos_per_request: int = Field(
        default=1,
        ge=0,
        description="Most video_url parts one request may carry, over all messages (Gemma 4 "
        "engines take one video per prompt).",
    )
    allow_remote_videos: bool = Field(
        default=False,
        description="Fetch http(s) video URLs under the remote image policy "
        "(remote_image_hosts, address checks, redirects, remote_fetch_timeout), up to "
        "max_video_bytes; off: only data: URLs are accepted.",
    )
    video_tokens: int = Field(
        default=DEFAULT_VIDEO_TOKENS,
        ge=1,
        description="Prompt tokens one video counts for when routing (context fit) and "
        "reserving quota; Gemma 4 samples up to 32 frames at about 78 tokens each.",
    )
    max_concurrent_decodes: int = Field(
        default=4,
        ge=1,
        description="Media decodes one gateway process runs at once in worker threads.",
    )
    max_image_decode_bytes: int = Field(
        default=DEFAULT_IMAGE_DECODE_BYTES,
        ge=1,
        description="Most memory decoding one image may take, counted from its header before "
        "any pixel is decoded: every frame's canvas at 4 bytes a pixel (a still L or P image "
        "at 1), plus the two canvases libwebp keeps for a WebP. The default (192 MiB) fits a "
        "still WebP of max_image_pixels; an animation on a 4096x4096 canvas exceeds it.",
    )
    max_decode_memory_bytes: int = Field(
        default=384 * MIB,
        ge=1,
        description="Decode memory the gateway's requests hold at once, in one process (each "
        "MediaValidator has its own; a batch job's planning builds another): each image, audio "
        "or video part reserves its estimate before it is decoded and returns it after; a part "
        "that does not fit waits in line (one larger than this runs alone).",
    )
    decode_memory_wait: float = Field(
        default=10.0,
        ge=0,
        description="Seconds a media part waits in line for decode memory; then the request is "
        "refused with 503 media_decode_busy and Retry-After.",
    )

    @field_validator("image_formats", "audio_formats", "video_formats", mode="before")
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

    @field_validator("video_formats")
    @classmethod
    def _known_containers(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in CONTAINERS]
        if unknown:
            raise ValueError(f"unknown video containers {unknown} (known: {sorted(CONTAINERS)})")
        return value

    @field_validator("remote_image_hosts", mode="before")
    @classmethod
    def _lower_hosts(cls, value: Any) -> Any:
        value = _split_list(value)
        if isinstance(value, list):
            return [str(item).strip().lower().rstrip(".") for item in value]
        return value
