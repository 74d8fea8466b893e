"""``aiwf up`` against ``docker-compose up -d`` (Debian's 1.29.2) on the same stack, same run.

Two stacks of identical settings and images run side by side: A is managed by ``aiwf``, B by
``docker-compose`` on the compose file ``aiwf`` renders for it. Measured:

- cold: from no containers (images present) until every container is healthy;
- no-op: the stack is up and nothing changed; the command must find that out and exit.

Run as root on a host with a Docker engine:  ``.venv/bin/python bench/engine/bench_up.py``
(``--noop-runs 21 --cold-runs 3`` are the defaults). Prints one JSON document with medians.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
AIWF = str(Path(sys.executable).parent / "aiwf")
COMPOSE = shutil.which("docker-compose") or "docker-compose"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def settings(folder: Path, project: str) -> dict[str, Any]:
    return {
        "project": project,
        "ports": {"bind": "127.0.0.1", "http": free_port(), "https": free_port()},
        "paths": {
            "data_dir": str(folder / "data"),
            "tmux_socket_dir": str(folder / "tmux"),
            "home": str(folder / "home"),
            "certs_dir": str(folder / "certs"),
        },
    }


def write_inventory(folder: Path, data: dict[str, Any]) -> Path:
    path = folder / "inventory.py"
    path.write_text(f"hosts = [('@local', {{'aiwf': {data!r}}})]\n")
    return path


#: Both commands are Python programs; run them as installed ones run, with their bytecode cached
#: (this host's shells set PYTHONDONTWRITEBYTECODE, which would recompile aiwf on every call).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(command: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, env=ENV)
    return time.perf_counter() - start


def wait_healthy(project: str, count: int, started: float) -> float:
    """Seconds from ``started`` until ``count`` containers of ``project`` report healthy."""
    from aiwf.engine.docker_client import connect

    client = connect()
    while True:
        items = client.api.containers(filters={"label": f"aiwf.project={project}"})
        healthy = [i for i in items if "(healthy)" in i.get("Status", "")]
        if len(healthy) >= count:
            return time.perf_counter() - started
        if time.perf_counter() - started > 600:
            raise SystemExit(f"{project}: not healthy after 600 s")
        time.sleep(0.2)


def prepare_compose_stack(inventory: Path) -> Path:
    """Images tagged, host folders, secrets and certificate made, files rendered: for compose."""
    from aiwf.config import load_config
    from aiwf.engine.build import build_images
    from aiwf.engine.docker_client import connect
    from aiwf.engine.host import prepare_host
    from aiwf.render import render_all, write_rendered
    from aiwf.stack import rendered_dir

    config = load_config(inventory)
    build_images(connect(), config)
    prepare_host(config)
    write_rendered(render_all(config), Path(rendered_dir(config)))
    return Path(rendered_dir(config))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--noop-runs", type=int, default=21)
    parser.add_argument("--cold-runs", type=int, default=3)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="aiwf-bench-"))
    suffix = secrets.token_hex(3)
    stack_a, stack_b = work / "a", work / "b"
    stack_a.mkdir()
    stack_b.mkdir()
    inv_a = write_inventory(stack_a, settings(stack_a, f"benchaiwf{suffix}"))
    project_b = f"benchcompose{suffix}"
    inv_b = write_inventory(stack_b, settings(stack_b, project_b))
    services = 4
    result: dict[str, Any] = {
        "docker_compose": subprocess.run(
            [COMPOSE, "version", "--short"], capture_output=True, text=True
        ).stdout.strip()
    }
    try:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "aiwf")], check=True)
        subprocess.run([AIWF, "-i", str(inv_a), "build"], check=True, capture_output=True)
        rendered_b = prepare_compose_stack(inv_b)
        compose = [COMPOSE, "-p", project_b, "-f", str(rendered_b / "compose.yaml")]
        cold_aiwf, cold_compose = [], []
        for _ in range(options.cold_runs):
            start = time.perf_counter()
            subprocess.run([AIWF, "-i", str(inv_a), "up"], check=True, capture_output=True)
            cold_aiwf.append(wait_healthy(f"benchaiwf{suffix}", services, start))
            start = time.perf_counter()
            subprocess.run([*compose, "up", "-d"], check=True, capture_output=True)
            cold_compose.append(wait_healthy(project_b, services, start))
            if _ != options.cold_runs - 1:
                subprocess.run([AIWF, "-i", str(inv_a), "down"], check=True, capture_output=True)
                subprocess.run([*compose, "down"], check=True, capture_output=True)
        noop_aiwf, noop_compose = [], []
        for _ in range(options.noop_runs):
            noop_aiwf.append(timed([AIWF, "-i", str(inv_a), "up"]))
            noop_compose.append(timed([*compose, "up", "-d"]))
        result.update(
            {
                "noop_runs": options.noop_runs,
                "noop_aiwf_median_s": round(statistics.median(noop_aiwf), 3),
                "noop_compose_median_s": round(statistics.median(noop_compose), 3),
                "noop_ratio_aiwf_over_compose": round(
                    statistics.median(noop_aiwf) / statistics.median(noop_compose), 3
                ),
                "cold_runs": options.cold_runs,
                "cold_aiwf_median_s": round(statistics.median(cold_aiwf), 2),
                "cold_compose_median_s": round(statistics.median(cold_compose), 2),
                "cold_ratio_aiwf_over_compose": round(
                    statistics.median(cold_aiwf) / statistics.median(cold_compose), 3
                ),
                "load_average": os.getloadavg()[0],
            }
        )
        print(json.dumps(result, indent=2))
    finally:
        subprocess.run([AIWF, "-i", str(inv_a), "down", "--volumes", "--yes"], capture_output=True)
        subprocess.run(
            [
                COMPOSE,
                "-p",
                project_b,
                "-f",
                str(stack_b / "data" / "rendered" / "compose.yaml"),
                "down",
                "-v",
            ],
            capture_output=True,
        )
        for folder in (stack_a, stack_b):
            subprocess.run(
                ["tmux", "-S", str(folder / "tmux" / "default"), "kill-server"], capture_output=True
            )
        from aiwf.engine.docker_client import connect

        client = connect()
        for project in (f"benchaiwf{suffix}", project_b):
            for image in client.api.images(name=f"{project}-*"):
                for tag in image.get("RepoTags") or ():
                    client.api.remove_image(tag, noprune=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
