"""The real HTTP service (``python -m whisper_service`` on a free port) with real speech."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

WER_BOUND = 0.25  # espeak-ng's voice is synthetic; Whisper base still gets most words right


def post_file(base: str, path: Path, **fields: str) -> httpx.Response:
    with path.open("rb") as handle:
        return httpx.post(
            f"{base}/api/whisper/transcribe",
            files={"file": (path.name, handle)},
            data=fields,
            timeout=120,
        )


@pytest.mark.parametrize(
    ("name", "ext"), [("open", "wav"), ("open", "webm"), ("weather", "mp3"), ("report", "ogg")]
)
def test_transcribes_spoken_sentences(
    server: str,
    clips: Path,
    sentences: dict[str, str],
    wer: Callable[[str, str], float],
    name: str,
    ext: str,
) -> None:
    response = post_file(server, clips / f"{name}.{ext}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert wer(sentences[name], body["text"]) < WER_BOUND, body["text"]
    assert body["language"] == "en"
    assert body["duration"] == pytest.approx(
        len((clips / f"{name}.pcm").read_bytes()) / 32000, abs=0.1
    )
    assert body["segments"] and body["segments"][0]["start"] >= 0
    assert all(s["end"] >= s["start"] for s in body["segments"])
    assert " ".join(s["text"] for s in body["segments"]) == body["text"]


def test_language_and_prompt_fields(
    server: str, clips: Path, sentences: dict[str, str], wer: Callable[[str, str], float]
) -> None:
    response = post_file(server, clips / "report.wav", language="en", prompt="Team report.")
    assert response.status_code == 200, response.text
    assert response.json()["language"] == "en"
    assert wer(sentences["report"], response.json()["text"]) < WER_BOUND


def test_health_and_models(server: str, model_dir: Path) -> None:
    for path in ("/health", "/api/whisper/health"):
        health = httpx.get(server + path).json()
        assert health["status"] == "healthy" and health["model_loaded"] is True
    (model,) = httpx.get(f"{server}/api/whisper/models").json()["models"]
    assert model["path"] == str(model_dir)
    assert model["source"].startswith("embedded: whisper-base")
    assert model["loaded"] is True
    assert (model["device"], model["compute_type"]) == ("cpu", "int8")
    assert model["load_seconds"] > 0


def test_not_audio_is_415_with_the_reason(server: str, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not audio\n" * 100)
    response = post_file(server, notes)
    assert response.status_code == 415
    assert response.json()["detail"].startswith("notes.txt: not a decodable audio file")


def test_image_is_415(server: str, tmp_path: Path) -> None:
    png = tmp_path / "photo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + b"\0" * 200)
    response = post_file(server, png)
    assert response.status_code == 415
    assert "photo.png" in response.json()["detail"]


def test_empty_file_is_400(server: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    response = post_file(server, empty)
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "empty.webm: the upload is empty; send an audio file in field 'file'"
    )


def test_missing_file_field_is_422(server: str) -> None:
    response = httpx.post(f"{server}/api/whisper/transcribe", data={"language": "en"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file"]


def test_unknown_language_is_422(server: str, clips: Path) -> None:
    response = post_file(server, clips / "open.wav", language="klingon")
    assert response.status_code == 422
    assert response.json()["detail"].startswith("language: 'klingon' is not a Whisper language")


def test_over_size_is_413(server: str, tmp_path: Path) -> None:
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * 2_100_000)  # server limit: 2 000 000 bytes
    response = post_file(server, big)
    assert response.status_code == 413
    assert "2000000 bytes (WHISPER_MAX_UPLOAD_BYTES)" in response.json()["detail"]


def test_over_size_without_content_length_is_413(server: str) -> None:
    boundary = "whisperboundary"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        for _ in range(40):  # 40 x 100 kB, sent chunked: only counting can stop it
            yield b"\0" * 100_000
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(
        f"{server}/api/whisper/transcribe",
        content=body(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        timeout=60,
    )
    assert response.status_code == 413
    assert "WHISPER_MAX_UPLOAD_BYTES" in response.json()["detail"]


def test_over_duration_is_413(server: str, clips: Path) -> None:
    response = post_file(server, clips / "silence30.wav")  # server limit: 20 s
    assert response.status_code == 413
    assert "over the limit of 20 s (WHISPER_MAX_DURATION_SECONDS)" in response.json()["detail"]


def test_corrupt_files_do_not_take_the_service_down(
    server: str, clips: Path, sentences: dict[str, str], wer: Callable[[str, str], float],
    tmp_path: Path,
) -> None:  # fmt: skip
    webm = (clips / "open.webm").read_bytes()
    mangled = bytearray(webm)
    for offset in range(200, len(mangled), 97):
        mangled[offset] ^= 0x5A
    variants = {
        "mangled.webm": bytes(mangled),
        "cut.webm": webm[: len(webm) // 3],
        "header-only.wav": (clips / "open.wav").read_bytes()[:44],
        "garbage.mp3": b"ID3\x04\0\0\0\0\0\x10" + bytes(range(256)) * 40,
    }
    for name, data in variants.items():
        path = tmp_path / name
        path.write_bytes(data)
        response = post_file(server, path)
        assert response.status_code in {200, 400, 415}, (name, response.text)
        if response.status_code != 200:
            assert response.json()["detail"].startswith(name)
    assert httpx.get(f"{server}/health").json()["status"] == "healthy"
    response = post_file(server, clips / "open.wav")
    assert wer(sentences["open"], response.json()["text"]) < WER_BOUND


def test_requests_past_the_queue_bound_get_503(
    launch: Callable[..., str], clips: Path, sentences: dict[str, str]
) -> None:
    base = launch(max_concurrency="1", max_queue="0", retry_after_seconds="7")
    results: dict[str, httpx.Response] = {}
    worker = threading.Thread(
        target=lambda: results.update(long=post_file(base, clips / "long.wav")), daemon=True
    )
    worker.start()
    deadline = time.monotonic() + 60
    while httpx.get(f"{base}/api/whisper/health").json()["active"] != 1:
        assert worker.is_alive() and time.monotonic() < deadline, "the long job never ran"
        time.sleep(0.02)
    refused = post_file(base, clips / "open.wav")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "7"
    assert "WHISPER_MAX_QUEUE=0" in refused.json()["detail"]
    worker.join(timeout=120)
    assert results["long"].status_code == 200
    assert "terminal" in results["long"].json()["text"].lower()
    accepted = post_file(base, clips / "open.wav")  # the place is free again
    assert accepted.status_code == 200


def test_lazy_loading_reports_the_model_as_not_loaded_until_used(
    launch: Callable[..., str], clips: Path, sentences: dict[str, str],
    wer: Callable[[str, str], float],
) -> None:  # fmt: skip
    base = launch(preload="false")
    (model,) = httpx.get(f"{base}/api/whisper/models").json()["models"]
    assert model["loaded"] is False and model["load_seconds"] is None
    assert httpx.get(f"{base}/health").json()["model_loaded"] is False
    response = post_file(base, clips / "open.wav")
    assert wer(sentences["open"], response.json()["text"]) < WER_BOUND
    (model,) = httpx.get(f"{base}/api/whisper/models").json()["models"]
    assert model["loaded"] is True
