from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import soundfile as sf

from gateway.errors import InvalidMedia, PayloadTooLarge
from gateway.media.audio import audio_from_base64, normalize_audio
from gateway.media.settings import MediaSettings
from tests.support.media import wav_base64, wav_bytes

PARAM = "messages[0].content[0].input_audio"


def encoded(samples: np.ndarray, rate: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def stereo_tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([tone, tone], axis=1)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[int(np.argmax(spectrum))])


def refusal(data: bytes, settings: MediaSettings | None = None) -> InvalidMedia:
    with pytest.raises(InvalidMedia) as caught:
        normalize_audio(data, settings or MediaSettings(), param=PARAM)
    assert caught.value.param == PARAM
    return caught.value


def test_stereo_44k_wav_becomes_16k_mono_with_the_same_duration():
    source = encoded(stereo_tone(2.5, 44_100), 44_100, subtype="PCM_16")
    audio = normalize_audio(source, MediaSettings(), param=PARAM)
    assert (audio.sample_rate, audio.source_format) == (16_000, "WAV")
    assert audio.duration_seconds == pytest.approx(2.5, abs=1e-3)
    samples, rate = sf.read(io.BytesIO(audio.wav), dtype="float32")
    info = sf.info(io.BytesIO(audio.wav))
    assert (rate, info.channels, info.format, info.subtype) == (16_000, 1, "WAV", "PCM_16")
    assert samples.shape == (40_000,)
    assert dominant_frequency(samples, rate) == pytest.approx(440.0, abs=1.0)
    assert 0.25 < float(np.max(np.abs(samples))) < 0.35


def test_16k_mono_input_is_kept_as_is():
    audio = audio_from_base64(wav_base64(1.0), "wav", MediaSettings(), param=PARAM)
    samples, rate = sf.read(io.BytesIO(audio.wav), dtype="int16")
    original, _ = sf.read(io.BytesIO(wav_bytes(1.0)), dtype="int16")
    assert rate == 16_000
    np.testing.assert_array_equal(samples, original)


def test_mp3_is_decoded():
    source = encoded(stereo_tone(1.0, 22_050), 22_050, fmt="MP3")
    audio = audio_from_base64(
        base64.b64encode(source).decode(), "mp3", MediaSettings(), param=PARAM
    )
    samples, rate = sf.read(io.BytesIO(audio.wav), dtype="float32")
    assert (audio.source_format, rate) == ("MP3", 16_000)
    assert audio.duration_seconds == pytest.approx(1.0, abs=0.1)
    assert dominant_frequency(samples, rate) == pytest.approx(440.0, abs=2.0)


def test_ten_minutes_of_audio_are_refused():
    silence = encoded(np.zeros(600 * 8_000, dtype=np.float32), 8_000, subtype="PCM_U8")
    error = refusal(silence)
    assert error.code == "audio_too_long"
    assert "600.0" in error.message


def test_duration_limit_is_configurable():
    settings = MediaSettings(max_audio_seconds=1.5)
    assert refusal(wav_bytes(2.0), settings).code == "audio_too_long"
    assert normalize_audio(wav_bytes(1.5), settings, param=PARAM).duration_seconds == 1.5


def test_bad_base64_is_refused():
    for data in ("not base64 at all!", "UklGR", "UklG Rg==", 42):
        with pytest.raises(InvalidMedia) as caught:
            audio_from_base64(data, "wav", MediaSettings(), param=PARAM)
        assert (caught.value.code, caught.value.param) == ("invalid_audio", PARAM)


def test_non_audio_bytes_are_refused():
    assert refusal(b"GIF89a not really audio at all, just text" * 10).code == "invalid_audio"


def test_empty_audio_is_refused():
    assert refusal(b"").code == "invalid_audio"
    assert refusal(encoded(np.zeros(0, dtype=np.float32), 16_000)).code == "invalid_audio"


def test_too_many_channels_are_refused():
    data = encoded(np.zeros((1_600, 10), dtype=np.float32), 16_000)
    assert refusal(data).code == "invalid_audio"


def test_readable_but_unaccepted_container_is_refused():
    aiff = encoded(stereo_tone(0.5, 16_000), 16_000, fmt="AIFF")
    assert refusal(aiff).code == "unsupported_audio_format"


@pytest.mark.parametrize("fmt", ["aac", None, 3])
def test_unaccepted_format_field_is_refused(fmt: object):
    with pytest.raises(InvalidMedia) as caught:
        audio_from_base64(wav_base64(0.5), fmt, MediaSettings(), param=PARAM)
    assert caught.value.code == "unsupported_audio_format"


def test_oversized_audio_is_refused_with_413():
    settings = MediaSettings(max_audio_bytes=10_000)
    with pytest.raises(PayloadTooLarge) as caught:
        audio_from_base64(wav_base64(2.0), "wav", settings, param=PARAM)
    assert (caught.value.code, caught.value.status_code) == ("audio_too_large", 413)
    with pytest.raises(PayloadTooLarge):
        normalize_audio(wav_bytes(2.0), settings, param=PARAM)
