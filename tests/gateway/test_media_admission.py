"""Admission before decoding, through a real gateway with quotas on Redis and the stub upstream.

A key over its limits is refused before any of its media is decoded (counted by
``gateway_media_decodes_total``); media refused after admission releases it, with the
same 400 as the media checks give on their own.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from gateway.app import create_app
from gateway.errors import InvalidMedia, body_for
from gateway.media import MediaSettings, MediaValidator
from tests.gateway.conftest import gateway_settings
from tests.gateway.test_api import metric
from tests.gateway.test_quota_redis import ADMIN, CHAT, bearer, create_key, remaining_tokens
from tests.gateway_media.craft import png_header_claiming
from tests.support.media import png_bytes, wav_bytes
from tests.support.servers import serve_in_thread
from tests.support.shared_redis import SHARED_REDIS_URL, unique_prefix
from tests.support.stub_upstream import AUDIO_MODEL, VISION_MODEL, StubUpstream

#: Eight 4096x4096 PNGs: under 1 MB of JSON, about a second of decoding.
LARGE_IMAGES = 8


@pytest.fixture
def http(stub: StubUpstream) -> Iterator[httpx.Client]:
    with unique_prefix("gw-media-admission") as prefix:
        quota = {"redis_url": SHARED_REDIS_URL, "key_prefix": prefix, "timeout": 1.0}
        settings = gateway_settings(stub.base_url, quota=quota, admin_key=ADMIN)
        with (
            serve_in_thread(create_app(settings)) as url,
            httpx.Client(base_url=url, timeout=60) as client,
        ):
            yield client


def images_chat(*images: bytes) -> dict[str, Any]:
    parts = [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + _b64(data)}}
        for data in images
    ]
    content = [{"type": "text", "text": "Compare these."}, *parts]
    return {"model": VISION_MODEL, "messages": [{"role": "user", "content": content}]}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def decodes(http: httpx.Client, kind: str) -> float:
    return metric(http, "gateway_media_decodes_total", kind=kind)


def test_an_over_quota_key_is_refused_before_its_images_are_decoded(http: httpx.Client):
    large = [png_bytes(4096, 4096, (i * 30, 90, 160)) for i in range(LARGE_IMAGES)]
    body = images_chat(*large)
    spent = create_key(http, limits={"requests_per_minute": 1})
    assert http.post("/v1/chat/completions", json=CHAT, headers=bearer(spent["key"])).is_success

    cpu = time.process_time()  # the gateway serves from a thread of this process
    refused = http.post("/v1/chat/completions", json=body, headers=bearer(spent["key"]))
    refused_cpu = time.process_time() - cpu
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limit_exceeded"
    assert decodes(http, "image") == 0
    assert refused_cpu < 0.5  # the decodes alone take about a second

    fresh = create_key(http, limits={"requests_per_minute": 1})
    answered = http.post("/v1/chat/completions", json=body, headers=bearer(fresh["key"]))
    assert answered.status_code == 200, answered.text
    assert decodes(http, "image") == LARGE_IMAGES


def test_an_over_quota_upload_is_refused_before_it_is_decoded(http: httpx.Client):
    spent = create_key(http, limits={"requests_per_minute": 1})
    assert http.post("/v1/chat/completions", json=CHAT, headers=bearer(spent["key"])).is_success
    refused = http.post(
        "/v1/audio/transcriptions",
        data={"model": AUDIO_MODEL},
        files={"file": ("clip.wav", wav_bytes(10.0, rate=48_000), "audio/wav")},
        headers=bearer(spent["key"]),
    )
    assert refused.status_code == 429
    assert decodes(http, "audio") == 0


def test_media_refused_after_admission_releases_it_with_the_same_400(http: httpx.Client):
    body = images_chat(png_header_claiming(200, 200))  # the header passes, the decode fails
    with pytest.raises(InvalidMedia) as direct:
        anyio.run(MediaValidator(MediaSettings()).prepare_messages, body["messages"])
    limits = {"max_concurrent": 1, "tokens_per_minute": 100_000}
    key, twin = create_key(http, limits=limits), create_key(http, limits=limits)

    refused = http.post("/v1/chat/completions", json=body, headers=bearer(key["key"]))
    assert refused.status_code == 400
    assert refused.json() == body_for(direct.value)
    assert refused.json()["error"]["code"] == "invalid_image"
    assert decodes(http, "image") == 1

    after = http.post("/v1/chat/completions", json=CHAT, headers=bearer(key["key"]))
    assert after.status_code == 200  # the concurrency lease was returned
    first = http.post("/v1/chat/completions", json=CHAT, headers=bearer(twin["key"]))
    assert remaining_tokens(after) == remaining_tokens(first)  # nothing was charged
