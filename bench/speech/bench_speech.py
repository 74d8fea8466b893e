"""Speech benchmarks: real-time factor int8 vs float32, load time, peak memory, stream latency.

Run from the repository root::

    .venv/bin/python bench/speech/bench_speech.py

Every figure comes from this machine, on one 30 s clip spoken by espeak-ng. Each compute type is
measured in its own process so that peak memory (ru_maxrss) belongs to that run alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

PARAGRAPH = (
    "Good morning team. The deployment finished without errors last night. "
    "Please open the dashboard and check the pending tickets before noon. "
    "Two agents are still running in their terminal sessions. "
    "The backup of the data volume completed in three seconds. "
    "Next week we will move the speech service to the new server. "
    "Send me a short report when the review is done. Thank you."
)
UTTERANCES = (
    "Please open the terminal and run the tests.",
    "Send the report to the team before noon.",
    "Please save the file and close the window.",
)
RUNS = 3


def make_clip(root: Path) -> Path:
    """Exactly 30 s: the spoken paragraph, padded with silence or cut."""
    spoken = root / "paragraph.wav"
    subprocess.run(["espeak-ng", "-s", "140", "-w", str(spoken), PARAGRAPH], check=True)
    clip = root / "clip30.wav"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", str(spoken), "-af", "apad", "-t", "30",
         "-ar", "16000", "-ac", "1", str(clip)],
        check=True,
    )  # fmt: skip
    return clip


def measure(model_dir: Path, clip: Path, compute_type: str, cpu_threads: int) -> dict[str, Any]:
    """Inside a fresh process: load, first call, then the median of RUNS calls."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from whisper_service.audio import SAMPLE_RATE, decode_upload
    from whisper_service.core.config import Settings
    from whisper_service.engine import Engine

    samples = decode_upload(clip.read_bytes(), max_seconds=60)
    seconds = len(samples) / SAMPLE_RATE
    settings = Settings(model_dir=model_dir, compute_type=compute_type, cpu_threads=cpu_threads)
    engine = Engine(settings)
    started = time.perf_counter()
    engine.load()
    load = time.perf_counter() - started
    started = time.perf_counter()
    first = engine.transcribe(samples, language="en")
    first_call = time.perf_counter() - started
    timings = []
    for _ in range(RUNS):
        started = time.perf_counter()
        engine.transcribe(samples, language="en")
        timings.append(time.perf_counter() - started)
    steady = statistics.median(timings)
    fastest = min(timings)
    return {
        "compute_type": compute_type,
        "cpu_threads": cpu_threads,
        "audio_seconds": round(seconds, 2),
        "load_seconds": round(load, 3),
        "first_call_seconds": round(first_call, 3),
        "median_seconds": round(steady, 3),
        "min_seconds": round(fastest, 3),
        "rtf": round(steady / seconds, 4),
        "rtf_min": round(fastest / seconds, 4),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "text": first.text,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_service(model_dir: Path, home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHISPER_")}
    env.update(
        HOME=str(home),
        WHISPER_PORT=str(port),
        WHISPER_EMBEDDED_MODEL_DIR=str(model_dir),
        WHISPER_LOG_LEVEL="warning",
    )
    process = subprocess.Popen([sys.executable, "-m", "whisper_service"], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("the service did not start")


def http_transcribe(base: str, clip: Path) -> float:
    with clip.open("rb") as handle:
        started = time.perf_counter()
        response = httpx.post(
            f"{base}/api/whisper/transcribe",
            files={"file": (clip.name, handle)},
            data={"language": "en"},
            timeout=300,
        )
        elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


async def stream_latencies(base: str, root: Path) -> list[float]:
    """Seconds from the last speech sample sent to its final text, per utterance."""
    chunk = 3200  # 100 ms
    latencies: list[float] = []
    url = base.replace("http://", "ws://") + "/api/whisper/stream?language=en"
    for index, text in enumerate(UTTERANCES * 2):
        wav = root / f"utt{index}.pcm"
        subprocess.run(["espeak-ng", "-s", "150", "-w", str(root / "utt.wav"), text], check=True)
        subprocess.run(
            ["ffmpeg", "-loglevel", "error", "-y", "-i", str(root / "utt.wav"), "-ar", "16000",
             "-ac", "1", "-f", "s16le", str(wav)],
            check=True,
        )  # fmt: skip
        pcm = wav.read_bytes()
        async with websockets.connect(url) as ws:
            final = asyncio.get_running_loop().create_future()

            async def read(done: asyncio.Future[float] = final) -> None:
                async for message in ws:
                    if json.loads(message)["type"] == "final" and not done.done():
                        done.set_result(time.perf_counter())

            reader = asyncio.create_task(read())
            for start in range(0, len(pcm), chunk):
                await ws.send(pcm[start : start + chunk])
                await asyncio.sleep(0.1)
            speech_end = time.perf_counter()
            silence = b"\0" * chunk
            while not final.done():
                await ws.send(silence)
                await asyncio.sleep(0.1)
            latencies.append(final.result() - speech_end)
            await ws.send(json.dumps({"type": "end"}))
            reader.cancel()
    return latencies


def report_stream(latencies: list[float]) -> None:
    print(
        "stream: end of speech -> final text (includes the 600 ms silence window): "
        f"median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s, "
        f"n={len(latencies)}: {[round(x, 3) for x in latencies]}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--measure", choices=["int8", "float32"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--cpu-threads", type=int, default=0, help="CTranslate2 threads (0: one per CPU)"
    )
    parser.add_argument("--skip-stream", action="store_true", help="only int8 vs float32")
    parser.add_argument("--only-stream", action="store_true", help="only the stream latency")
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.model_dir, args.clip, args.measure, args.cpu_threads)))
        return 0
    for tool in ("espeak-ng", "ffmpeg"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install -y {tool}")
    from whisper_service.model import assemble

    with tempfile.TemporaryDirectory(prefix="bench-speech-") as tmp:
        root = Path(tmp)
        model_dir = assemble(root / "model")
        clip = make_clip(root)
        results = {}
        for compute_type in () if args.only_stream else ("int8", "float32"):
            out = subprocess.run(
                [sys.executable, __file__, "--measure", compute_type,
                 "--model-dir", str(model_dir), "--clip", str(clip),
                 "--cpu-threads", str(args.cpu_threads)],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            results[compute_type] = json.loads(out.strip().splitlines()[-1])
            print(json.dumps(results[compute_type]))
        print(f"load average during the runs: {os.getloadavg()}, cpus: {os.cpu_count()}")
        if args.only_stream:
            process, base = start_service(model_dir, root)
            try:
                report_stream(asyncio.run(stream_latencies(base, root)))
            finally:
                process.terminate()
                process.wait(timeout=30)
            return 0
        int8, f32 = results["int8"], results["float32"]
        print(f"int8 vs float32 speed: float32 takes {f32['rtf'] / int8['rtf']:.2f}x as long "
              f"(median), {f32['rtf_min'] / int8['rtf_min']:.2f}x (fastest run); "
              f"peak RSS {int8['peak_rss_mib']} vs {f32['peak_rss_mib']} MiB")  # fmt: skip
        if args.skip_stream:
            return 0
        process, base = start_service(model_dir, root)
        try:
            http_transcribe(base, clip)  # warm-up
            http = statistics.median(http_transcribe(base, clip) for _ in range(RUNS))
            print(f"HTTP /transcribe of the same clip (int8, median of {RUNS}): {http:.3f} s; "
                  f"in-process engine: {int8['median_seconds']:.3f} s; "
                  f"ratio {http / int8['median_seconds']:.3f}")  # fmt: skip
            report_stream(asyncio.run(stream_latencies(base, root)))
        finally:
            process.terminate()
            process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
