"""Turn uploaded bytes or streamed PCM into the 16 kHz mono float32 samples Whisper expects.

Decoding is bounded: only audio container formats are opened (no playlists or other demuxers
that would read further files), and decoding stops as soon as the configured duration is passed.

Example::

    samples = decode_upload(Path("hello.webm").read_bytes(), max_seconds=600)
    seconds = len(samples) / SAMPLE_RATE
"""

from __future__ import annotations

import io

import av
import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
AUDIO_FORMATS = "wav,matroska,webm,ogg,mp3,flac,mov,mp4,m4a,aac,aiff,caf"

Samples = npt.NDArray[np.float32]


class AudioError(ValueError):
    """Base of the upload errors; ``str(error)`` is the reason shown to the client."""


class EmptyAudio(AudioError):
    """The upload has no bytes, or decodes to no samples."""


class NotAudio(AudioError):
    """The upload is not an audio file this service decodes."""


class AudioTooLong(AudioError):
    """The audio lasts longer than the configured maximum."""


def decode_upload(data: bytes, *, max_seconds: float, filename: str = "file") -> Samples:
    """Decode any supported audio file to mono 16 kHz float32 in [-1, 1].

    Raises ``EmptyAudio``, ``NotAudio`` or ``AudioTooLong`` with a reason naming ``filename``.
    """
    if not data:
        raise EmptyAudio(f"{filename}: the upload is empty; send an audio file in field 'file'")
    max_samples = int(max_seconds * SAMPLE_RATE)
    try:
        container = av.open(io.BytesIO(data), mode="r", options={"format_whitelist": AUDIO_FORMATS})
    except av.FFmpegError as exc:
        raise NotAudio(
            f"{filename}: not a decodable audio file ({exc.strerror or exc}); "
            "send wav, webm/opus, ogg, mp3 or flac"
        ) from exc
    with container:
        if not container.streams.audio:
            raise NotAudio(f"{filename}: the file has no audio stream")
        if container.duration is not None and container.duration / av.time_base > max_seconds:
            raise AudioTooLong(_too_long(filename, container.duration / av.time_base, max_seconds))
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        chunks: list[npt.NDArray[np.int16]] = []
        total = 0
        try:
            for frame in container.decode(container.streams.audio[0]):
                for resampled in resampler.resample(frame):
                    total += _append(chunks, resampled)
                if total > max_samples:
                    raise AudioTooLong(_too_long(filename, total / SAMPLE_RATE, max_seconds))
            for resampled in resampler.resample(None):
                total += _append(chunks, resampled)
        except av.FFmpegError as exc:
            # A truncated tail (common for recordings cut short) still yields usable audio.
            if total == 0:
                raise NotAudio(f"{filename}: the audio stream cannot be decoded ({exc})") from exc
    if total > max_samples:
        raise AudioTooLong(_too_long(filename, total / SAMPLE_RATE, max_seconds))
    if total == 0:
        raise EmptyAudio(f"{filename}: the file contains no audio samples")
    return pcm_s16le_to_float(np.concatenate(chunks).tobytes())


def pcm_s16le_to_float(pcm: bytes) -> Samples:
    """Convert little-endian signed 16-bit PCM to float32 samples, e.g. ``b"\\x00\\x40"`` -> 0.5."""
    ints = np.frombuffer(pcm, dtype="<i2")
    return (ints.astype(np.float32) / 32768.0).astype(np.float32)


def _append(chunks: list[npt.NDArray[np.int16]], frame: av.AudioFrame) -> int:
    array = frame.to_ndarray().reshape(-1).astype(np.int16, copy=False)
    chunks.append(array)
    return int(array.shape[0])


def _too_long(filename: str, seconds: float, max_seconds: float) -> str:
    return (
        f"{filename}: audio lasts at least {seconds:.1f} s, over the limit of "
        f"{max_seconds:g} s (WHISPER_MAX_DURATION_SECONDS); split it into shorter files"
    )
