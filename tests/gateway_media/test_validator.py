from __future__ import annotations

import base64
import copy
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from gateway.errors import InvalidMedia, InvalidRequest, PayloadTooLarge
from gateway.media import MediaSettings, MediaValidator, RemoteMediaFetcher, create_fetch_client
from tests.gateway_media.craft import image_bytes, png_header_claiming
from tests.gateway_media.http_server import IMAGE, ImageServer, image_server
from tests.gateway_media.test_fetch import LoopbackStandsInForPublic, TableResolver
from tests.support.media import png_data_url, wav_base64, wav_bytes

pytestmark = pytest.mark.anyio


def image_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, "detail": "low"}}


def audio_part(data: str, fmt: str = "wav") -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}


def stereo_wav_base64(seconds: float, rate: int) -> str:
    samples = np.zeros((int(seconds * rate), 2), dtype=np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV")
    return base64.b64encode(buffer.getvalue()).decode()


async def refused(validator: MediaValidator, messages: list[dict[str, Any]]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        await validator.prepare_messages(messages)
    return caught.value


async def test_media_parts_are_normalised_and_the_input_is_untouched():
    jpeg_url = "data:image/png;base64," + base64.b64encode(image_bytes("JPEG")).decode()
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                image_part(jpeg_url),
                audio_part(stereo_wav_base64(1.0, 44_100)),
            ],
        },
    ]
    original = copy.deepcopy(messages)
    prepared = await MediaValidator(MediaSettings()).prepare_messages(messages)
    assert messages == original
    assert prepared[0] == messages[0]
    text, image, audio = prepared[1]["content"]
    assert text == {"type": "text", "text": "What is this?"}
    assert image["image_url"]["detail"] == "low"
    assert image["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert audio["input_audio"]["format"] == "wav"
    info = sf.info(io.BytesIO(base64.b64decode(audio["input_audio"]["data"])))
    assert (info.samplerate, info.channels, info.frames) == (16_000, 1, 16_000)


async def test_png_data_url_passes_unchanged():
    messages = [{"role": "user", "content": [image_part(png_data_url())]}]
    prepared = await MediaValidator(MediaSettings()).prepare_messages(messages)
    assert prepared[0]["content"][0]["image_url"]["url"] == png_data_url()


async def test_counts_are_checked_before_any_decoding():
    bad = image_part("data:image/png;base64,@@@")
    messages = [{"role": "user", "content": [bad, bad]}, {"role": "user", "content": [bad]}]
    error = await refused(MediaValidator(MediaSettings(max_images_per_request=2)), messages)
    assert (error.code, error.param) == ("too_many_images", "messages")
    audio = [{"role": "user", "content": [audio_part("@@@")] * 3}]
    error = await refused(MediaValidator(MediaSettings(max_audio_parts=2)), audio)
    assert error.code == "too_many_audio_parts"


async def test_errors_name_the_part():
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "hello"},
        {"role": "user", "content": [{"type": "text", "text": "x"}, image_part("data:,oops")]},
        {"role": "user", "content": [audio_part("@@@")]},
    ]
    error = await refused(MediaValidator(MediaSettings()), messages)
    assert isinstance(error, InvalidMedia)
    assert (error.code, error.param) == ("invalid_image", "messages[1].content[1].image_url")
    del messages[1]
    error = await refused(MediaValidator(MediaSettings()), messages)
    assert (error.code, error.param) == ("invalid_audio", "messages[1].content[0].input_audio")


async def test_image_bomb_in_a_message_is_refused():
    bomb = "data:image/png;base64," + base64.b64encode(png_header_claiming(50_000, 50_000)).decode()
    error = await refused(
        MediaValidator(MediaSettings()), [{"role": "user", "content": [image_part(bomb)]}]
    )
    assert error.code == "image_too_many_pixels"


async def test_long_audio_in_a_message_is_refused():
    messages = [{"role": "user", "content": [audio_part(wav_base64(3.0))]}]
    error = await refused(MediaValidator(MediaSettings(max_audio_seconds=2)), messages)
    assert (error.code, error.param) == ("audio_too_long", "messages[0].content[0].input_audio")


