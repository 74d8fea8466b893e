"""Let's Encrypt flow against a real ACME server (Debian's pebble), through a real nginx.

pebble-challtestsrv answers every DNS name with 127.0.0.1; pebble validates HTTP-01 on the port
the nginx container publishes, where nginx serves certbot's webroot. After issuance and after a
forced renewal, the certificate nginx serves is checked: the deploy hook must have reloaded it.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from aiwf import certs
from aiwf.config import StackConfig, validate

from .conftest import cleanup_project, write_inventory

pytestmark = [
    pytest.mark.engine,
    pytest.mark.skipif(shutil.which("pebble") is None, reason="apt-get install -y pebble"),
]

DOMAIN = "ai.example.com"
NGINX_CONF = """
worker_processes 1;
error_log stderr;
pid /run/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    server {
        listen 80;
        location /.well-known/acme-challenge/ { root /var/www/acme; }
        location / { return 301 https://$host$request_uri; }
    }
    server {
        listen 443 ssl;
        ssl_certificate /etc/nginx/certs/fullchain.pem;
        ssl_certificate_key /etc/nginx/certs/privkey.pem;
        location / { return 200 "ok"; }
    }
}
"""


AIWF = [sys.executable, "-c", "from aiwf.cli.main import main; main()"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not come up")
        time.sleep(0.1)


def _served_certificate(port: int) -> x509.Certificate:
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=5)
    return x509.load_pem_x509_certificate(pem.encode())


@pytest.fixture
def acme_server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """pebble + its DNS test server on free loopback ports; (directory URL, HTTP-01 port)."""
    work = tmp_path / "pebble"
    certs.create_self_signed(work, ["localhost", "127.0.0.1"])
    dns_port, http_port, acme_port = _free_port(), _free_port(), _free_port()
    challenge = subprocess.Popen(
        [
            "pebble-challtestsrv",
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
            "-dns01",
            f"127.0.0.1:{dns_port}",
            "-http01",
            f"127.0.0.1:{_free_port()}",
            "-tlsalpn01",
            f"127.0.0.1:{_free_port()}",
            "-https01",
            f"127.0.0.1:{_free_port()}",
            "-management",
            f"127.0.0.1:{_free_port()}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{acme_port}",
            "managementListenAddress": f"127.0.0.1:{_free_port()}",
            "certificate": str(work / "fullchain.pem"),
            "privateKey": str(work / "privkey.pem"),
            "httpPort": http_port,
            "tlsPort": _free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (work / "pebble.json").write_text(json.dumps(config))
    log = (work / "pebble.log").open("wb")
    pebble = subprocess.Popen(
        ["pebble", "-config", str(work / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns_port}"],
        env={"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PATH": "/usr/bin:/bin"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    directory = f"https://127.0.0.1:{acme_port}/dir"
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    try:
        _wait(
            lambda: urllib.request.urlopen(directory, context=insecure, timeout=2).status == 200,
            "pebble",
        )
        yield directory, http_port
    finally:
        for process in (pebble, challenge):
            process.terminate()
            process.wait(timeout=10)
        log.close()


@pytest.fixture
def nginx_stack(
    docker_client: Any, base_image: str, tmp_path: Path, acme_server: tuple[str, int]
) -> Iterator[tuple[StackConfig, Path, int, Any]]:
    """The stack's nginx container: challenge webroot on port 80 (pebble's HTTP-01 port), TLS."""
    _, http_port = acme_server
    project = f"aiwfops-acme-{int(time.time() * 1000) % 10**8}"
    root = tmp_path / "stack"
    settings = {
        "project": project,
        "domains": [DOMAIN],
        "tls": {"mode": "letsencrypt", "email": "ops@example.com"},
        "paths": {"data_dir": str(root / "data"), "certs_dir": str(root / "certs")},
    }
    config = validate(settings)
    certs.ensure_self_signed(config)
    webroot = config.paths.data_dir / certs.ACME_WEBROOT
    webroot.mkdir(parents=True)
    conf_dir = root / "nginx"
    conf_dir.mkdir()
    (conf_dir / "nginx.conf").write_text(NGINX_CONF)
    https_port = _free_port()
    container = docker_client.containers.run(
        base_image,
        ["nginx", "-c", "/etc/aiwf-test/nginx.conf", "-g", "daemon off;"],
        name=config.container_name("nginx"),
        labels={"aiwf.project": project, "aiwf.service": "nginx"},
        volumes={
            str(conf_dir): {"bind": "/etc/aiwf-test", "mode": "ro"},
            str(config.paths.certs_dir): {"bind": "/etc/nginx/certs", "mode": "ro"},
            str(webroot): {"bind": certs.ACME_WEBROOT_IN_CONTAINER, "mode": "ro"},
        },
        ports={"80/tcp": ("127.0.0.1", http_port), "443/tcp": ("127.0.0.1", https_port)},
        detach=True,
    )
    try:
        _wait(lambda: _served_certificate(https_port) is not None, "nginx")
        yield config, write_inventory(tmp_path, settings), https_port, container
    finally:
        cleanup_project(docker_client, project)


def _aiwf(inventory: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AIWF, "-i", str(inventory), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_issue_and_renew_through_nginx(
    acme_server: tuple[str, int], nginx_stack: tuple[StackConfig, Path, int, Any]
) -> None:
    directory, _ = acme_server
    config, inventory, https_port, _container = nginx_stack
    self_signed = _served_certificate(https_port)
    assert self_signed.issuer == self_signed.subject

    acme = ["--server", directory, "--no-verify-ssl"]
    issued = _aiwf(inventory, "certs", "letsencrypt", "--email", "ops@example.com", *acme)
    assert issued.returncode == 0, issued.stderr
    assert "nginx reloaded" in " ".join(issued.stdout.split())

    status = certs.certificate_status(config)
    assert "Pebble" in status.issuer
    assert DOMAIN in status.names
    served = _served_certificate(https_port)
    assert "Pebble" in served.issuer.rfc4514_string()
    key_mode = (config.paths.certs_dir / certs.KEY_FILE).stat().st_mode & 0o777  # type: ignore[operator]
    assert key_mode == 0o600

    renewed = _aiwf(inventory, "certs", "renew", "--force", "--now", *acme)
    assert renewed.returncode == 0, renewed.stderr
    assert "renewed" in renewed.stdout
    after = _served_certificate(https_port)
    assert after.serial_number != served.serial_number  # the deploy hook reloaded nginx
    on_disk = x509.load_pem_x509_certificate(
        (config.paths.certs_dir / certs.CERT_FILE).read_bytes()  # type: ignore[operator]
    )
    assert on_disk.serial_number == after.serial_number

    report = _aiwf(inventory, "certs", "status", "--json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["missing_names"] == ["localhost", "127.0.0.1"]
