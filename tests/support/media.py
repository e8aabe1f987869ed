"""Real media for tests: PNG images, WAV clips and MP4/WebM videos.

Made with Pillow, soundfile and OpenCV's ``VideoWriter`` (MPEG-4 Part 2 in MP4, the
``mp4v`` fourcc; VP8 in WebM), frames of a moving gradient so every frame differs.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import cv2
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


def video_bytes(
    directory: Path,
    *,
    width: int = 64,
    height: int = 48,
    frames: int = 10,
    fps: float = 10.0,
    fourcc: str = "mp4v",
    suffix: str = ".mp4",
) -> bytes:
    """A video written by OpenCV into ``directory`` (the container follows ``suffix``).

    The default is MPEG-4 Part 2 in MP4 with ``moov`` after ``mdat``, as OpenCV writes it.
    """
    path = directory / f"clip-{width}x{height}-{frames}-{fps:g}-{fourcc}{suffix}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc} into {suffix}"
    x = np.arange(width, dtype=np.uint16)[None, :]
    y = np.arange(height, dtype=np.uint16)[:, None]
    for i in range(frames):
        frame = np.empty((height, width, 3), dtype=np.uint8)
        frame[..., 0] = (x * 3 + i * 8) % 256
        frame[..., 1] = (y * 5) % 256
        frame[..., 2] = (x + y + i * 4) % 256
        writer.write(frame)
    writer.release()
    return path.read_bytes()


def video_data_url(data: bytes, mime: str = "video/mp4") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()
