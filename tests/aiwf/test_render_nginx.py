"""The rendered nginx.conf: accepted by a real ``nginx -t``, and routing as the design says when a
real nginx runs it in front of real stand-in servers."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from aiwf.config import StackConfig

COOKIE = {"Cookie": "aiwf_session=valid-session"}
ORCHESTRATOR_PATHS = [
    "/api/pending-tickets",
    "/api/active-tickets",
    "/api/completed-tickets",
    "/api/approve/PROJ-7",
    "/api/reject/PROJ-7",
    "/api/retry/PROJ-7",
    "/api/tickets/PROJ-7",
]

Check = Callable[[StackConfig], tuple[subprocess.CompletedProcess[str], str]]


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"speech": {"mode": "local"}}, id="all-services-on"),
        pytest.param({"speech": {"mode": "off"}}, id="speech-off"),
        pytest.param(
            {"speech": {"mode": "remote", "url": "https://gpu.example.com:8443/stt"}},
            id="speech-remote",
        ),
        pytest.param(
            {"speech": {"mode": "local"}, "services": {"whisper": {"port": 9000}}},
            id="speech-local",
        ),
        pytest.param(
            {
                "domains": ["ai.example.com", "www.example.com"],
                "tls": {"mode": "letsencrypt", "email": "ops@example.com"},
            },
            id="letsencrypt",
        ),
    ],
)
def test_nginx_accepts_the_rendered_config(
    settings: dict[str, Any], make_config: Callable[..., StackConfig], check_nginx: Check
) -> None:
    result, _ = check_nginx(make_config(settings))
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_upstream_names_need_no_dns_at_start(
    make_config: Callable[..., StackConfig], check_nginx: Check
) -> None:
    """Service names resolve per request: nginx -t passes though no such host exists here."""
    config = make_config({"speech": {"mode": "remote", "url": "http://no-such-host.invalid:8000"}})
    result, text = check_nginx(config)
    assert result.returncode == 0, result.stderr
    assert "set $whisper http://no-such-host.invalid:8000;" in text


def test_hsts_only_with_a_trusted_certificate(
    make_config: Callable[..., StackConfig], check_nginx: Check
) -> None:
    _, self_signed = check_nginx(make_config())
    _, trusted = check_nginx(
        make_config(
            {"domains": ["ai.example.com"], "tls": {"mode": "letsencrypt", "email": "a@b.example"}}
        )
    )
    assert "Strict-Transport-Security" not in self_signed
    assert 'add_header Strict-Transport-Security "max-age=63072000" always;' in trusted
    assert "server_name ai.example.com;" in trusted


def test_stack_context_uses_docker_dns_and_service_names(
    make_config: Callable[..., StackConfig],
) -> None:
    from aiwf.render import render_all

    text = render_all(make_config({"speech": {"mode": "local"}}))["nginx.conf"]
    assert "resolver 127.0.0.11 valid=10s ipv6=off;" in text
    for upstream in (
        "http://tmux-sessions:5001",
        "http://orchestrator:5002",
        "http://dashboard:3000",
        "http://whisper:8000",
    ):
        assert upstream in text
    assert "ssl_certificate /etc/nginx/certs/fullchain.pem;" in text
    assert "root /var/www/acme;" in text
    assert "access_log /var/log/nginx/access.log;" in text


# --- a running nginx ------------------------------------------------------------------------


def _client(nginx: Any) -> httpx.Client:
    return httpx.Client(verify=False, timeout=30, follow_redirects=False)


def test_orchestrator_paths_win_over_the_general_api_rule(run_nginx: Callable[..., Any]) -> None:
    nginx = run_nginx()
    with _client(nginx) as client:
        for path in ORCHESTRATOR_PATHS:
            answer = client.get(nginx.https + path + "?page=2", headers=COOKIE)
            assert answer.status_code == 200, path
            assert answer.json() == {
                "upstream": "orchestrator",
                "method": "GET",
                "path": path,
                "query": "page=2",
            }
        other = client.get(nginx.https + "/api/users", headers=COOKIE)
        assert other.json()["upstream"] == "tmux-sessions"


def test_orchestrator_prefix_is_stripped(run_nginx: Callable[..., Any]) -> None:
    nginx = run_nginx()
    with _client(nginx) as client:
        health = client.get(nginx.https + "/api/orchestrator/health", headers=COOKIE)
        metrics = client.get(nginx.https + "/api/orchestrator/metrics", headers=COOKIE)
    assert health.json()["upstream"] == "orchestrator"
    assert health.json()["path"] == "/health"
    assert metrics.json()["path"] == "/metrics"


def test_api_needs_a_login_checked_by_tmux_sessions(run_nginx: Callable[..., Any]) -> None:
    nginx = run_nginx()
    with _client(nginx) as client:
        refused = client.get(nginx.https + "/api/sessions")
        refused_orchestrator = client.post(nginx.https + "/api/approve/PROJ-1")
        allowed = client.get(nginx.https + "/api/sessions?all=1", headers=COOKIE)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "not authenticated"}
    assert refused_orchestrator.status_code == 401
    assert not [
        r for r in nginx.upstreams["orchestrator"].requests if r["path"].startswith("/api/approve")
    ]
    assert allowed.status_code == 200
    assert allowed.json()["upstream"] == "tmux-sessions"
    assert allowed.json()["path"] == "/api/sessions"
    checks = [
        r for r in nginx.upstreams["tmux-sessions"].requests if r["path"] == "/api/auth/check"
    ]
    assert checks, "the auth subrequest never reached tmux-sessions"
    last = checks[-1]
    assert last["headers"]["x-original-uri"] == "/api/sessions?all=1"
    assert "aiwf_session=valid-session" in last["headers"]["cookie"]
    assert last["body_length"] == 0


def test_public_routes_need_no_login(run_nginx: Callable[..., Any]) -> None:
    nginx = run_nginx()
    with _client(nginx) as client:
        login = client.post(
            nginx.https + "/api/auth/login", json={"username": "a", "password": "b"}
        )
        spa = client.get(nginx.https + "/assets/index.js")
        health = client.get(nginx.https + "/health")
        webhook = client.post(nginx.https + "/api/webhooks/plane", content=b"{}")
        logout = client.post(nginx.https + "/api/auth/logout")
    assert login.status_code == 200
    assert login.json() == {
        "upstream": "tmux-sessions",
        "method": "POST",
        "path": "/api/auth/login",
        "query": "",
    }
    assert spa.json()["upstream"] == "dashboard"
    assert spa.json()["path"] == "/assets/index.js"
    assert health.status_code == 200
    assert health.text == "healthy"
    assert webhook.json()["upstream"] == "orchestrator"
    assert logout.status_code == 401  # only login is public under /api/auth/


def test_security_headers_and_no_permissive_cors(run_nginx: Callable[..., Any]) -> None:
    nginx = run_nginx()
    with _client(nginx) as client:
        answer = client.get(
            nginx.https + "/api/sessions",
            headers={**COOKIE, "Origin": "https://evil.example.com"},
        )
    assert answer.status_code == 200
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    policy = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert f"connect-src 'self' wss://127.0.0.1:{nginx.https_port};" in policy
    assert "strict-transport-security" not in answer.headers  # self-signed
    assert "access-control-allow-origin" not in answer.headers
    forwarded = nginx.upstreams["tmux-sessions"].requests[-1]["headers"]
    assert forwarded["x-forwarded-proto"] == "https"
    assert forwarded["origin"] == "https://evil.example.com"  # the service decides about origins


def test_plain_http_redirects_but_serves_health_and_acme(run_nginx: Callable[..., Any]) -> None:
    nginx = run_nginx()
    challenge = nginx.acme_webroot / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True)
    (challenge / "token-123").write_text("token-123.thumbprint")
    with _client(nginx) as client:
        moved = client.get(nginx.http + "/api/sessions?x=1")
        health = client.get(nginx.http + "/health")
        served = client.get(nginx.http + "/.well-known/acme-challenge/token-123")
        missing = client.get(nginx.http + "/.well-known/acme-challenge/absent")
    assert moved.status_code == 301
    assert moved.headers["location"] == f"https://127.0.0.1:{nginx.https_port}/api/sessions?x=1"
    assert health.status_code == 200
    assert health.text == "healthy"
    assert served.status_code == 200
    assert served.text == "token-123.thumbprint"
    assert missing.status_code == 404


def test_body_size_limits_come_from_the_config(run_nginx: Callable[..., Any]) -> None:
    nginx = run_nginx({"services": {"nginx": {"api_max_body_size": "1k"}}})
    with _client(nginx) as client:
        small = client.post(nginx.https + "/api/sessions", headers=COOKIE, content=b"x" * 512)
        large = client.post(nginx.https + "/api/sessions", headers=COOKIE, content=b"x" * 4096)
        login = client.post(nginx.https + "/api/auth/login", content=b"x" * (16 * 1024))
    assert small.status_code == 200
    assert large.status_code == 413
    assert login.status_code == 413  # the public login reads no more than 8k, whatever is set


def _tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def test_websocket_upgrade_through_ws_sessions(run_nginx: Callable[..., Any]) -> None:
    nginx = run_nginx()
    url = f"wss://127.0.0.1:{nginx.https_port}/ws/sessions/abc123"
    async with websockets.connect(url, ssl=_tls(), additional_headers=COOKIE) as socket:
        assert await socket.recv() == "tmux-sessions attached sessions/abc123"
        await socket.send(json.dumps({"type": "input", "data": "ls\n"}))
        assert await socket.recv() == 'echo: {"type": "input", "data": "ls\\n"}'
        await socket.send(b"\x00raw")
        assert await socket.recv() == b"echo: \x00raw"


async def test_websocket_needs_a_login(run_nginx: Callable[..., Any]) -> None:
    nginx = run_nginx()
    url = f"wss://127.0.0.1:{nginx.https_port}/ws/sessions/abc123"
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url, ssl=_tls()):
            pass
    assert refused.value.response.status_code == 401


def test_speech_off_answers_503(run_nginx: Callable[..., Any]) -> None:
    nginx = run_nginx({"speech": {"mode": "off"}})
    with _client(nginx) as client:
        answer = client.post(nginx.https + "/api/whisper/transcribe", headers=COOKIE)
        probe = client.get(nginx.https + "/api/whisper/health", headers=COOKIE)
    assert answer.status_code == 503
    assert answer.json() == {"detail": "speech-to-text is off"}
    # The dashboard's probe gets a plain answer, so no failed request shows in the browser.
    assert probe.status_code == 200
    assert probe.json() == {"status": "off"}
    assert not nginx.upstreams["whisper"].requests


def test_speech_local_goes_to_the_whisper_container(run_nginx: Callable[..., Any]) -> None:
    nginx = run_nginx({"speech": {"mode": "local"}})
    with _client(nginx) as client:
        answer = client.post(
            nginx.https + "/api/whisper/transcribe", headers=COOKIE, content=b"RIFF" + b"\0" * 2048
        )
        refused = client.post(nginx.https + "/api/whisper/transcribe")
    assert answer.json()["upstream"] == "whisper"
    assert answer.json()["path"] == "/api/whisper/transcribe"
    assert nginx.upstreams["whisper"].requests[-1]["body_length"] == 2052
    assert refused.status_code == 401


def test_speech_remote_goes_to_the_configured_url(run_nginx: Callable[..., Any]) -> None:
    nginx = run_nginx({"speech": {"mode": "remote", "url": "http://{remote}/stt"}})
    with _client(nginx) as client:
        answer = client.post(nginx.https + "/api/whisper/transcribe?lang=en", headers=COOKIE)
    assert answer.json() == {
        "upstream": "remote",
        "method": "POST",
        "path": "/stt/api/whisper/transcribe",
        "query": "lang=en",
    }
    assert nginx.upstreams["remote"].requests[-1]["headers"]["host"] == "127.0.0.1"
    assert not nginx.upstreams["whisper"].requests


def test_access_log_is_written(run_nginx: Callable[..., Any]) -> None:
    nginx = run_nginx()
    with _client(nginx) as client:
        client.get(nginx.https + "/assets/app.css")
    log = Path(nginx.log_dir / "access.log")
    # nginx logs a request after it has answered it: wait for the line, a while at most.
    deadline = time.monotonic() + 30
    while "/assets/app.css" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "/assets/app.css" in log.read_text()
