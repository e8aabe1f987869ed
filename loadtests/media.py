"""Small real inputs for image and audio requests: a PNG (Pillow) and a WAV clip (soundfile)."""

from __future__ import annotations

import base64
import io
from functools import lru_cache

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw


@lru_cache(maxsize=4)
def png_data_url(width: int = 224, height: int = 224) -> str:
    """A data URL of a PNG with a few shapes on it (something to describe)."""
    image = Image.new("RGB", (width, height), (235, 235, 220))
    draw = ImageDraw.Draw(image)
    draw.rectangle((20, 30, width // 2, height // 2), fill=(200, 40, 40))
    draw.ellipse((width // 2, height // 2, width - 20, height - 20), fill=(40, 90, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@lru_cache(maxsize=4)
def wav_base64(seconds: float = 2.0, rate: int = 16_000) -> str:
    """A base64 WAV of a short two-tone clip (16-bit PCM, mono)."""
    t = np.arange(int(seconds * rate)) / rate
    samples = 0.2 * np.sin(2 * np.pi * 440.0 * t) + 0.1 * np.sin(2 * np.pi * 660.0 * t)
    buffer = io.BytesIO()
    sf.write(buffer, samples.astype(np.float32), rate, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode()
