"""Media checks for chat requests and audio uploads: images, audio and safe remote fetches.

MediaValidator(settings, client)      the entry point used by the API layer
MediaSettings                         limits, nested in the gateway settings as ``media``
create_fetch_client(settings)         the httpx client remote images should use
"""

from gateway.media.audio import NormalizedAudio
from gateway.media.fetch import (
    AddressPolicy,
    PublicAddressPolicy,
    RemoteImageFetcher,
    Resolver,
    SystemResolver,
    create_fetch_client,
)
from gateway.media.images import ValidatedImage
from gateway.media.settings import MediaSettings
from gateway.media.validator import MediaValidator

__all__ = [
    "AddressPolicy",
    "MediaSettings",
    "MediaValidator",
    "NormalizedAudio",
    "PublicAddressPolicy",
    "RemoteImageFetcher",
    "Resolver",
    "SystemResolver",
    "ValidatedImage",
    "create_fetch_client",
]
