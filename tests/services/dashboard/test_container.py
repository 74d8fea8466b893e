"""The dashboard container: its nginx config on the host's nginx, and the image on the engine.

Both check what the browser relies on: client routes load the app shell, the shell is never
cached, hashed assets are cached for good, a missing asset is a 404 (not the shell).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "services" / "dashboard"
ASSET = "assets/index-Ab12Cd34.js"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def _wait(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _get(url)
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout:.0f} s")


def _fake_dist(folder: Path) -> Path:
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text("<!doctype html><title>shell</title>", encoding="utf-8")
    (folder / ASSET).write_text("console.log('app');", encoding="utf-8")
    (folder / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    return folder


def _check_spa_serving(base: str) -> None:
    for path in ("/", "/tickets", "/terminals", "/login", "/index.html"):
        status, headers, body = _get(base + path)
        assert status == 200, path
        assert b"<title>shell</title>" in body, path
        assert headers.get("Cache-Control") == "no-cache", (path, headers)
    status, headers, body = _get(f"{base}/{ASSET}")
    assert status == 200
    assert body == b"console.log('app');"
    assert "javascript" in headers["Content-Type"]
    assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
    status, headers, body = _get(f"{base}/assets/index-missing.js")
    assert status == 404
    assert b"shell" not in body
    status, headers, _ = _get(f"{base}/favicon.svg")
    assert status == 200
    assert headers["Content-Type"].startswith("image/svg+xml")


@pytest.fixture
def host_nginx(tmp_path: Path) -> Iterator[str]:
    """services/dashboard/nginx/default.conf on the host's nginx, on a free loopback port."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is not installed: apt-get install -y nginx")
    dist = _fake_dist(tmp_path / "html")
    port = _free_port()
    server = (DASHBOARD / "nginx" / "default.conf").read_text(encoding="utf-8")
    server = re.sub(r"^\s*listen \[::\]:3000.*$", "", server, flags=re.M)
    server = server.replace("listen 3000 default_server;", f"listen 127.0.0.1:{port};")
    server = server.replace("root /usr/share/nginx/html;", f"root {dist};")
    assert f"127.0.0.1:{port}" in server and str(dist) in server, "default.conf changed shape"
    user = "user root;" if os.geteuid() == 0 else ""
    temp = " ".join(
        f"{kind}_temp_path {tmp_path}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = tmp_path / "nginx.conf"
    config.write_text(
        f"daemon off; worker_processes 1; pid {tmp_path}/nginx.pid; {user}\n"
        f"error_log {tmp_path}/error.log warn;\nevents {{}}\n"
        f"http {{ include /etc/nginx/mime.types; access_log off; {temp}\n{server}\n}}\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-c", str(config)], start_new_session=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(base + "/")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_nginx_config_serves_the_single_page_app(host_nginx: str) -> None:
    _check_spa_serving(host_nginx)


def _docker_client() -> Any:
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as error:  # any failure means "no engine here"
        pytest.skip(f"no Docker engine answers ({error})")
    return client


def test_image_serves_dist_and_reports_healthy(tmp_path: Path) -> None:
    client = _docker_client()
    from aiwf.engine.base_images import ensure_base_image

    base_image = ensure_base_image(client, "nginx")
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy(DASHBOARD / "Dockerfile", context / "Dockerfile")
    shutil.copytree(DASHBOARD / "nginx", context / "nginx")
    _fake_dist(context / "dist")
    tag = f"aiwf-dashboard-test:{uuid.uuid4().hex[:12]}"
    container = None
    try:
        client.images.build(
            path=str(context), tag=tag, buildargs={"BASE_IMAGE": base_image}, rm=True
        )
        container = client.containers.run(tag, detach=True, ports={"3000/tcp": ("127.0.0.1", None)})
        deadline = time.monotonic() + 120
        health = "starting"
        while time.monotonic() < deadline:
            container.reload()
            health = container.attrs["State"].get("Health", {}).get("Status", "none")
            if health in ("healthy", "unhealthy") or container.status == "exited":
                break
            time.sleep(1)
        assert health == "healthy", container.logs().decode(errors="replace")
        port = container.attrs["NetworkSettings"]["Ports"]["3000/tcp"][0]["HostPort"]
        _check_spa_serving(f"http://127.0.0.1:{port}")
    finally:
        if container is not None:
            container.remove(force=True)
        # The build may have failed before tagging.
        with contextlib.suppress(Exception):
            client.images.remove(tag, force=True)
