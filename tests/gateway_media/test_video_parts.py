"""``video_url`` parts through the validator: data URLs, counts, remote videos."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import InvalidMedia
from gateway.media import MediaSettings, MediaValidator, RemoteMediaFetcher, create_fetch_client
from tests.gateway_media.http_server import ImageServer, image_server
from tests.gateway_media.test_fetch import LoopbackStandsInForPublic, TableResolver
from tests.support.media import png_data_url, video_bytes, video_data_url

pytestmark = pytest.mark.anyio


def video_part(url: str) -> dict[str, Any]:
    return {"type": "video_url", "video_url": {"url": url}}


def user(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "What happens?"}, *parts]}]


async def refused(validator: MediaValidator, messages: list[dict[str, Any]]) -> InvalidMedia:
    with pytest.raises(InvalidMedia) as caught:
        await validator.prepare_messages(messages)
    return caught.value


async def test_a_video_passes_as_sent_under_its_real_media_type(tmp_path: Path) -> None:
    data = video_bytes(tmp_path)
    part = {"type": "video_url", "video_url": {"url": video_data_url(data, "video/quicktime")}}
    prepared = await MediaValidator(MediaSettings()).prepare_messages(user(part))
    text, video = prepared[0]["content"]
    assert text["type"] == "text"
    assert video == {"type": "video_url", "video_url": {"url": video_data_url(data)}}


async def test_a_bare_string_url_is_accepted_as_vllm_does(tmp_path: Path) -> None:
    data = video_bytes(tmp_path)
    part = {"type": "video_url", "video_url": video_data_url(data)}
    prepared = await MediaValidator(MediaSettings()).prepare_messages(user(part))
    assert prepared[0]["content"][1]["video_url"] == {"url": video_data_url(data)}


async def test_the_video_count_is_checked_before_any_decoding() -> None:
    bad = video_part("data:video/mp4;base64,@@@")
    error = await refused(MediaValidator(MediaSettings()), user(bad, bad))
    assert (error.code, error.param) == ("too_many_videos", "messages")


async def test_errors_name_the_video_part(tmp_path: Path) -> None:
    messages = user(video_part(png_data_url()))
    error = await refused(MediaValidator(MediaSettings()), messages)
    assert (error.code, error.param) == ("invalid_video", "messages[0].content[1].video_url")
    messages = user(video_part(video_data_url(video_bytes(tmp_path, frames=12, fps=2))))
    error = await refused(MediaValidator(MediaSettings(max_video_seconds=5)), messages)
    assert error.code == "video_too_long"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ImageServer]:
    with image_server() as running:
        running.files["/clip.mp4"] = (video_bytes(tmp_path), "video/mp4")
        yield running


def remote_settings(**overrides: object) -> MediaSettings:
    values: dict[str, object] = {
        "allow_remote_images": True,
        "allow_remote_videos": True,
        "remote_image_hosts": ["media.test"],
    }
    return MediaSettings.model_validate({**values, **overrides})


async def prepare_remote(server: ImageServer, settings: MediaSettings, path: str) -> Any:
    async with create_fetch_client(settings) as client:
        fetcher = RemoteMediaFetcher(
            settings,
            client,
            resolver=TableResolver({"media.test": ["127.0.0.1"]}),
            policy=LoopbackStandsInForPublic(),
        )
        validator = MediaValidator(settings, client, fetcher=fetcher)
        return await validator.prepare_messages(user(video_part(server.url(path, "media.test"))))


async def test_a_remote_video_is_fetched_checked_and_sent_as_a_data_url(server) -> None:
    prepared = await prepare_remote(server, remote_settings(), "/clip.mp4")
    url = prepared[0]["content"][1]["video_url"]["url"]
    assert url == video_data_url(server.files["/clip.mp4"][0])
    assert server.accepts == ["video/*"]


async def test_remote_videos_need_their_own_switch(server) -> None:
    with pytest.raises(InvalidMedia) as caught:
        await prepare_remote(server, remote_settings(allow_remote_videos=False), "/clip.mp4")
    assert caught.value.code == "video_url_forbidden"
    assert server.hits == []


async def test_a_remote_video_is_capped_at_the_video_byte_limit(server) -> None:
    size = len(server.files["/clip.mp4"][0])
    # The image cap does not apply to videos; the video cap does.
    prepared = await prepare_remote(server, remote_settings(remote_max_bytes=10), "/clip.mp4")
    assert prepared[0]["content"][1]["video_url"]["url"].startswith("data:video/mp4;base64,")
    with pytest.raises(InvalidMedia) as caught:
        await prepare_remote(server, remote_settings(max_video_bytes=size - 1), "/clip.mp4")
    assert caught.value.code == "video_too_large"


async def test_a_remote_body_that_is_no_video_is_refused(server) -> None:
    server.files["/fake.mp4"] = (b"<html>not a video</html>", "video/mp4")
    with pytest.raises(InvalidMedia) as caught:
        await prepare_remote(server, remote_settings(), "/fake.mp4")
    assert caught.value.code == "invalid_video"


async def test_remote_video_urls_follow_the_address_rules(server) -> None:
    settings = remote_settings(remote_image_hosts=["localhost"])
    async with create_fetch_client(settings) as client:
        validator = MediaValidator(settings, client)
        url = server.url("/clip.mp4", "localhost")
        error = await refused(validator, user(video_part(url)))
    assert error.code == "video_url_forbidden"
    assert "does not resolve to a public address" in error.message
    assert "127.0.0.1" not in error.message
    assert server.hits == []
