"""Media checks for chat requests and audio uploads: images, audio, video and safe fetches.

MediaValidator(settings, client)      the entry point used by the API layer
MediaSettings                         limits, nested in the gateway settings as ``media``
create_fetch_client(settings)         the httpx client remote images and videos should use

    validator.py    counts, then each part: images.py, audio.py, video.py (header, then decode)
    budget.py       the decode memory one process holds at once (bytes reserved per part)
    video.py        containers.py (which container, is it whole), then OpenCV/FFmpeg
    fetch.py        remote URLs (allowlist, address checks, pinned connections, byte caps)
    encoding.py     strict base64, data: URLs, byte limits
"""

from gateway.media.audio import NormalizedAudio
from gateway.media.budget import DecodeBudget
from gateway.media.fetch import (
    AddressPolicy,
    PublicAddressPolicy,
    RemoteMediaFetcher,
    Resolver,
    SystemResolver,
    create_fetch_client,
)
from gateway.media.images import ValidatedImage
from gateway.media.settings import MediaSettings
from gateway.media.validator import MediaValidator
from gateway.media.video import ValidatedVideo

__all__ = [
    "AddressPolicy",
    "DecodeBudget",
    "MediaSettings",
    "MediaValidator",
    "NormalizedAudio",
    "PublicAddressPolicy",
    "RemoteMediaFetcher",
    "Resolver",
    "SystemResolver",
    "ValidatedImage",
    "ValidatedVideo",
    "create_fetch_client",
]
