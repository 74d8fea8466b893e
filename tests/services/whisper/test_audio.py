"""Decoding uploads without HTTP: formats, and each kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from whisper_service.audio import (
    SAMPLE_RATE,
    AudioTooLong,
    EmptyAudio,
    NotAudio,
    decode_upload,
    pcm_s16le_to_float,
)


@pytest.mark.parametrize(("name", "ext"), [("open", "wav"), ("open", "webm"),
                                           ("weather", "mp3"), ("report", "ogg")])  # fmt: skip
def test_formats_decode_to_the_same_length(clips: Path, name: str, ext: str) -> None:
    samples = decode_upload((clips / f"{name}.{ext}").read_bytes(), max_seconds=60)
    expected = len((clips / f"{name}.pcm").read_bytes()) / 2
    assert samples.dtype.name == "float32"
    assert abs(len(samples) - expected) < 0.05 * SAMPLE_RATE  # codec padding only
    assert 0.1 < float(abs(samples).max()) <= 1.0


def test_empty_upload() -> None:
    with pytest.raises(EmptyAudio, match=r"note\.wav: the upload is empty"):
        decode_upload(b"", max_seconds=60, filename="note.wav")


def test_text_is_not_audio() -> None:
    with pytest.raises(NotAudio, match=r"notes\.txt: not a decodable audio file"):
        decode_upload(b"hello, this is a text file\n" * 50, max_seconds=60, filename="notes.txt")


def test_playlists_are_not_followed(tmp_path: object) -> None:
    playlist = b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n"
    with pytest.raises(NotAudio):
        decode_upload(playlist, max_seconds=60, filename="list.m3u8")


def test_duration_limit_from_the_header(clips: Path) -> None:
    with pytest.raises(AudioTooLong, match=r"over the limit of 20 s"):
        decode_upload((clips / "silence30.wav").read_bytes(), max_seconds=20)


def test_duration_limit_while_decoding(clips: Path) -> None:
    # webm from a browser recorder has no duration header: the decoder stops at the limit.
    with pytest.raises(AudioTooLong, match=r"over the limit of 1 s"):
        decode_upload((clips / "open.webm").read_bytes(), max_seconds=1)


def test_truncated_file_keeps_the_audio_it_has(clips: Path) -> None:
    data = (clips / "weather.mp3").read_bytes()
    samples = decode_upload(data[: len(data) // 2], max_seconds=60)
    assert 0 < len(samples) < len((clips / "weather.pcm").read_bytes()) / 2


def test_pcm_conversion_scale() -> None:
    assert pcm_s16le_to_float(b"\x00\x40\x00\xc0\xff\x7f").tolist() == pytest.approx(
        [0.5, -0.5, 32767 / 32768]
    )
