"""What decoding a part takes, counted from its header, and the refusals before allocation."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import InvalidMedia
from gateway.media import MediaSettings, MediaValidator
from gateway.media.audio import open_audio
from gateway.media.images import open_image, validate_image_bytes
from gateway.media.video import open_video
from gateway.metrics import GatewayMetrics
from tests.gateway_media.craft import animated_webp, image_bytes
from tests.support.media import png_bytes, video_bytes, wav_bytes
from tests.support.peak_memory import peak_growth

PARAM = "messages[0].content[0].image_url"
MIB = 1024 * 1024
CANVAS = 4096 * 4096


def decode_bytes(data: bytes, settings: MediaSettings | None = None) -> int:
    opened = open_image(data, settings or MediaSettings(), param=PARAM)
    try:
        return opened.decode_bytes
    finally:
        opened.close()


def image_message(data: bytes, mime: str) -> list[dict[str, Any]]:
    url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    part = {"type": "image_url", "image_url": {"url": url}}
    return [{"role": "user", "content": [part]}]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (png_bytes(64, 48), 64 * 48 * 4),  # RGB is stored at 4 bytes a pixel
        (image_bytes("PNG", 64, 48, mode="L"), 64 * 48),
        (image_bytes("GIF", 64, 48), 64 * 48),  # P
        (image_bytes("WEBP", 64, 48), 64 * 48 * 4 * 3),  # with libwebp's two canvases
        (animated_webp(100, 80, 5), 100 * 80 * 4 * (5 + 2)),  # every frame counts
    ],
    ids=["png-rgb", "png-l", "gif-p", "webp-still", "webp-5-frames"],
)
def test_decode_bytes_count_every_frame_from_the_header(data: bytes, expected: int):
    assert decode_bytes(data) == expected


def test_a_still_image_at_the_pixel_limit_fits_the_default_budget():
    assert decode_bytes(animated_webp(4096, 4096, 1)) == 3 * CANVAS * 4 <= 192 * MIB


def test_the_image_budget_is_configurable():
    settings = MediaSettings(max_image_decode_bytes=64 * 48 * 4 - 1)
    with pytest.raises(InvalidMedia) as caught:
        validate_image_bytes(png_bytes(64, 48), settings, param=PARAM)
    assert caught.value.code == "image_too_large_to_decode"
    assert validate_image_bytes(png_bytes(64, 47), settings, param=PARAM).height == 47


@pytest.mark.anyio
async def test_an_animated_canvas_bomb_is_refused_before_its_frames_are_allocated():
    bomb = animated_webp(4096, 4096, 32)
    assert len(bomb) < 2_000
    metrics = GatewayMetrics()
    validator = MediaValidator(MediaSettings(), metrics=metrics)
    with peak_growth() as peak, pytest.raises(InvalidMedia) as caught:
        await validator.prepare_messages(image_message(bomb, "image/webp"))
    error = caught.value
    assert (error.code, error.param, error.status_code) == ("image_too_large_to_decode", PARAM, 400)
    assert "32 frames of 4096x4096" in error.message
    assert peak.bytes < 16 * MIB
    assert (
        metrics.registry.get_sample_value("gateway_media_decodes_total", {"kind": "image"}) is None
    )
    assert validator.budget.reserved == 0


def test_the_same_bomb_allowed_through_does_allocate_its_canvases():
    # The measurement above is sensitive: lifting the limit lets the decode take at least
    # one 4096² RGBA canvas (64 MiB; 128 to 256 MiB measured, as libwebp keeps more).
    bomb = animated_webp(4096, 4096, 2)
    settings = MediaSettings(max_image_decode_bytes=1024 * MIB)
    validate_image_bytes(bomb, settings, param=None)  # libwebp loaded, first use paid
    with peak_growth() as peak:
        assert validate_image_bytes(bomb, settings, param=None).width == 4096
    assert peak.bytes > 64 * MIB


def test_audio_decode_bytes_follow_the_duration_limit_not_the_header():
    settings = MediaSettings()
    opened = open_audio(wav_bytes(0.5, rate=48_000), settings, param="file")
    try:
        at_most = 30 * 48_000 * 4 * 2 + 30 * 16_000 * 10 + 65_536 * 4
        assert opened.decode_bytes == at_most
    finally:
        opened.close()


def test_a_video_reserves_one_frame_at_8_bytes_a_pixel(tmp_path: Path):
    opened = open_video(video_bytes(tmp_path, width=64, height=48), MediaSettings(), param=None)
    assert opened.decode_bytes == 64 * 48 * 8
    assert opened.decode().frames == 10
