"""Let's Encrypt through the stack's own nginx: a real ACME server (pebble) validates HTTP-01.

A stack with ``tls.mode: letsencrypt`` comes up with ``aiwf up`` (self-signed at first). pebble
resolves every name to 127.0.0.1 and validates on the stack's published HTTP port, so each
challenge is answered by the nginx rendered from ``templates/nginx.conf.j2``, which serves the
webroot certbot writes. After issuance and after a forced renewal the certificate that nginx
serves is checked, and nginx's access log shows pebble's challenge requests.
"""

from __future__ import annotations

import json
import re
import secrets
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

pytestmark = [pytest.mark.engine, pytest.mark.e2e]

DOMAIN = "ai.example.com"
EMAIL = "ops@example.com"
CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
#: A challenge nginx answered to pebble's validator, in its access log ("combined" format).
ANSWERED_CHALLENGE = re.compile(
    r'"GET /\.well-known/acme-challenge/([\w-]+) HTTP/1\.[01]" 200 \d+ '
    r'"[^"]*" "LetsEncrypt-Pebble-VA'
)


@pytest.fixture(scope="module")
def letsencrypt_stack(
    engine_available: None, tmp_path_factory: pytest.TempPathFactory, stack_factory: Any
) -> Iterator[Any]:
    settings = {"domains": [DOMAIN], "tls": {"mode": "letsencrypt", "email": EMAIL}}
    yield from stack_factory(tmp_path_factory.mktemp("letsencrypt"), settings)


@pytest.fixture(scope="module")
def pebble(
    letsencrypt_stack: Any, acme_server_factory: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """pebble validating HTTP-01 on the port the stack's nginx publishes for plain HTTP."""
    http_port = int(letsencrypt_stack.settings["ports"]["http"])
    with acme_server_factory(tmp_path_factory.mktemp("pebble"), http_port) as server:
        yield server


def _served_certificate(port: int) -> x509.Certificate:
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=10)
    return x509.load_pem_x509_certificate(pem.encode())


def _wait_until_served(port: int, serial: int, timeout: float = 60) -> x509.Certificate:
    """The certificate nginx serves, once it is ``serial``: a reload is graceful, not instant."""
    deadline = time.monotonic() + timeout
    while True:
        served = _served_certificate(port)
        if served.serial_number == serial or time.monotonic() > deadline:
            return served
        time.sleep(0.2)


def _answered_tokens(stack: Any) -> list[str]:
    """Tokens of the challenges pebble fetched from the stack's nginx (its access log)."""
    log = stack.data_dir / "logs" / "nginx" / "access.log"
    text = log.read_text() if log.exists() else ""
    return ANSWERED_CHALLENGE.findall(text)


def _new_answers(stack: Any, before: list[str], timeout: float = 30) -> list[str]:
    """Challenge tokens nginx answered since ``before`` (nginx writes its log as it goes)."""
    deadline = time.monotonic() + timeout
    while True:
        fresh = [token for token in _answered_tokens(stack) if token not in before]
        if fresh or time.monotonic() > deadline:
            return fresh
        time.sleep(0.2)


def _certificate_on_disk(stack: Any) -> x509.Certificate:
    certs_dir = Path(stack.settings["paths"]["certs_dir"])
    return x509.load_pem_x509_certificate((certs_dir / "fullchain.pem").read_bytes())


def _issuer(certificate: x509.Certificate) -> str:
    return certificate.issuer.rfc4514_string()


def test_plain_http_serves_challenges_and_redirects_the_rest(letsencrypt_stack: Any) -> None:
    stack = letsencrypt_stack
    http = f"http://127.0.0.1:{stack.settings['ports']['http']}"
    challenges = stack.data_dir / "acme-webroot" / ".well-known" / "acme-challenge"
    challenges.mkdir(parents=True, exist_ok=True)
    token = f"probe{secrets.token_hex(8)}"
    (challenges / token).write_text("probe-answer")
    try:
        with httpx.Client(base_url=http, headers={"Host": DOMAIN}, timeout=30) as client:
            served = client.get(f"{CHALLENGE_PREFIX}{token}")
            missing = client.get(f"{CHALLENGE_PREFIX}no-such-token-{secrets.token_hex(4)}")
            elsewhere = client.get("/api/sessions?x=1")
            health = client.get("/health")
    finally:
        (challenges / token).unlink()
    assert (served.status_code, served.text) == (200, "probe-answer")
    assert served.headers["content-type"].startswith("text/plain")
    assert missing.status_code == 404
    assert elsewhere.status_code == 301
    assert elsewhere.headers["location"] == f"https://{DOMAIN}:{stack.https_port}/api/sessions?x=1"
    assert (health.status_code, health.text) == (200, "healthy")


def test_issue_and_renew_through_the_stacks_nginx(letsencrypt_stack: Any, pebble: Any) -> None:
    stack = letsencrypt_stack
    acme = ["--server", pebble.directory, "--no-verify-ssl"]
    first = _served_certificate(stack.https_port)
    assert first.issuer == first.subject, "aiwf up starts nginx with a self-signed certificate"

    before_issue = _answered_tokens(stack)
    issued = stack.aiwf("certs", "letsencrypt", "--email", EMAIL, *acme)
    assert "nginx reloaded" in " ".join(issued.stdout.split()), issued.stdout
    assert _new_answers(stack, before_issue), "pebble's HTTP-01 requests never reached nginx"

    on_disk = _certificate_on_disk(stack)
    assert "Pebble" in _issuer(on_disk)
    san = on_disk.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [DOMAIN]
    served = _wait_until_served(stack.https_port, on_disk.serial_number)
    assert served.serial_number == on_disk.serial_number
    assert "Pebble" in _issuer(served)
    key = Path(stack.settings["paths"]["certs_dir"]) / "privkey.pem"
    assert key.stat().st_mode & 0o777 == 0o600

    before_renew = _answered_tokens(stack)
    renewed = stack.aiwf("certs", "renew", "--force", "--now", *acme)
    assert "renewed" in renewed.stdout, renewed.stdout
    assert _new_answers(stack, before_renew), "the renewal was not validated through nginx"
    renewed_on_disk = _certificate_on_disk(stack)
    assert renewed_on_disk.serial_number != served.serial_number
    after = _wait_until_served(stack.https_port, renewed_on_disk.serial_number)
    assert after.serial_number == renewed_on_disk.serial_number, "the deploy hook left nginx"
    assert key.stat().st_mode & 0o777 == 0o600

    report = json.loads(stack.aiwf("certs", "status", "--json").stdout)
    assert "Pebble" in report["issuer"]
    assert report["names"] == [DOMAIN]
    assert report["missing_names"] == ["localhost", "127.0.0.1"]
    assert report["days_left"] > 1
    assert report["path"] == str(Path(stack.settings["paths"]["certs_dir"]) / "fullchain.pem")
