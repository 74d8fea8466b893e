"""Fixtures for the whisper service tests: real speech clips, the embedded model, real servers.

Speech comes from Debian's ``espeak-ng``; conversions from ``ffmpeg``. The model is assembled
once per session from the pinned wheels, and each server is a real ``python -m whisper_service``
process on a free loopback port, stopped at teardown.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from whisper_service.model import assemble

SENTENCES = {
    "open": "Please open the terminal and run the tests.",
    "weather": "The weather is sunny and warm today.",
    "report": "Send the report to the team before noon.",
}


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is missing: apt-get install -y {tool}")


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def _ffmpeg(source: Path, target: Path, *options: str) -> None:
    _run("ffmpeg", "-loglevel", "error", "-i", str(source), *options, str(target))


@pytest.fixture(scope="session")
def sentences() -> dict[str, str]:
    """What each clip says, by clip name."""
    return dict(SENTENCES)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of spoken clips: ``<name>.wav`` and ``<name>.pcm`` (16 kHz mono s16le) for
    every sentence, ``open.webm`` (opus), ``weather.mp3``, ``report.ogg``, ``long.wav`` (about
    14 s of speech) and ``silence30.wav``."""
    for tool in ("espeak-ng", "ffmpeg"):
        _require(tool)
    root = tmp_path_factory.mktemp("speech")
    for name, text in SENTENCES.items():
        wav = root / f"{name}.wav"
        _run("espeak-ng", "-s", "150", "-w", str(wav), text)
        _ffmpeg(wav, root / f"{name}.pcm", "-ar", "16000", "-ac", "1", "-f", "s16le")
    _ffmpeg(root / "open.wav", root / "open.webm", "-c:a", "libopus")
    _ffmpeg(root / "weather.wav", root / "weather.mp3", "-c:a", "libmp3lame", "-b:a", "96k")
    _ffmpeg(root / "report.wav", root / "report.ogg", "-c:a", "libvorbis")
    # About 14 s of speech for the queue test: long enough to be observed while it runs.
    long_text = " ".join(list(SENTENCES.values()) * 2)
    _run("espeak-ng", "-s", "150", "-w", str(root / "long.wav"), long_text)
    # 30 s of silence for the duration limit (still small: 8 kHz mono 8-bit).
    _run("ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono",
         "-t", "30", "-c:a", "pcm_u8", str(root / "silence30.wav"))  # fmt: skip
    return root


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded model, assembled once for the whole session."""
    return Path(assemble(tmp_path_factory.mktemp("model") / "whisper-base"))


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance divided by the reference length."""
    ref, hyp = _words(reference), _words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word))
            )
        previous = current
    return previous[-1] / max(len(ref), 1)


@pytest.fixture(scope="session")
def wer() -> Callable[[str, str], float]:
    return word_error_rate


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running ``python -m whisper_service`` process."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def service_env(model_dir: Path, tmp: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHISPER_")}
    env.update(
        HOME=str(tmp),
        WHISPER_HOST="127.0.0.1",
        WHISPER_EMBEDDED_MODEL_DIR=str(model_dir),
        WHISPER_LOG_LEVEL="warning",
    )
    env.update({f"WHISPER_{k.upper()}": v for k, v in settings.items()})
    return env


def start_server(model_dir: Path, tmp: Path, **settings: str) -> Server:
    port = free_port()
    log = tmp / f"whisper-{port}.log"
    env = service_env(model_dir, tmp, port=str(port), **settings)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "whisper_service"], env=env, stdout=sink, stderr=sink
        )
    server = Server(process=process, port=port, log=log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"whisper service exited: {log.read_text()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"whisper service did not answer /health: {log.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service with small limits: 2 MB uploads, 20 s of audio."""
    running = start_server(
        model_dir,
        tmp_path_factory.mktemp("server"),
        max_upload_bytes=str(2_000_000),
        max_duration_seconds="20",
        max_concurrency="1",
        max_queue="8",
        allowed_origins="https://ai.example.org",
    )
    yield running.url
    stop_server(running)


@pytest.fixture
def launch(model_dir: Path, tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start extra servers with other settings (returns the base URL); stopped after the test."""
    started: list[Server] = []

    def _launch(**settings: str) -> str:
        running = start_server(model_dir, tmp_path, **settings)
        started.append(running)
        return running.url

    yield _launch
    for running in started:
        stop_server(running)
