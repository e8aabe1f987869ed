"""Checks every image and audio part of a chat request before it reaches the engine.

``MediaValidator.prepare_messages`` returns new messages in which every ``image_url`` is
a validated ``data:`` URL (remote ones fetched here, so the engine never fetches) and
every ``input_audio`` is 16 kHz mono WAV. Counts are checked before anything is decoded.
Decoding runs in worker threads (``anyio.to_thread``), at most
``max_concurrent_decodes`` at once per validator, so the event loop stays free.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import httpx

from gateway.errors import InvalidMedia, InvalidRequest
from gateway.media.audio import NormalizedAudio, audio_from_base64, normalize_audio
from gateway.media.fetch import RemoteImageFetcher
from gateway.media.images import ValidatedImage, image_from_data_url, validate_image_bytes
from gateway.media.settings import MediaSettings

T = TypeVar("T")

Part = dict[str, Any]
PASS_THROUGH_PARTS = frozenset({"text", "refusal"})


class MediaValidator:
    """Validates and normalises the media parts of OpenAI chat messages."""

    def __init__(
        self,
        settings: MediaSettings,
        client: httpx.AsyncClient | None = None,
        *,
        fetcher: RemoteImageFetcher | None = None,
    ) -> None:
        self.settings = settings
        if fetcher is None and client is not None:
            fetcher = RemoteImageFetcher(settings, client)
        self._fetcher = fetcher
        self._limiter = anyio.CapacityLimiter(settings.max_concurrent_decodes)

    async def prepare_messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """New messages with every media part validated and normalised (input untouched)."""
        self._check_counts(messages)
        prepared: list[dict[str, Any]] = []
        for m, message in enumerate(messages):
            content = message.get("content")
            if not isinstance(content, list):
                prepared.append(dict(message))
                continue
            parts = [
                await self._prepare_part(part, f"messages[{m}].content[{p}]")
                for p, part in enumerate(content)
            ]
            prepared.append({**message, "content": parts})
        return prepared

    def prepare_upload(self, data: bytes, filename: str | None = None) -> bytes:
        """An uploaded audio file as 16 kHz mono WAV (blocking: CPU work)."""
        return self.normalize_upload(data, filename).wav

    async def prepare_upload_async(self, data: bytes, filename: str | None = None) -> bytes:
        """``prepare_upload`` in a worker thread."""
        return await self._in_thread(functools.partial(self.prepare_upload, data, filename))

    def normalize_upload(self, data: bytes, filename: str | None = None) -> NormalizedAudio:
        """An uploaded audio file, normalised, with its duration (blocking: CPU work)."""
        try:
            return normalize_audio(data, self.settings, param="file")
        except InvalidMedia as exc:
            if filename:
                exc.message = f"{exc.message} (file {filename!r})"
                exc.args = (exc.message,)
            raise

    def _check_counts(self, messages: list[dict[str, Any]]) -> None:
        images = audio = 0
        for m, message in enumerate(messages):
            if not isinstance(message, dict):
                raise InvalidRequest("Each message must be an object.", param=f"messages[{m}]")
            content = message.get("content")
            for part in content if isinstance(content, list) else ():
                kind = part.get("type") if isinstance(part, dict) else None
                images += kind == "image_url"
                audio += kind == "input_audio"
        if images > self.settings.max_images_per_request:
            raise InvalidMedia(
                f"The request has {images} images; at most "
                f"{self.settings.max_images_per_request} are accepted.",
                param="messages",
                code="too_many_images",
            )
        if audio > self.settings.max_audio_parts:
            raise InvalidMedia(
                f"The request has {audio} audio parts; at most "
                f"{self.settings.max_audio_parts} are accepted.",
                param="messages",
                code="too_many_audio_parts",
            )

    async def _prepare_part(self, part: Any, param: str) -> Any:
        if not isinstance(part, dict):
            raise InvalidRequest("Each content part must be an object.", param=param)
        kind = part.get("type")
        if kind == "image_url":
            return await self._prepare_image(part, f"{param}.image_url")
        if kind == "input_audio":
            return await self._prepare_audio(part, f"{param}.input_audio")
        if kind in PASS_THROUGH_PARTS:
            return dict(part)
        raise InvalidRequest(
            f"Content parts of type {kind!r} are not accepted "
            "(accepted: text, image_url, input_audio).",
            param=f"{param}.type",
            code="unsupported_content_part",
        )

    async def _prepare_image(self, part: Part, param: str) -> Part:
        spec = part.get("image_url")
        options = dict(spec) if isinstance(spec, dict) else {}
        url = spec.get("url") if isinstance(spec, dict) else spec
        if not isinstance(url, str):
            raise InvalidMedia("image_url.url must be a string.", param=param, code="invalid_image")
        image = await self._load_image(url, param)
        return {**part, "image_url": {**options, "url": image.data_url()}}

    async def _load_image(self, url: str, param: str) -> ValidatedImage:
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == "data":
            return await self._in_thread(
                functools.partial(image_from_data_url, url, self.settings, param=param)
            )
        if scheme not in ("http", "https"):
            raise InvalidMedia(
                "Image URLs must be data: URLs (or http(s) when remote images are enabled).",
                param=param,
                code="image_url_forbidden",
            )
        if self._fetcher is None or not self.settings.allow_remote_images:
            raise InvalidMedia(
                "Remote image URLs are disabled; send a data: URL.",
                param=param,
                code="image_url_forbidden",
            )
        data = await self._fetcher.fetch(url, param=param)
        return await self._in_thread(
            functools.partial(validate_image_bytes, data, self.settings, param=param)
        )

    async def _prepare_audio(self, part: Part, param: str) -> Part:
        spec = part.get("input_audio")
        if not isinstance(spec, dict):
            raise InvalidMedia(
                "input_audio must be an object with data and format.",
                param=param,
                code="invalid_audio",
            )
        audio = await self._in_thread(
            functools.partial(
                audio_from_base64, spec.get("data"), spec.get("format"), self.settings, param=param
            )
        )
        encoded = base64.b64encode(audio.wav).decode("ascii")
        return {**part, "input_audio": {"data": encoded, "format": "wav"}}

    async def _in_thread(self, func: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(func, limiter=self._limiter)
