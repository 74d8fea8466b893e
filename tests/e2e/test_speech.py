"""Speech-to-text through the whole stack: a stack with ``speech.mode: local`` transcribes a clip.

Its own stack (the default one has speech off), removed afterwards; the images of the other
services come from the engine's image cache.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.engine, pytest.mark.e2e]


@pytest.fixture(scope="module")
def speech_stack(
    engine_available: None, tmp_path_factory: pytest.TempPathFactory, stack_factory: Any
) -> Iterator[Any]:
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed (apt-get install -y espeak-ng)")
    yield from stack_factory(tmp_path_factory.mktemp("speech"), {"speech": {"mode": "local"}})


def test_whisper_transcribes_a_spoken_clip_through_nginx(speech_stack: Any, tmp_path: Path) -> None:
    rows = speech_stack.ps()
    assert rows["whisper"]["health"] == "healthy"
    clip = tmp_path / "clip.wav"
    subprocess.run(
        ["espeak-ng", "-v", "en", "-s", "140", "-w", str(clip), "The quick brown fox jumps."],
        check=True,
    )
    with speech_stack.client() as client:
        refused = client.post("/api/whisper/transcribe", files={"file": ("clip.wav", b"x")})
        assert refused.status_code == 401
        speech_stack.login(client)
        response = client.post(
            "/api/whisper/transcribe",
            files={"file": ("clip.wav", clip.read_bytes(), "audio/wav")},
            data={"language": "en"},
            headers={"Origin": speech_stack.origin},
            timeout=120,
        )
    assert response.status_code == 200, response.text
    words = response.json()["text"].lower()
    assert "quick" in words and "fox" in words, words
