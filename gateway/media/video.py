"""Video checks: container, bytes and header limits first, then a bounded look at the frames.

OpenCV's FFmpeg backend reads the video from memory, as vLLM's default video loader does,
so a video passes here when the engine can read it. Each step is cheaper than the next:

1. the container is recognised from its first bytes (``containers.sniff``) and must be in
   ``video_formats``; its top-level sizes must fit in the data, so a file cut short is
   refused before FFmpeg opens it;
2. FFmpeg opens it and reads the stream header: frame size (``max_video_frame_pixels``),
   frame rate, frame count (``max_video_frames``) and duration (``max_video_seconds``) are
   checked before any frame is decoded, so a small file declaring a huge canvas or
   millions of frames costs no more than its header;
3. the packets are counted without decoding them (OpenCV's raw mode), never more than
   ``max_video_frames + 1``: there must be as many as the header lists, and their count
   bounds the frames and duration again when the header does not know them;
4. the first frame is decoded, which proves the codec can read this data.

``open_video`` runs steps 1-3 and returns an ``OpenedVideo``; its ``decode`` runs step 4.
In between, the validator reserves ``decode_bytes`` of the process's decode memory
(``gateway.media.budget``): one frame at 8 bytes a pixel, room for the frame FFmpeg
decodes and its decoder's buffers (a 1080p MPEG-4 frame measured about 3.3). Only one
frame is decoded here, so frames x size is never held by this process; what the engine's
loader decodes is bounded by ``max_video_frames`` x ``max_video_frame_pixels``, both
checked at step 2.

The bytes pass on unchanged (vLLM decodes them with the same library). All of it is CPU
work: call ``open_video`` / ``validate_video_bytes`` / ``video_from_data_url`` from a
worker thread.
OpenCV does not show the size of the frames the codec decodes (it scales them to the
header's size): a bitstream larger than its header says is not caught here.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import cv2

from gateway.errors import InvalidMedia
from gateway.media.containers import Container, is_whole, sniff
from gateway.media.encoding import check_size, parse_data_url
from gateway.media.settings import MediaSettings

#: One decoding thread per video: several videos are checked side by side.
_OPEN_PARAMS = [cv2.CAP_PROP_N_THREADS, 1]
#: ``CAP_PROP_FORMAT`` value of OpenCV's raw mode: ``grab`` reads a packet, decodes nothing.
_RAW_PACKETS = -1
#: Packets may fall one short of the header's frame count (vLLM tolerates the same).
_COUNT_TOLERANCE = 1
#: Decode memory of one frame per pixel: the decoded frame and the decoder's buffers.
_DECODE_BYTES_PER_PIXEL = 8


@dataclass(frozen=True)
class ValidatedVideo:
    """A video that passed every check; ``data`` is the original file."""

    data: bytes
    format: str
    mime_type: str
    width: int
    height: int
    frames: int
    fps: float

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.fps

    def data_url(self) -> str:
        """The video as a ``data:`` URL with the MIME type of its real container."""
        return f"data:{self.mime_type};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True)
class _Header:
    width: int
    height: int
    fps: float
    frames: int  # 0 when the container does not say


@dataclass(frozen=True)
class OpenedVideo:
    """A video whose container, header and packets passed; no frame is decoded yet."""

    data: bytes
    container: Container
    header: _Header
    frames: int
    param: str | None

    @property
    def decode_bytes(self) -> int:
        return self.header.width * self.header.height * _DECODE_BYTES_PER_PIXEL

    def decode(self) -> ValidatedVideo:
        """Decode the first frame (CPU work: run it in a worker thread)."""
        with _capture(self.data, self.param) as capture:
            if not capture.grab():
                raise _invalid("The video's first frame could not be decoded.", self.param)
        return ValidatedVideo(
            data=self.data,
            format=self.container.name,
            mime_type=self.container.mime_type,
            width=self.header.width,
            height=self.header.height,
            frames=self.frames,
            fps=self.header.fps,
        )

    def close(self) -> None:
        """Nothing stays open between the checks and the decode."""


def open_video_data_url(url: str, settings: MediaSettings, *, param: str | None) -> OpenedVideo:
    """``open_video`` of a data URL's bytes (CPU work: run it in a worker thread)."""
    data = parse_data_url(url, kind="video", max_bytes=settings.max_video_bytes, param=param)
    return open_video(data, settings, param=param)


