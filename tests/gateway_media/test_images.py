from __future__ import annotations

import base64
import warnings

import pytest
from PIL import Image

from gateway.errors import InvalidMedia, PayloadTooLarge
from gateway.media.images import image_from_data_url, validate_image_bytes
from gateway.media.settings import MediaSettings
from tests.gateway_media.craft import image_bytes, noisy_png, png_header_claiming
from tests.support.media import png_bytes, png_data_url

PARAM = "messages[0].content[0].image_url"


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def refusal(data: bytes, settings: MediaSettings | None = None) -> InvalidMedia:
    with pytest.raises(InvalidMedia) as caught:
        validate_image_bytes(data, settings or MediaSettings(), param=PARAM)
    assert caught.value.param == PARAM
    return caught.value


def test_valid_png_data_url_is_accepted_with_its_size():
    image = image_from_data_url(png_data_url(64, 48), MediaSettings(), param=PARAM)
    assert (image.format, image.mime_type, image.width, image.height) == (
        "PNG",
        "image/png",
        64,
        48,
    )
    assert image.data == png_bytes(64, 48)
    assert image.data_url() == png_data_url(64, 48)


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif"), ("PNG", "image/png")],
)
def test_allowed_formats_are_accepted(fmt: str, mime: str):
    image = validate_image_bytes(image_bytes(fmt, 40, 30), MediaSettings(), param=PARAM)
    assert (image.format, image.mime_type, image.width, image.height) == (fmt, mime, 40, 30)


def test_declared_mime_type_is_replaced_by_the_real_one():
    url = data_url(image_bytes("JPEG"), mime="image/png")
    image = image_from_data_url(url, MediaSettings(), param=PARAM)
    assert image.data_url().startswith("data:image/jpeg;base64,")


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_other_formats_are_refused_by_name(fmt: str):
    error = refusal(image_bytes(fmt))
    assert error.code == "unsupported_image_format"
    assert fmt in error.message


def test_format_allowlist_is_configurable():
    error = refusal(image_bytes("JPEG"), MediaSettings(image_formats=["PNG"]))
    assert error.code == "unsupported_image_format"


@pytest.mark.parametrize(("width", "height"), [(50_000, 50_000), (10_000, 10_000), (5_000, 5_000)])
def test_huge_dimensions_are_refused_from_the_header(width: int, height: int):
    # 50000^2 trips Pillow's bomb error, 10000^2 its bomb warning, 5000^2 only our limit.
    data = png_header_claiming(width, height)
    assert len(data) < 200
    error = refusal(data)
    assert error.code == "image_too_many_pixels"


def test_header_only_png_under_the_limit_fails_the_full_decode():
    # The same crafted file, small enough to pass the header check, is caught by load().
    assert refusal(png_header_claiming(200, 200)).code == "invalid_image"


def test_highly_compressed_bomb_is_refused():
    bomb = image_bytes("PNG", 6_000, 6_000, mode="1")
    assert len(bomb) < 100_000
    assert refusal(bomb).code == "image_too_many_pixels"


def test_pixel_limit_is_configurable():
    settings = MediaSettings(max_image_pixels=64 * 48 - 1)
    assert refusal(png_bytes(64, 48), settings).code == "image_too_many_pixels"
    assert validate_image_bytes(png_bytes(64, 47), settings, param=PARAM).height == 47


def test_pillow_global_state_is_left_alone():
    before_pixels = Image.MAX_IMAGE_PIXELS
    before_filters = list(warnings.filters)
    refusal(png_header_claiming(10_000, 10_000))
    validate_image_bytes(png_bytes(), MediaSettings(), param=PARAM)
    assert before_pixels == Image.MAX_IMAGE_PIXELS
    assert warnings.filters == before_filters


def test_truncated_png_is_refused():
    data = noisy_png()
    assert validate_image_bytes(data, MediaSettings(), param=PARAM).width == 256
    assert refusal(data[: len(data) // 2]).code == "invalid_image"


def test_non_image_bytes_are_refused():
    assert refusal(b"this is plain text, not a picture" * 4).code == "invalid_image"


def test_empty_image_is_refused():
    assert refusal(b"").code == "invalid_image"


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64,@@notbase64@@",
        "data:image/png;base64,iVBORw0K GgoAAAANSUhEUg==",
        "data:image/png;base64,iVBORw0KGgo",
        "data:image/png,iVBORw0KGgoAAAANSUhEUg==",
        "data:text/plain;base64,aGVsbG8=",
        "data:;base64,aGVsbG8=",
        "image/png;base64,aGVsbG8=",
    ],
)
def test_malformed_data_urls_are_refused(url: str):
    with pytest.raises(InvalidMedia) as caught:
        image_from_data_url(url, MediaSettings(), param=PARAM)
    assert caught.value.code == "invalid_image"
    assert caught.value.param == PARAM


def test_oversized_image_is_refused_before_decoding():
    settings = MediaSettings(max_image_bytes=1_000)
    with pytest.raises(PayloadTooLarge) as caught:
        image_from_data_url(data_url(noisy_png()), settings, param=PARAM)
    assert (caught.value.code, caught.value.status_code) == ("image_too_large", 413)
    with pytest.raises(PayloadTooLarge):
        validate_image_bytes(noisy_png(), settings, param=PARAM)
