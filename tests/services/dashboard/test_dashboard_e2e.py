"""The dashboard in a real Chromium against the real tmux-sessions and orchestrator.

Everything runs on loopback: tmux-sessions (private tmux socket) and the orchestrator (local
ticket folder, a shell command standing in for the Claude Code agent) as processes, and nginx
serving a fresh build of the dashboard with the production routing and ``auth_request``. The
browser steps live in ``services/dashboard/e2e/run.mjs`` (playwright-core); this test answers its
``CONTROL`` requests (restart tmux-sessions, stop the orchestrator), then checks what the browser
did against the services' own state. Screenshots land in ``test-output/dashboard/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
DASHBOARD = Path(__file__).resolve().parents[3] / "services" / "dashboard"
OUTPUT = DASHBOARD.parents[1] / "test-output" / "dashboard"


def _run_browser(
    script: str, stack: Any, out_dir: Path, extra_env: dict[str, str]
) -> tuple[int, dict[str, Any], list[str]]:
    """Run an e2e/*.mjs scenario, answering its CONTROL lines; return code, RESULT, transcript."""
    if not CHROMIUM.exists():
        pytest.fail("Chromium is not installed: apt-get install -y chromium")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed")
    env = {
        **os.environ,
        "E2E_BASE_URL": stack.base_url,
        "E2E_USERNAME": stack.username,
        "E2E_PASSWORD": stack.password,
        "E2E_OUT_DIR": str(out_dir),
        "E2E_CHROMIUM": str(CHROMIUM),
        **extra_env,
    }
    actions: dict[str, Callable[[], None]] = {
        "stop-tmux": lambda: stack.stop("tmux"),
        "start-tmux": lambda: stack.start("tmux"),
        "stop-orchestrator": lambda: stack.stop("orchestrator"),
        "restart-orchestrator": lambda: stack.restart("orchestrator"),
    }
    process = subprocess.Popen(
        [node, str(DASHBOARD / "e2e" / script)],
        cwd=DASHBOARD,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    watchdog = threading.Timer(600, process.kill)
    watchdog.start()
    transcript: list[str] = []
    result: dict[str, Any] = {}
    stderr_lines: list[str] = []
    stderr = process.stderr
    reader = threading.Thread(target=lambda: stderr_lines.extend(stderr), daemon=True)
    reader.start()
    try:
        for line in process.stdout:
            line = line.rstrip("\n")
            transcript.append(line)
            if line.startswith("CONTROL "):
                action = line.removeprefix("CONTROL ")
                actions[action]()
                process.stdin.write(f"DONE {action}\n")
                process.stdin.flush()
            elif line.startswith("RESULT "):
                result = json.loads(line.removeprefix("RESULT "))
        code = process.wait(timeout=60)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    transcript.extend(f"stderr: {line.rstrip()}" for line in stderr_lines)
    return code, result, transcript


def test_dashboard_end_to_end(stack: Any) -> None:
    out_dir = OUTPUT / "e2e"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)

    code, result, transcript = _run_browser(
        "run.mjs",
        stack,
        out_dir,
        {
            "E2E_APPROVE_ID": stack.tickets["approve"],
            "E2E_REJECT_ID": stack.tickets["reject"],
            "E2E_RETRY_ID": stack.tickets["retry"],
        },
    )
    (OUTPUT / "e2e-transcript.txt").write_text("\n".join(transcript) + "\n", encoding="utf-8")

    assert code == 0 and result.get("ok"), "browser run failed:\n" + "\n".join(transcript)
    assert result["steps"] == [
        "login page shown to a fresh browser",
        "signed in",
        "pending ticket shown with id, title, priority, labels and literal description",
        "rejected a ticket with feedback; it left the pending list",
        "approved a ticket; it is active with a terminal",
        "terminal shows the agent command output",
        "typed a command and saw its result",
        "read-only toggle blocks input",
        "copied a selection and pasted into the terminal",
        "created and killed a session",
        "usable at phone width; the shell size follows the window",
        "no console errors while the services were up",
        "terminal reconnected after tmux-sessions restarted",
        "completed ticket shown with its summary and when",
        "interrupted ticket retried into a new session",
        "daemon unhealthy banner shown with the reason",
        "a 401 from the API returns to the login page",
        "signed out; views need the session again",
    ]
    assert [e for e in result["consoleErrors"] if e["phase"] == "clean"] == []

    # What the browser did, as the services recorded it.
    data = stack.tmp / "orchestrator-data"
    completed = json.loads((data / "completed-tickets.json").read_text(encoding="utf-8"))
    pending = json.loads((data / "pending-tickets.json").read_text(encoding="utf-8"))
    assert "Wrote the feature, tests pass" in json.dumps(completed)
    approve_id, reject_id = stack.tickets["approve"], stack.tickets["reject"]
    assert approve_id in json.dumps(completed)
    assert approve_id not in json.dumps(pending)
    assert reject_id not in json.dumps(pending)
    sessions = stack.tmux_get("/api/sessions")
    names = {session["name"]: session for session in sessions}
    agent = [s for s in sessions if s.get("alive") and approve_id in s["name"]]
    assert agent, f"no live session for {approve_id}: {sorted(names)}"
    assert not any(s.get("alive") for s in sessions if s["name"] == "e2e-scratch")
    for shot in (
        "01-login.png",
        "02-pending.png",
        "04-terminal.png",
        "09-completed.png",
        "10-interrupted.png",
        "11-unhealthy.png",
    ):
        assert (out_dir / shot).stat().st_size > 0


def test_voice_input_end_to_end(voice_stack: Any, tmp_path: Path) -> None:
    """Speak into Chromium's fake microphone; whisper's text reaches the terminal on confirm."""
    out_dir = OUTPUT / "voice"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    spoken = tmp_path / "spoken.wav"
    speech = tmp_path / "speech.wav"
    # The phrase, then long silence: the fake microphone loops the file.
    subprocess.run(["espeak-ng", "-s", "140", "-w", str(spoken), "hello world"], check=True)
    subprocess.run(["sox", str(spoken), str(speech), "pad", "0.3", "8"], check=True)

    code, result, transcript = _run_browser(
        "voice.mjs",
        voice_stack,
        out_dir,
        {"E2E_SPEECH_WAV": str(speech), "E2E_EXPECT_WORD": "hello"},
    )
    (OUTPUT / "voice-transcript.txt").write_text("\n".join(transcript) + "\n", encoding="utf-8")

    assert code == 0 and result.get("ok"), "browser run failed:\n" + "\n".join(transcript)
    steps = result["steps"]
    assert steps[:3] == [
        "opened a terminal",
        "voice input offered because speech-to-text answers its health probe",
        steps[2],
    ]
    assert steps[2].lower().startswith("recorded and transcribed:") and "hello" in steps[2].lower()
    assert steps[3:] == [
        "confirmed text typed into the terminal",
        "discarded text never reached the terminal",
        "no console errors",
    ]
