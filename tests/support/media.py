"""Real media for tests: PNG images and WAV clips made with Pillow, numpy and soundfile."""

from __future__ import annotations

import base64
import io

import numpy as np
import soundfile as sf
from PIL import Image


def png_bytes(
    width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 40, 40)
) -> bytes:
    image = Image.new("RGB", (width, height), color)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_data_url(width: int = 64, height: int = 48) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(width, height)).decode()


def wav_bytes(seconds: float = 2.0, rate: int = 16_000, freq: float = 440.0) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def wav_base64(seconds: float = 2.0, rate: int = 16_000) -> str:
    return base64.b64encode(wav_bytes(seconds, rate)).decode()
