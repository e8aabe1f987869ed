"""Checks every image, audio and video part of a chat request before it reaches the engine.

``MediaValidator.prepare_messages`` returns new messages in which every ``image_url`` and
``video_url`` is a validated ``data:`` URL (remote ones fetched here, so the engine never
fetches; videos keep their bytes) and every ``input_audio`` is 16 kHz mono WAV.
``check_counts`` and ``check_upload`` are the cheap checks (part counts, byte lengths) a
request passes before it is admitted; the rest runs after admission.

Each part goes header first: ``open_*`` (images.py, audio.py, video.py) checks what the
header declares and says what decoding will take (``decode_bytes``); the part then reserves
that much of the validator's ``DecodeBudget`` (``max_decode_memory_bytes``, waiting at most
``decode_memory_wait``) and is decoded. Both steps run in worker threads
(``anyio.to_thread``), at most ``max_concurrent_decodes`` at once per validator, so the
event loop stays free. With ``metrics``, every decode counts in
``gateway_media_decodes_total{kind}`` and the reserved bytes show as
``gateway_media_decode_reserved_bytes``.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import anyio.to_thread
import httpx

from gateway.errors import InvalidMedia, InvalidRequest
from gateway.media.audio import NormalizedAudio, normalize_audio, open_audio, open_audio_base64
from gateway.media.budget import DecodeBudget
from gateway.media.encoding import MediaKind, check_size
from gateway.media.fetch import FetchKind, RemoteMediaFetcher
from gateway.media.images import open_image, open_image_data_url
from gateway.media.settings import MediaSettings
from gateway.media.video import open_video, open_video_data_url

if TYPE_CHECKING:
    from gateway.metrics import GatewayMetrics

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

Part = dict[str, Any]
PASS_THROUGH_PARTS = frozenset({"text", "refusal"})
ACCEPTED_PARTS = "text, image_url, input_audio, video_url"


class _Validated(Protocol):
    def data_url(self) -> str: ...


class _Opened(Protocol[T_co]):
    """A part whose header passed: what decoding it takes, the decode, and its release."""

    @property
    def decode_bytes(self) -> int: ...

    def decode(self) -> T_co: ...

    def close(self) -> None: ...


class MediaValidator:
    """Validates and normalises the media parts of OpenAI chat messages."""

    def __init__(
        self,
        settings: MediaSettings,
        client: httpx.AsyncClient | None = None,
        *,
        fetcher: RemoteMediaFetcher | None = None,
        budget: DecodeBudget | None = None,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.settings = settings
        if fetcher is None and client is not None:
            fetcher = RemoteMediaFetcher(settings, client)
        self._fetcher = fetcher
        self._limiter = anyio.CapacityLimiter(settings.max_concurrent_decodes)
        self.budget = budget or DecodeBudget(
            settings.max_decode_memory_bytes, wait=settings.decode_memory_wait
        )
        self._metrics = metrics
        if metrics is not None:
            metrics.watch_decode_memory(lambda: self.budget.reserved)

    async def prepare_messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """New messages with every media part validated and normalised (input untouched)."""
        self.check_counts(messages)
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
        """An uploaded audio file as 16 kHz mono WAV (blocking, outside the decode budget)."""
        return self.normalize_upload(data, filename).wav

    async def prepare_upload_async(self, data: bytes, filename: str | None = None) -> bytes:
        """``prepare_upload`` in worker threads, under the decode budget."""
        with _naming(filename):
            opener = functools.partial(open_audio, data, self.settings, param="file")
            audio = await self._decode("audio", opener)
        return audio.wav

    def normalize_upload(self, data: bytes, filename: str | None = None) -> NormalizedAudio:
        """An uploaded audio file, normalised, with its duration (blocking: CPU work)."""
        with _naming(filename):
            return normalize_audio(data, self.settings, param="file")

    def check_upload(self, data: bytes) -> None:
        """The cheap checks of an upload: not empty, not over ``max_audio_bytes``."""
        check_size(data, max_bytes=self.settings.max_audio_bytes, param="file", kind="audio")

    def check_counts(self, messages: list[dict[str, Any]]) -> None:
        """Refuse more image, audio or video parts than a request may carry (decodes nothing)."""
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
        from_data_url, from_bytes = _OPENERS[kind]
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme == "data":
            return await self._decode(
                kind, functools.partial(from_data_url, url, self.settings, param=param)
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
        return await self._decode(
            kind, functools.partial(from_bytes, data, self.settings, param=param)
        )

    async def _prepare_audio(self, part: Part, param: str) -> Part:
        spec = part.get("input_audio")
        if not isinstance(spec, dict):
            raise InvalidMedia(
                "input_audio must be an object with data and format.",
                param=param,
                code="invalid_audio",
            )
        audio = await self._decode(
            "audio",
            functools.partial(
                open_audio_base64, spec.get("data"), spec.get("format"), self.settings, param=param
            ),
        )
        encoded = base64.b64encode(audio.wav).decode("ascii")
        return {**part, "input_audio": {"data": encoded, "format": "wav"}}

    async def _decode(self, kind: MediaKind, opener: Callable[[], _Opened[T]]) -> T:
        """Header checks, then the decode with its ``decode_bytes`` reserved."""
        opened = await self._in_thread(opener)
        try:
            async with self.budget.reserve(opened.decode_bytes):
                if self._metrics is not None:
                    self._metrics.media_decodes.labels(kind).inc()
                return await self._in_thread(opened.decode)
        finally:
            opened.close()

    async def _in_thread(self, func: Callable[[], T]) -> T:
        return await anyio.to_thread.run_sync(func, limiter=self._limiter)


@contextmanager
def _naming(filename: str | None) -> Iterator[None]:
    """An upload's refusals name its file."""
    try:
        yield
    except InvalidMedia as exc:
        if filename:
            exc.message = f"{exc.message} (file {filename!r})"
            exc.args = (exc.message,)
        raise


_OPENERS: dict[
    FetchKind, tuple[Callable[..., _Opened[_Validated]], Callable[..., _Opened[_Validated]]]
] = {
    "image": (open_image_data_url, open_image),
    "video": (open_video_data_url, open_video),
}
