"""Checks every image, audio and video part of a chat request before it reaches the engine.

``MediaValidator.prepare_messages`` returns new messages in which every ``image_url`` and
``video_url`` is a validated ``data:`` URL (remote ones fetched here, so the engine never
fetches; videos keep their bytes) and every ``input_audio`` is 16 kHz mono WAV. Counts are
checked before anything is decoded.
Decoding runs in worker threads (``anyio.to_thread``), at most
``max_concurrent_decodes`` at once per validator, so the event loop stays free.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import anyio
import anyio.to_thread
import httpx

from gateway.errors import InvalidMedia, InvalidRequest
from gateway.media.audio import NormalizedAudio, audio_from_base64, normalize_audio
from gateway.media.fetch import FetchKind, RemoteMediaFetcher
from gateway.media.images import image_from_data_url, validate_image_bytes
from gateway.media.settings import MediaSettings
from gateway.media.video import validate_video_bytes, video_from_data_url

T = TypeVar("T")

Part = dict[str, Any]
PASS_THROUGH_PARTS = frozenset({"text", "refusal"})
ACCEPTED_PARTS = "text, image_url, input_audio, video_url"


class _Validated(Protocol):
    def data_url(self) -> str: ...


class MediaValidator:
    """Validates and normalises the media parts of OpenAI chat messages."""

    def __init__(
        self,
        settings: MediaSettings,
        client: httpx.AsyncClient | None = None,
        *,
        fetcher: RemoteMediaFetcher | None = None,
    ) -> None:
        self.settings = settings
        if fetcher is None and client is not None:
            fetcher = RemoteMediaFetcher(settings, client)
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
        counts = {"image_url": 0, "input_audio": 0, "video_url": 0}
        for m, message in enumerate(messages):
            if not isinstance(message, dict):
                raise InvalidRequest("Each message must be an object.", param=f"messages[{m}]")
            content = message.get("content")
            for part in content if isinstance(content, list) else ():
                kind = part.get("type") if isinstance(part, dict) else None
                if kind in counts:
                    counts[kind] += 1
        limits = (
            ("image_url", "images", self.settings.max_images_per_request, "too_many_images"),
            ("input_audio", "audio parts", self.settings.max_audio_parts, "too_many_audio_parts"),
            ("video_url", "videos", self.settings.max_videos_per_request, "too_many_videos"),
        )
        for kind, described, limit, code in limits:
            if counts[kind] > limit:
                raise InvalidMedia(
                    f"The request has {counts[kind]} {described}; at most {limit} are accepted.",
                    param="messages",
                    code=code,
                )

    async def _prepare_part(self, part: Any, param: str) -> Any:
        if not isinstance(part, dict):
            raise InvalidRequest("Each content part must be an object.", param=param)
        kind = part.get("type")
        if kind == "image_url":
            return await self._prepare_url(part, "image", f"{param}.image_url")
        if kind == "input_audio":
            return await self._prepare_audio(part, f"{param}.input_audio")
        if kind == "video_url":
            return await self._prepare_url(part, "video", f"{param}.video_url")
        if kind in PASS_THROUGH_PARTS:
            return dict(part)
        raise InvalidRequest(
            f"Content parts of type {kind!r} are not accepted (accepted: {ACCEPTED_PARTS}).",
            param=f"{param}.type",
            code="unsupported_content_part",
        )

    async def _prepare_url(self, part: Part, kind: FetchKind, param: str) -> Part:
        """An ``image_url`` or ``video_url`` part with its URL checked and made a data URL."""
        field = f"{kind}_url"
        spec = part.get(field)
        options = dict(spec) if isinstance(spec, dict) else {}
        url = spec.get("url") if isinstance(spec, dict) else spec
        if not isinstance(url, str):
            raise InvalidMedia(
                f"{field}.url must be a string.", param=param, code=f"invalid_{kind}"
            )
        media = await self._load(url, kind, param)
        return {**part, field: {**options, "url": media.data_url()}}

    async def _load(self, url: str, kind: FetchKind, param: str) -> _Validated:
        from_data_url, from_bytes = _CHECKS[kind]
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == "data":
            return await self._in_thread(
                functools.partial(from_data_url, url, self.settings, param=param)
            )
        if scheme not in ("http", "https"):
            raise InvalidMedia(
                f"{kind.capitalize()} URLs must be data: URLs (or http(s) when remote "
                f"{kind}s are enabled).",
                param=param,
                code=f"{kind}_url_forbidden",
            )
        if self._fetcher is None:
            raise InvalidMedia(
                f"Remote {kind} URLs are disabled; send a data: URL.",
                param=param,
                code=f"{kind}_url_forbidden",
            )
        data = await self._fetcher.fetch(url, param=param, kind=kind)
        return await self._in_thread(
            functools.partial(from_bytes, data, self.settings, param=param)
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


_CHECKS: dict[FetchKind, tuple[Callable[..., _Validated], Callable[..., _Validated]]] = {
    "image": (image_from_data_url, validate_image_bytes),
    "video": (video_from_data_url, validate_video_bytes),
}
