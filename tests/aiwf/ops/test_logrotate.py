"""Forced rotations with real logrotate while writers write: no line is lost.

The orchestrator's side: a process logging through ``WatchedFileHandler`` (as the orchestrator
does) into the volume's folder. nginx's side: a real nginx container logging requests, reopened by
the rendered file's ``postrotate`` (``docker kill --signal USR1``).
"""

from __future__ import annotations

import gzip
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from aiwf import logrotate
from aiwf.config import StackConfig
from aiwf.stack import volume_name

WRITER = r"""
import logging, logging.handlers, signal, sys
handler = logging.handlers.WatchedFileHandler(sys.argv[1])
log = logging.getLogger("orchestrator")
log.addHandler(handler)
log.setLevel(logging.INFO)
running = True
def stop(*_):
    global running
    running = False
signal.signal(signal.SIGTERM, stop)
count = 0
while running:
    log.info("line %d", count)
    count += 1
print(count, flush=True)
"""


def _read_all(folder: Path, stem: str) -> list[str]:
    lines: list[str] = []
    for path in sorted(folder.glob(f"{stem}*")):
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        lines.extend(data.decode().splitlines())
    return lines


def _rotate(config_file: Path, state: Path) -> None:
    subprocess.run(["logrotate", "-f", "-s", str(state), str(config_file)], check=True)


def _config_for(stack: StackConfig, tmp_path: Path) -> tuple[Path, Path, Path]:
    engine_root = tmp_path / "docker"
    orchestrator_logs = (
        engine_root / "volumes" / volume_name(stack, "plane-orchestrator-logs") / "_data"
    )
    orchestrator_logs.mkdir(parents=True)
    nginx_logs = stack.paths.data_dir / "logs" / "nginx"
    nginx_logs.mkdir(parents=True)
    plan = logrotate.plan_install(stack, tmp_path / "logrotate.d", str(engine_root))
    assert plan.state == "created"
    logrotate.install(plan)
    assert logrotate.plan_install(stack, tmp_path / "logrotate.d", str(engine_root)).state == (
        "unchanged"
    )
    return plan.path, orchestrator_logs, nginx_logs


def test_a_file_logrotate_rejects_is_refused() -> None:
    with pytest.raises(logrotate.LogrotateError, match="rejects"):
        logrotate.check("/tmp/aiwf-nothing/*.log {\n    rotate many\n}\n")


def test_orchestrator_log_rotates_without_losing_lines(stack: StackConfig, tmp_path: Path) -> None:
    config_file, folder, _ = _config_for(stack, tmp_path)
    log_file = folder / "orchestrator.log"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(log_file)], stdout=subprocess.PIPE, text=True
    )
    state = tmp_path / "state"
    try:
        for _ in range(3):
            deadline = time.monotonic() + 30
            while (not log_file.exists() or log_file.stat().st_size < 50_000) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.02)
            _rotate(config_file, state)
    finally:
        writer.terminate()
        output, _ = writer.communicate(timeout=30)
    written = int(output)
    lines = _read_all(folder, "orchestrator.log")
    assert len(list(folder.glob("orchestrator.log.*"))) == 3  # .1, .2.gz, .3.gz
    numbers = sorted(int(line.split()[1]) for line in lines)
    assert numbers == list(range(written))


NGINX_CONF = """
worker_processes 1;
error_log stderr;
pid /run/nginx.pid;
events { worker_connections 64; }
http {
    access_log /var/log/nginx/access.log;
    server { listen 80; location / { return 200 "ok"; } }
}
"""


@pytest.mark.engine
def test_nginx_logs_rotate_and_reopen_without_losing_requests(
    docker_client: Any, base_image: str, stack: StackConfig, tmp_path: Path
) -> None:
    config_file, _, nginx_logs = _config_for(stack, tmp_path)
    conf_dir = tmp_path / "nginx-conf"
    conf_dir.mkdir()
    (conf_dir / "nginx.conf").write_text(NGINX_CONF)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    docker_client.containers.run(
        base_image,
        ["nginx", "-c", "/etc/aiwf-test/nginx.conf", "-g", "daemon off;"],
        name=stack.container_name("nginx"),
        labels={"aiwf.project": stack.project, "aiwf.service": "nginx"},
        volumes={
            str(conf_dir): {"bind": "/etc/aiwf-test", "mode": "ro"},
            str(nginx_logs): {"bind": "/var/log/nginx", "mode": "rw"},
        },
        ports={"80/tcp": ("127.0.0.1", port)},
        detach=True,
    )
    sent: list[int] = []
    stop = threading.Event()

    def client() -> None:
        number = 0
        while not stop.is_set():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/r/{number}", timeout=5).read()
            except OSError:
                time.sleep(0.05)  # nginx still starting
                continue
            sent.append(number)
            number += 1

    thread = threading.Thread(target=client)
    thread.start()
    state = tmp_path / "state"
    try:
        for _ in range(3):
            target = len(sent) + 200
            deadline = time.monotonic() + 60
            while len(sent) < target and time.monotonic() < deadline:
                time.sleep(0.02)
            _rotate(config_file, state)
        time.sleep(0.5)  # requests in flight land before the last count
    finally:
        stop.set()
        thread.join(timeout=30)
    logged = [
        int(match[1])
        for line in _read_all(nginx_logs, "access.log")
        if (match := re.search(r"GET /r/(\d+) ", line))
    ]
    assert len(list(nginx_logs.glob("access.log.*"))) == 3
    assert sorted(logged) == sent
