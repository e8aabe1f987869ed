from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.media import MediaSettings


class GatewayLike(BaseSettings):
    """The shape the gateway's settings nest MediaSettings in."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_nested_delimiter="__")
    media: MediaSettings = MediaSettings()


def test_every_field_is_documented():
    undocumented = [
        name for name, field in MediaSettings.model_fields.items() if not field.description
    ]
    assert undocumented == []


def test_defaults():
    settings = MediaSettings()
    assert settings.image_formats == ["PNG", "JPEG", "WEBP", "GIF"]
    assert (settings.allow_remote_images, settings.remote_image_hosts) == (False, [])
    assert (settings.max_audio_seconds, settings.audio_sample_rate) == (30.0, 16_000)


def test_environment_takes_json_or_comma_separated_lists(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GATEWAY_MEDIA__IMAGE_FORMATS", "png, jpeg")
    monkeypatch.setenv("GATEWAY_MEDIA__REMOTE_IMAGE_HOSTS", '["Images.Example.com.", "*.cdn.test"]')
    monkeypatch.setenv("GATEWAY_MEDIA__ALLOW_REMOTE_IMAGES", "true")
    monkeypatch.setenv("GATEWAY_MEDIA__MAX_AUDIO_SECONDS", "12.5")
    media = GatewayLike().media
    assert media.image_formats == ["PNG", "JPEG"]
    assert media.remote_image_hosts == ["images.example.com", "*.cdn.test"]
    assert (media.allow_remote_images, media.max_audio_seconds) == (True, 12.5)


@pytest.mark.parametrize(
    ("field", "value"),
    [("image_formats", "PNG,NOPE"), ("audio_formats", "AAC"), ("max_image_pixels", 0)],
)
def test_unusable_values_are_refused(field: str, value: object):
    with pytest.raises(ValidationError):
        MediaSettings.model_validate({field: value})


def test_decode_memory_defaults_and_environment(monkeypatch: pytest.MonkeyPatch):
    defaults = MediaSettings()
    assert defaults.max_image_decode_bytes == 3 * 4096 * 4096 * 4  # a still 4096^2 WebP
    assert (defaults.max_decode_memory_bytes, defaults.decode_memory_wait) == (384 << 20, 10.0)
    monkeypatch.setenv("GATEWAY_MEDIA__MAX_IMAGE_DECODE_BYTES", "1000")
    monkeypatch.setenv("GATEWAY_MEDIA__MAX_DECODE_MEMORY_BYTES", "2000")
    monkeypatch.setenv("GATEWAY_MEDIA__DECODE_MEMORY_WAIT", "0.5")
    media = GatewayLike().media
    assert (media.max_image_decode_bytes, media.max_decode_memory_bytes) == (1000, 2000)
    assert media.decode_memory_wait == 0.5