def open_video(data: bytes, settings: MediaSettings, *, param: str | None) -> OpenedVideo:
    """Steps 1-3 of the module docstring: every check that decodes no frame."""
    check_size(data, max_bytes=settings.max_video_bytes, param=param, kind="video")
    container = _container(data, settings, param)
    if not is_whole(data, container):
        raise _invalid("The video is incomplete: the file ends inside its container.", param)
    with _capture(data, param) as capture:
        header = _check_header(capture, settings, param)
        frames = _count_packets(capture, header, settings, param)
    return OpenedVideo(data, container, header, frames, param)


def video_from_data_url(url: str, settings: MediaSettings, *, param: str | None) -> ValidatedVideo:
    """Check and decode a data URL video (CPU work: run it in a worker thread)."""
    return open_video_data_url(url, settings, param=param).decode()


def validate_video_bytes(
    data: bytes, settings: MediaSettings, *, param: str | None
) -> ValidatedVideo:
    """Every check of the module docstring, in its order (run in a worker thread)."""
    return open_video(data, settings, param=param).decode()


def _container(data: bytes, settings: MediaSettings, param: str | None) -> Container:
    container = sniff(data)
    allowed = ", ".join(settings.video_formats)
    if container is None:
        raise _invalid(f"The data is not a video in an accepted container ({allowed}).", param)
    if container.name not in settings.video_formats:
        raise InvalidMedia(
            f"Video container {container.name} is not accepted (accepted: {allowed}).",
            param=param,
            code="unsupported_video_format",
        )
    return container


@contextmanager
def _capture(data: bytes, param: str | None) -> Iterator[cv2.VideoCapture]:
    """OpenCV's FFmpeg capture over ``data``, released on exit.

    The stream is held here until after ``release()``: with only OpenCV holding it,
    ``release()`` after raw mode crashed the process (OpenCV 5.0), as if the stream went
    before FFmpeg's last read. OpenCV reads any object with ``read`` and ``seek`` (its
    stubs name the C++ type).
    """
    stream = io.BytesIO(data)
    capture = cv2.VideoCapture(cast(cv2.IStreamReader, stream), cv2.CAP_FFMPEG, _OPEN_PARAMS)
    try:
        if not capture.isOpened():
            raise _invalid(
                "The video could not be opened (its container or codec is unreadable).", param
            )
        yield capture
    finally:
        capture.release()
        stream.close()


def _number(capture: cv2.VideoCapture, prop: int) -> float:
    value = float(capture.get(prop))
    return value if math.isfinite(value) else 0.0


def _check_header(capture: cv2.VideoCapture, settings: MediaSettings, param: str | None) -> _Header:
    width = int(_number(capture, cv2.CAP_PROP_FRAME_WIDTH))
    height = int(_number(capture, cv2.CAP_PROP_FRAME_HEIGHT))
    if width <= 0 or height <= 0:
        raise _invalid(f"The video's frames are {width}x{height}.", param)
    if width * height > settings.max_video_frame_pixels:
        raise InvalidMedia(
            f"The video's frames are {width}x{height} pixels; the limit is "
            f"{settings.max_video_frame_pixels} pixels.",
            param=param,
            code="video_too_many_pixels",
        )
    fps = _number(capture, cv2.CAP_PROP_FPS)
    if fps <= 0:
        raise _invalid("The video has no frame rate.", param)
    frames = max(0, int(_number(capture, cv2.CAP_PROP_FRAME_COUNT)))
    _check_length(frames, fps, settings, param)
    return _Header(width, height, fps, frames)


def _check_length(frames: int, fps: float, settings: MediaSettings, param: str | None) -> None:
    if frames > settings.max_video_frames:
        raise InvalidMedia(
            f"The video has {frames} frames; at most {settings.max_video_frames} are accepted.",
            param=param,
            code="video_too_many_frames",
        )
    if frames / fps > settings.max_video_seconds:
        raise InvalidMedia(
            f"The video lasts {frames / fps:.1f} s; at most {settings.max_video_seconds:g} s "
            "are accepted.",
            param=param,
            code="video_too_long",
        )


def _count_packets(
    capture: cv2.VideoCapture, header: _Header, settings: MediaSettings, param: str | None
) -> int:
    """The video packets in the file, read without decoding, at most the frame limit + 1."""
    capture.set(cv2.CAP_PROP_FORMAT, _RAW_PACKETS)
    count = 0
    while count <= settings.max_video_frames and capture.grab():
        count += 1
    _check_length(count, header.fps, settings, param)
    if count == 0:
        raise _invalid("The video has no frames.", param)
    if count < header.frames - _COUNT_TOLERANCE:
        raise _invalid(
            f"The video is incomplete: its header lists {header.frames} frames but only "
            f"{count} are in the file.",
            param,
        )
    return count


def _invalid(message: str, param: str | None) -> InvalidMedia:
    return InvalidMedia(message, param=param, code="invalid_video")
