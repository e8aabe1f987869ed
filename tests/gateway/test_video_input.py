"""Videos through the running gateway: good ones reach a video model as sent, bad ones are
refused with an OpenAI error body, and the gateway keeps serving after each of them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway_media.craft import faststart, mp4_claiming_frames, webm_declaring
from tests.support.media import video_bytes, video_data_url
from tests.support.stub_upstream import GEMMA_4_MODEL, TEXT_MODEL, StubUpstream, gemma_4_cards

USER = {"role": "user", "content": "hi"}


@pytest.fixture
def stub() -> Iterator[StubUpstream]:
    with StubUpstream(gemma_4_cards()) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder: Path = tmp_path_factory.mktemp("clips")
    mp4 = video_bytes(folder, frames=30)
    webm = video_bytes(folder, width=320, height=256, fourcc="VP80", suffix=".webm")
    return {
        "good": mp4,
        "not_a_video": b"just some text pretending to be a movie " * 10,
        "truncated_mp4": mp4[: len(mp4) // 2],
        "truncated_faststart_mp4": faststart(mp4)[: len(mp4) // 2],
        "too_long": video_bytes(folder, frames=61, fps=1),
        "huge_frame_count": mp4_claiming_frames(mp4, 100_000),
        "huge_canvas": webm_declaring(webm, 13_000, 13_000),
    }


def video_chat(*urls: str, model: str = "auto") -> dict[str, Any]:
    parts = [{"type": "video_url", "video_url": {"url": url}} for url in urls]
    content = [{"type": "text", "text": "What happens in this clip?"}, *parts]
    return {"model": model, "messages": [{"role": "user", "content": content}]}


def test_a_good_video_reaches_a_video_model_as_sent(
    http: httpx.Client, stub: StubUpstream, clips: dict[str, bytes]
) -> None:
    url = video_data_url(clips["good"])
    response = http.post("/v1/chat/completions", json=video_chat(url))
    assert response.status_code == 200, response.text
    assert response.headers["x-gemma-model"] == GEMMA_4_MODEL
    _, sent = stub.requests[-1]
    assert sent["messages"][0]["content"][1] == {"type": "video_url", "video_url": {"url": url}}


BAD = [
    ("not_a_video", "invalid_video"),
    ("truncated_mp4", "invalid_video"),
    ("truncated_faststart_mp4", "invalid_video"),
    ("too_long", "video_too_long"),
    ("huge_frame_count", "video_too_many_frames"),
    ("huge_canvas", "video_too_many_pixels"),
]


@pytest.mark.parametrize(("clip", "code"), BAD, ids=[case for case, _ in BAD])
def test_a_bad_video_is_refused_and_the_gateway_keeps_serving(
    http: httpx.Client, stub: StubUpstream, clips: dict[str, bytes], clip: str, code: str
) -> None:
    sent_before = len(stub.requests)
    response = http.post("/v1/chat/completions", json=video_chat(video_data_url(clips[clip])))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("invalid_request_error", code)
    assert error["param"] == "messages[0].content[1].video_url"
    assert len(stub.requests) == sent_before  # nothing reached the engine
    assert http.post("/v1/chat/completions", json={"model": "auto", "messages": [USER]}).is_success
    good = http.post("/v1/chat/completions", json=video_chat(video_data_url(clips["good"])))
    assert good.status_code == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("two_videos", "too_many_videos"),
        ("remote_url", "video_url_forbidden"),
        ("named_text_model", "model_capability_missing"),
    ],
)
def test_other_video_refusals(
    http: httpx.Client, clips: dict[str, bytes], body: str, code: str
) -> None:
    good = video_data_url(clips["good"])
    bodies = {
        "two_videos": video_chat(good, good),
        "remote_url": video_chat("https://videos.example.com/clip.mp4"),
        "named_text_model": video_chat(good, model=TEXT_MODEL),
    }
    response = http.post("/v1/chat/completions", json=bodies[body])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert http.post("/v1/chat/completions", json={"model": "auto", "messages": [USER]}).is_success