@pytest.mark.parametrize(
    ("part", "code"),
    [
        (
            {"type": "audio_url", "audio_url": {"url": "http://x.test/a.wav"}},
            "unsupported_content_part",
        ),
        (
            {"type": "video_embeds", "video_embeds": "AAAA"},
            "unsupported_content_part",
        ),
        ({"type": "video_url", "video_url": {"url": "http://x.test/v.mp4"}}, "video_url_forbidden"),
        ({"type": "video_url", "video_url": {"url": "file:///v.mp4"}}, "video_url_forbidden"),
        ({"type": "video_url", "video_url": {}}, "invalid_video"),
        (image_part("file:///etc/passwd"), "image_url_forbidden"),
        (image_part("http://images.test/x.png"), "image_url_forbidden"),
        ({"type": "image_url", "image_url": {"url": 5}}, "invalid_image"),
        ({"type": "input_audio", "input_audio": "UklGRg=="}, "invalid_audio"),
    ],
)
async def test_unsafe_or_malformed_parts_are_refused(part: dict[str, Any], code: str):
    error = await refused(MediaValidator(MediaSettings()), [{"role": "user", "content": [part]}])
    assert error.code == code


@pytest.fixture
def server() -> Iterator[ImageServer]:
    with image_server() as running:
        yield running


async def test_remote_image_becomes_a_data_url(server):
    settings = MediaSettings(allow_remote_images=True, remote_image_hosts=["images.test"])
    async with create_fetch_client(settings) as client:
        fetcher = RemoteMediaFetcher(
            settings,
            client,
            resolver=TableResolver({"images.test": ["127.0.0.1"]}),
            policy=LoopbackStandsInForPublic(),
        )
        validator = MediaValidator(settings, client, fetcher=fetcher)
        url = server.url("/image.png", "images.test")
        prepared = await validator.prepare_messages(
            [{"role": "user", "content": [image_part(url)]}]
        )
    expected = "data:image/png;base64," + base64.b64encode(IMAGE).decode()
    assert prepared[0]["content"][0]["image_url"]["url"] == expected


async def test_remote_image_with_the_system_resolver_is_refused_for_loopback(server):
    settings = MediaSettings(allow_remote_images=True, remote_image_hosts=["localhost"])
    async with create_fetch_client(settings) as client:
        validator = MediaValidator(settings, client)
        url = server.url("/image.png", "localhost")
        error = await refused(validator, [{"role": "user", "content": [image_part(url)]}])
    assert error.code == "image_url_forbidden"
    assert server.hits == []


async def test_remote_images_are_refused_without_a_client():
    settings = MediaSettings(allow_remote_images=True, remote_image_hosts=["images.test"])
    part = image_part("https://images.test/x.png")
    error = await refused(MediaValidator(settings, None), [{"role": "user", "content": [part]}])
    assert error.code == "image_url_forbidden"


def test_upload_becomes_16k_mono_wav():
    wav = MediaValidator(MediaSettings()).prepare_upload(wav_bytes(1.0, rate=8_000), "clip.wav")
    info = sf.info(io.BytesIO(wav))
    assert (info.samplerate, info.channels, info.frames) == (16_000, 1, 16_000)


async def test_upload_in_a_worker_thread():
    wav = await MediaValidator(MediaSettings()).prepare_upload_async(wav_bytes(0.5, rate=22_050))
    assert sf.info(io.BytesIO(wav)).samplerate == 16_000


def test_upload_errors_name_the_file():
    validator = MediaValidator(MediaSettings(max_audio_bytes=1_000))
    with pytest.raises(InvalidMedia) as caught:
        validator.prepare_upload(b"definitely not audio", "notes.txt")
    assert (caught.value.code, caught.value.param) == ("invalid_audio", "file")
    assert "notes.txt" in caught.value.message
    with pytest.raises(PayloadTooLarge):
        validator.prepare_upload(wav_bytes(1.0), "clip.wav")
