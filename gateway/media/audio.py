"""Audio checks and normalisation: any accepted clip becomes 16 kHz mono 16-bit WAV.

libsndfile (through soundfile) reads the header first, so the format, channel count and
duration (``frames / samplerate``) are checked before any sample is decoded. Samples are
then read in blocks and mixed to mono as they come, never more than the duration limit
allows, so a header that lies about its length cannot make the gateway decode more.
soxr resamples to the engine's rate. All of this is CPU work: run it in a worker thread.

``open_audio`` reads the header and returns an ``OpenedAudio`` whose ``decode_bytes`` is
the most its ``decode`` can allocate, from the duration limit rather than the header's
length: the block being read, the mono blocks and their concatenation (float32 at the
source rate), and the resampled, clipped and 16-bit copies at the engine's rate. The
validator reserves it from the process's decode memory (``gateway.media.budget``) first.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from gateway.errors import InvalidMedia
from gateway.media.encoding import check_size, decode_base64
from gateway.media.settings import MediaSettings

MAX_SOURCE_RATE = 384_000
_BLOCK_FRAMES = 65_536
_FLOAT32 = 4
_INT16 = 2
_OPEN_ERRORS = (sf.SoundFileError, RuntimeError, TypeError, ValueError, EOFError)


@dataclass(frozen=True)
class NormalizedAudio:
    """A clip that passed every check, as mono 16-bit PCM WAV at ``sample_rate``."""

    wav: bytes
    sample_rate: int
    duration_seconds: float
    source_format: str


@dataclass
class OpenedAudio:
    """A clip whose header passed every check; no sample is read yet. Close it."""

    source: sf.SoundFile
    rate: int
    settings: MediaSettings
    param: str | None

    @property
    def decode_bytes(self) -> int:
        samples = _max_frames(self.rate, self.settings)
        engine_samples = int(self.settings.max_audio_seconds * self.settings.audio_sample_rate)
        block = _BLOCK_FRAMES * self.source.channels * _FLOAT32
        return block + 2 * samples * _FLOAT32 + engine_samples * (2 * _FLOAT32 + _INT16)

    def decode(self) -> NormalizedAudio:
        """Read, mix to mono and resample (CPU work: run it in a worker thread)."""
        settings, param = self.settings, self.param
        with _audio_errors(settings, param):
            source_format = str(self.source.format)
            mono = _read_mono(self.source, _max_frames(self.rate, settings), settings, param)
        if mono.size == 0:
            raise InvalidMedia("The audio has no samples.", param=param, code="invalid_audio")
        target = settings.audio_sample_rate
        resampled = mono if self.rate == target else soxr.resample(mono, self.rate, target)
        return NormalizedAudio(
            wav=_wav_bytes(resampled, target),
            sample_rate=target,
            duration_seconds=mono.size / self.rate,
            source_format=source_format,
        )

    def close(self) -> None:
        self.source.close()


def _check_format(fmt: object, settings: MediaSettings, *, param: str | None) -> None:
    """Refuse an ``input_audio`` format that is not in ``audio_formats``."""
    if not isinstance(fmt, str) or fmt.upper() not in settings.audio_formats:
        allowed = ", ".join(name.lower() for name in settings.audio_formats)
        raise InvalidMedia(
            f"Audio format {fmt!r} is not accepted (accepted: {allowed}).",
            param=param,
            code="unsupported_audio_format",
        )


def open_audio_base64(
    data: object, fmt: object, settings: MediaSettings, *, param: str | None
) -> OpenedAudio:
    """``open_audio`` of an ``input_audio`` part (``data`` base64, ``format`` e.g. "wav")."""
    _check_format(fmt, settings, param=param)
    raw = decode_base64(data, max_bytes=settings.max_audio_bytes, param=param, kind="audio")
    return open_audio(raw, settings, param=param)


def open_audio(data: bytes, settings: MediaSettings, *, param: str | None) -> OpenedAudio:
    """Check bytes, format, rate, channels and declared length from the header alone."""
    check_size(data, max_bytes=settings.max_audio_bytes, param=param, kind="audio")
    with _audio_errors(settings, param):
        source = sf.SoundFile(io.BytesIO(data))
        try:
            rate = _check_header(source, settings, param)
        except BaseException:
            source.close()
            raise
    return OpenedAudio(source, rate, settings, param)


def audio_from_base64(
    data: object, fmt: object, settings: MediaSettings, *, param: str | None
) -> NormalizedAudio:
    """Check and convert an ``input_audio`` part (CPU work: run it in a worker thread)."""
    with closing(open_audio_base64(data, fmt, settings, param=param)) as opened:
        return opened.decode()


def normalize_audio(data: bytes, settings: MediaSettings, *, param: str | None) -> NormalizedAudio:
    """Check and convert encoded audio bytes to mono WAV at ``settings.audio_sample_rate``."""
    with closing(open_audio(data, settings, param=param)) as opened:
        return opened.decode()


@contextmanager
def _audio_errors(settings: MediaSettings, param: str | None) -> Iterator[None]:
    """libsndfile's errors, as refusals."""
    try:
        yield
    except _OPEN_ERRORS as exc:
        raise InvalidMedia(
            f"The audio could not be decoded (accepted: {', '.join(settings.audio_formats)}).",
            param=param,
            code="invalid_audio",
        ) from exc


def _check_header(source: sf.SoundFile, settings: MediaSettings, param: str | None) -> int:
    if str(source.format) not in settings.audio_formats:
        raise InvalidMedia(
            f"Audio format {source.format} is not accepted.",
            param=param,
            code="unsupported_audio_format",
        )
    rate = int(source.samplerate)
    if not 0 < rate <= MAX_SOURCE_RATE:
        raise InvalidMedia(f"Sample rate {rate} Hz is invalid.", param=param, code="invalid_audio")
    if not 0 < source.channels <= settings.max_audio_channels:
        raise InvalidMedia(
            f"The audio has {source.channels} channels; at most "
            f"{settings.max_audio_channels} are accepted.",
            param=param,
            code="invalid_audio",
        )
    if source.frames > _max_frames(rate, settings):
        raise _too_long(source.frames / rate, settings, param)
    return rate


def _max_frames(rate: int, settings: MediaSettings) -> int:
    return int(settings.max_audio_seconds * rate)


def _read_mono(
    source: sf.SoundFile, max_frames: int, settings: MediaSettings, param: str | None
) -> np.ndarray:
    """Read at most ``max_frames`` frames block by block, mixing each block to mono."""
    blocks: list[np.ndarray] = []
    total = 0
    while True:
        block = source.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            break
        total += block.shape[0]
        if total > max_frames:
            raise _too_long(total / source.samplerate, settings, param)
        blocks.append(block.mean(axis=1, dtype=np.float32))
    if not blocks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(blocks)


def _wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    clipped = np.clip(samples, -1.0, 1.0)
    sf.write(buffer, clipped, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _too_long(seconds: float, settings: MediaSettings, param: str | None) -> InvalidMedia:
    return InvalidMedia(
        f"The audio lasts more than {settings.max_audio_seconds:g} seconds "
        f"(at least {seconds:.1f} s).",
        param=param,
        code="audio_too_long",
    )
