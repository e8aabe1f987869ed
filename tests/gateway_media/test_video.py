"""Video checks on real files written by OpenCV, and on files cut or edited to lie."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from gateway.errors import InvalidMedia, PayloadTooLarge
from gateway.media.containers import is_whole, sniff
from gateway.media.settings import MediaSettings
from gateway.media.video import validate_video_bytes, video_from_data_url
from tests.gateway_media.craft import faststart, mp4_claiming_frames, webm_declaring
from tests.support.media import png_bytes, video_bytes, video_data_url, wav_bytes

PARAM = "messages[0].content[0].video_url"


def refused(data: bytes, settings: MediaSettings | None = None) -> InvalidMedia:
    with pytest.raises(InvalidMedia) as caught:
        validate_video_bytes(data, settings or MediaSettings(), param=PARAM)
    assert caught.value.param == PARAM
    return caught.value


def test_a_real_mp4_passes_with_its_bytes_unchanged(tmp_path: Path) -> None:
    data = video_bytes(tmp_path, width=64, height=48, frames=30, fps=10)
    video = validate_video_bytes(data, MediaSettings(), param=PARAM)
    assert video.data == data
    assert (video.format, video.mime_type) == ("MP4", "video/mp4")
    assert (video.width, video.height, video.frames, video.fps) == (64, 48, 30, 10.0)
    assert video.duration_seconds == 3.0
    assert video.data_url() == video_data_url(data)


def test_faststart_mp4_and_webm_pass(tmp_path: Path) -> None:
    assert validate_video_bytes(faststart(video_bytes(tmp_path)), MediaSettings(), param=None)
    webm = video_bytes(tmp_path, fourcc="VP80", suffix=".webm")
    video = validate_video_bytes(webm, MediaSettings(), param=None)
    assert (video.format, video.mime_type, video.frames) == ("WEBM", "video/webm", 10)


def test_a_data_url_is_decoded_and_checked(tmp_path: Path) -> None:
    data = video_bytes(tmp_path)
    assert video_from_data_url(video_data_url(data), MediaSettings(), param=PARAM).data == data
    with pytest.raises(InvalidMedia) as caught:
        video_from_data_url(video_data_url(data, "image/png"), MediaSettings(), param=PARAM)
    assert caught.value.code == "invalid_video"


@pytest.mark.parametrize(
    "data",
    [b"plain text, not frames" * 20, png_bytes(), wav_bytes(0.5), b"\x00\x00\x00\x18ftypisom"],
    ids=["text", "png", "wav", "ftyp-only"],
)
def test_non_video_bytes_are_refused(data: bytes) -> None:
    assert refused(data).code == "invalid_video"


def test_a_container_outside_the_list_is_refused(tmp_path: Path) -> None:
    avi = video_bytes(tmp_path, fourcc="MJPG", suffix=".avi")
    assert refused(avi).code == "unsupported_video_format"
    assert validate_video_bytes(avi, MediaSettings(video_formats=["AVI"]), param=None).frames == 10


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("layout", ["moov-last", "faststart"])
def test_a_video_cut_short_is_refused(tmp_path: Path, layout: str, fraction: float) -> None:
    data = video_bytes(tmp_path, frames=30)
    if layout == "faststart":
        data = faststart(data)
    error = refused(data[: int(len(data) * fraction)])
    assert error.code == "invalid_video"
    assert "incomplete" in error.message


def test_a_webm_cut_short_is_refused(tmp_path: Path) -> None:
    webm = video_bytes(tmp_path, frames=30, fourcc="VP80", suffix=".webm")
    container = sniff(webm)
    assert container is not None
    assert is_whole(webm, container)
    assert not is_whole(webm[:-10], container)
    assert refused(webm[: len(webm) // 2]).code == "invalid_video"


def test_a_cut_that_keeps_the_framing_is_caught_by_the_packet_count(tmp_path: Path) -> None:
    data = faststart(video_bytes(tmp_path, frames=30))
    # Shrink mdat to what is left, so the top-level sizes fit the shorter file.
    cut = bytearray(data[: len(data) // 2])
    mdat = cut.index(b"mdat") - 4
    cut[mdat : mdat + 4] = (len(cut) - mdat).to_bytes(4, "big")
    error = refused(bytes(cut))
    assert error.code == "invalid_video"
    assert "its header lists 30 frames" in error.message


def test_too_long_is_refused(tmp_path: Path) -> None:
    data = video_bytes(tmp_path, frames=12, fps=2)  # 6 s
    assert refused(data, MediaSettings(max_video_seconds=5)).code == "video_too_long"
    assert validate_video_bytes(data, MediaSettings(max_video_seconds=6), param=None)


def test_too_many_frames_is_refused(tmp_path: Path) -> None:
    data = video_bytes(tmp_path, frames=40, fps=40)
    assert refused(data, MediaSettings(max_video_frames=39)).code == "video_too_many_frames"


def test_frames_over_the_pixel_limit_are_refused(tmp_path: Path) -> None:
    data = video_bytes(tmp_path, width=128, height=96)
    error = refused(data, MediaSettings(max_video_frame_pixels=128 * 96 - 1))
    assert error.code == "video_too_many_pixels"
    assert "128x96" in error.message


def test_a_small_file_declaring_a_huge_canvas_is_refused_from_its_header(tmp_path: Path) -> None:
    webm = video_bytes(tmp_path, width=320, height=256, fourcc="VP80", suffix=".webm")
    # 13000x13000 passes vLLM's own frame check (VLLM_MAX_IMAGE_PIXELS, 179 M): OpenCV would
    # scale every decoded frame up to it, 507 MB each.
    bomb = webm_declaring(webm, 13_000, 13_000)
    assert len(bomb) < 50_000
    started = time.perf_counter()
    error = refused(bomb)
    assert error.code == "video_too_many_pixels"
    assert "13000x13000" in error.message
    assert time.perf_counter() - started < 1.0


def test_a_tiny_file_declaring_a_huge_frame_count_is_refused_before_decoding(
    tmp_path: Path,
) -> None:
    data = mp4_claiming_frames(video_bytes(tmp_path, frames=10), 100_000)
    assert len(data) < 10_000
    started = time.perf_counter()
    error = refused(data)
    assert error.code == "video_too_many_frames"  # not "incomplete": no packet was read
    assert "100000 frames" in error.message
    assert time.perf_counter() - started < 1.0


def test_bytes_over_the_limit_are_refused_before_anything_else(tmp_path: Path) -> None:
    data = video_bytes(tmp_path)
    with pytest.raises(PayloadTooLarge) as caught:
        validate_video_bytes(data, MediaSettings(max_video_bytes=len(data) - 1), param=PARAM)
    assert caught.value.code == "video_too_large"
    encoded = "data:video/mp4;base64," + base64.b64encode(b"x" * 2_000).decode()
    with pytest.raises(PayloadTooLarge):
        video_from_data_url(encoded, MediaSettings(max_video_bytes=1_000), param=PARAM)


def test_unknown_containers_are_refused_in_settings() -> None:
    with pytest.raises(ValueError, match="unknown video containers"):
        MediaSettings(video_formats=["MP4", "FLV"])
    assert MediaSettings.model_validate({"video_formats": "mp4, webm"}).video_formats == [
        "MP4",
        "WEBM",
    ]
