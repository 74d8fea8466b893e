"""The HTTP API against the real service process, a real tmux server and real HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

TOKEN = "service-token-for-tests-0123456789"
PASSWORD = "bootstrap-password-1"
ORIGIN = "https://aiwf.test"


def eventually(check: Callable[[], bool], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def pane_text(service: Any, target: str) -> str:
    return str(service.tmux("capture-pane", "-p", "-t", target + ":").stdout)


def ended(service: Any, session_id: str) -> dict[str, Any]:
    """The session as the API shows it once it is no longer alive (each look is a listing,
    which is what ends a finished session)."""
    with service.token_client() as client:
        assert eventually(lambda: not client.get(f"/api/sessions/{session_id}").json()["alive"])
        session: dict[str, Any] = client.get(f"/api/sessions/{session_id}").json()
    return session


def tmux_session_names(service: Any) -> list[str]:
    return str(service.tmux("list-sessions", "-F", "#{session_name}").stdout).split()


# --- health --------------------------------------------------------------------------------


def test_health_ok_without_any_session(service: Any) -> None:
    response = httpx.get(service.base_url + "/health")
    assert response.status_code == 200
    assert response.text == "OK"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("setting", "value", "reason"),
    [
        ("TMUX_SESSIONS_TMUX_BINARY", "/nonexistent/tmux", "does not answer"),
        ("TMUX_SESSIONS_TMUX_SOCKET", "{root}/a-file/sock", "does not exist"),
    ],
)
def test_health_503_when_tmux_cannot_be_used(
    service_root: Path, service_factory: Any, setting: str, value: str, reason: str
) -> None:
    (service_root / "a-file").write_text("not a directory")
    broken = service_factory(service_root, {setting: value.format(root=service_root)})
    response = httpx.get(broken.base_url + "/health")
    assert response.status_code == 503
    assert reason in response.text


def test_socket_directory_is_created_like_tmux_does(
    service_root: Path, service_factory: Any
) -> None:
    socket = service_root / "fresh" / "tmux-1000" / "default"
    running = service_factory(service_root, {"TMUX_SESSIONS_TMUX_SOCKET": str(socket)})
    try:
        assert httpx.get(running.base_url + "/health").status_code == 200
        assert (socket.parent.stat().st_mode & 0o777) == 0o700
        with running.token_client() as client:
            assert client.post("/api/sessions", json={"command": "sleep 60"}).status_code == 201
        assert socket.is_socket()
    finally:
        subprocess.run(["tmux", "-S", str(socket), "kill-server"], capture_output=True)


# --- login and the auth check --------------------------------------------------------------


def test_login_sets_a_strict_http_only_cookie(service: Any) -> None:
    with service.client() as client:
        response = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        assert response.status_code == 204
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("aiwf_session=")
        for attribute in ("HttpOnly", "SameSite=strict", "Max-Age=43200", "Path=/"):
            assert attribute in cookie
        assert client.get("/api/auth/check").status_code == 204
        assert client.get("/api/auth/me").json() == {"username": "admin"}
        assert client.get("/api/sessions").status_code == 200
        assert client.post("/api/auth/logout").status_code == 204
        assert client.get("/api/auth/check").status_code == 401


def test_cookie_is_secure_by_default(service_root: Path, service_factory: Any) -> None:
    running = service_factory(service_root, {"TMUX_SESSIONS_COOKIE_SECURE": "true"})
    with running.client() as client:
        response = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
    assert response.status_code == 204
    attributes = [part.strip() for part in response.headers["set-cookie"].split(";")]
    assert {"Secure", "HttpOnly", "SameSite=strict"} <= set(attributes)


def test_check_refuses_anonymous_and_bad_credentials(service: Any) -> None:
    with service.client() as client:
        assert client.get("/api/auth/check").status_code == 401
        assert client.get("/api/sessions").status_code == 401
        bad = {"Authorization": "Bearer wrong-token-0000000000000"}
        assert client.get("/api/auth/check", headers=bad).status_code == 401
        forged = {"Cookie": "aiwf_session=YWRtaW58MXw5OTk5OTk5OTk5.AAAA"}
        assert client.get("/api/auth/check", headers=forged).status_code == 401
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/api/auth/check", headers=good).status_code == 204
        assert client.get("/api/auth/me", headers=good).json() == {"username": "service"}


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
def test_check_answers_the_method_nginx_passes_on(service: Any, method: str) -> None:
    cookie = service.login_cookie()
    with service.client() as client:
        assert client.request(method, "/api/auth/check").status_code == 401
        client.cookies.set("aiwf_session", cookie)
        allowed = client.request(method, "/api/auth/check", headers={"Origin": ORIGIN})
        assert allowed.status_code == 204
        foreign = client.request(
            method, "/api/auth/check", headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == (204 if method in ("GET", "HEAD") else 403)
    with service.token_client() as client:
        response = client.request(
            method, "/api/auth/check", headers={"Origin": "https://evil.example"}
        )
        assert response.status_code == 204


@pytest.mark.parametrize("original", ["POST", "PUT", "PATCH", "DELETE"])
def test_check_judges_the_original_method_of_nginx_subrequest(service: Any, original: str) -> None:
    """nginx asks with a GET and names the real method: a foreign write is refused anyway."""
    cookie = service.login_cookie()
    with service.client() as client:
        client.cookies.set("aiwf_session", cookie)
        foreign = client.get(
            "/api/auth/check",
            headers={"Origin": "https://evil.example", "X-Original-Method": original},
        )
        assert foreign.status_code == 403
        ours = client.get(
            "/api/auth/check", headers={"Origin": ORIGIN, "X-Original-Method": original}
        )
        assert ours.status_code == 204
        reading = client.get(
            "/api/auth/check",
            headers={"Origin": "https://evil.example", "X-Original-Method": "GET"},
        )
        assert reading.status_code == 204


def test_logout_ends_the_login_on_the_server_even_for_a_copied_cookie(service: Any) -> None:
    copied = service.login_cookie()
    other_browser = service.login_cookie()
    with service.client() as client:
        client.cookies.set("aiwf_session", copied)
        assert client.get("/api/auth/check").status_code == 204
        assert client.post("/api/auth/logout", headers={"Origin": ORIGIN}).status_code == 204
    with service.client() as thief:
        thief.cookies.set("aiwf_session", copied)
        assert thief.get("/api/auth/check").status_code == 401
        assert thief.get("/api/sessions").status_code == 401
    with service.client() as client:
        client.cookies.set("aiwf_session", other_browser)
        assert client.get("/api/auth/check").status_code == 204  # another login lives on
        ended = client.post("/api/auth/logout-everywhere", headers={"Origin": ORIGIN})
        assert ended.status_code == 204
        client.cookies.set("aiwf_session", other_browser)
        assert client.get("/api/auth/check").status_code == 401


def test_a_huge_login_body_is_refused_unread(service: Any) -> None:
    with service.client() as client:
        huge = client.post(
            "/api/auth/login",
            content=b'{"username": "admin", "password": "' + b"x" * (24 << 20) + b'"}',
            headers={"content-type": "application/json"},
        )
        assert huge.status_code == 413
        assert "at most 8192 bytes" in huge.json()["detail"]
        right = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
        assert right.status_code == 204


async def test_wrong_passwords_sent_all_at_once_meet_the_limit_too(service: Any) -> None:
    wrong = {"username": "admin", "password": "not-the-password"}
    async with httpx.AsyncClient(base_url=service.base_url, timeout=60) as client:
        answers = await asyncio.gather(
            *(client.post("/api/auth/login", json=wrong) for _ in range(30))
        )
    codes = sorted(answer.status_code for answer in answers)
    assert codes.count(401) <= 5, codes  # the limit is 5 failures per client
    assert codes.count(429) >= 25, codes


def test_wrong_password_then_lockout_per_client(service: Any) -> None:
    wrong = {"username": "admin", "password": "not-the-password"}
    right = {"username": "admin", "password": PASSWORD}
    attacker = {"X-Forwarded-For": "6.6.6.6, 203.0.113.50"}
    with service.client() as client:
        for _ in range(3):
            response = client.post("/api/auth/login", json=wrong, headers=attacker)
            assert response.status_code == 401
            assert response.json() == {"detail": "Wrong username or password."}
        locked = client.post("/api/auth/login", json=right, headers=attacker)
        assert locked.status_code == 429
        assert int(locked.headers["Retry-After"]) > 0
        # Forged entries left of nginx's own are ignored: still the same client.
        spoofed = {"X-Forwarded-For": "9.9.9.9, 203.0.113.50"}
        assert client.post("/api/auth/login", json=right, headers=spoofed).status_code == 429
        other = {"X-Forwarded-For": "203.0.113.50, 198.51.100.1"}
        assert client.post("/api/auth/login", json=right, headers=other).status_code == 204


def test_forwarded_addresses_are_believed_only_from_the_trusted_proxy(
    service_root: Path, service_factory: Any
) -> None:
    """Called directly (not from nginx), a client cannot rotate X-Forwarded-For to escape its
    lockout, nor pose as another client to lock that one out."""
    direct = service_factory(service_root, {"TMUX_SESSIONS_TRUSTED_PROXIES": "127.0.0.2"})
    wrong = {"username": "admin", "password": "not-the-password"}
    with httpx.Client(base_url=direct.base_url, timeout=20) as client:
        for number in range(3):
            rotated = {"X-Forwarded-For": f"203.0.113.{number}"}
            assert client.post("/api/auth/login", json=wrong, headers=rotated).status_code == 401
        fresh = {"X-Forwarded-For": "198.51.100.77"}
        assert client.post("/api/auth/login", json=wrong, headers=fresh).status_code == 429


def test_unknown_user_is_the_same_401(service: Any) -> None:
    with service.client() as client:
        response = client.post("/api/auth/login", json={"username": "ghost", "password": "x" * 9})
    assert response.status_code == 401
    assert response.json() == {"detail": "Wrong username or password."}


def test_cookie_writes_from_a_foreign_origin_are_refused(service: Any) -> None:
    cookie = service.login_cookie()
    with service.client(cookies={"aiwf_session": cookie}) as client:
        foreign = client.post(
            "/api/sessions", json={"name": "x"}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        assert "evil.example" in foreign.json()["detail"]
        same = client.post(
            "/api/sessions", json={"command": "sleep 60"}, headers={"Origin": ORIGIN}
        )
        assert same.status_code == 201
        assert same.json()["created_by"] == "admin"


def test_bootstrap_user_created_only_once(service: Any) -> None:
    users = json.loads((service.data_dir / "users.json").read_text())
    assert list(users["users"]) == ["admin"]
    assert users["users"]["admin"]["password_hash"].startswith("scrypt$")
    assert PASSWORD not in (service.data_dir / "users.json").read_text()
    (service.root / "secrets" / "password").write_text("a-different-password\n")
    service.restart()
    service.login_cookie(password=PASSWORD)


# --- sessions ------------------------------------------------------------------------------


def test_create_list_get_delete(service: Any) -> None:
    created = service.create_session(
        name="work-1",
        command="sleep 300",
        cwd=str(service.root),
        ticket_id="PROJ-7",
        cols=100,
        rows=30,
    )
    assert created["name"] == "work-1" and created["alive"] is True
    assert created["exit_status"] is None and created["last_output"] is None
    assert created["ticket_id"] == "PROJ-7" and created["created_by"] == "service"
    assert created["cwd"] == str(service.root)
    assert service.tmux("has-session", "-t", "=work-1").returncode == 0
    width = service.tmux("display", "-p", "-t", "=work-1:", "#{window_width}").stdout.strip()
    assert width == "100"
    with service.token_client() as client:
        listed = client.get("/api/sessions").json()
        assert [s["id"] for s in listed] == [created["id"]]
        assert client.get(f"/api/sessions/{created['id']}").json()["name"] == "work-1"
        assert client.get("/api/sessions/work-1").json()["id"] == created["id"]
        assert client.delete(f"/api/sessions/{created['id']}").status_code == 204
        assert client.get(f"/api/sessions/{created['id']}").status_code == 404
    assert service.tmux("has-session", "-t", "=work-1").returncode != 0
    stored = json.loads((service.data_dir / "sessions.json").read_text())
    assert stored["sessions"] == []


def test_environment_and_working_directory_reach_the_session(service: Any) -> None:
    workdir = service.root / "workdir"
    workdir.mkdir()
    created = service.create_session(
        name="envtest",
        cwd=str(workdir),
        env={"AIWF_GREETING": "hello-from-env"},
        command="sh -c 'echo \"$AIWF_GREETING\"; pwd; sleep 300'",
    )
    assert eventually(lambda: "hello-from-env" in pane_text(service, "=envtest"))
    assert str(workdir) in pane_text(service, "=envtest")
    assert created["command"].startswith("sh -c")


def test_send_input_types_into_the_session(service: Any) -> None:
    created = service.create_session(name="typing")
    with service.token_client() as client:
        response = client.post(
            f"/api/sessions/{created['id']}/input", json={"data": "echo api$((2+3))", "enter": True}
        )
        assert response.status_code == 204
    assert eventually(lambda: "api5" in pane_text(service, "=typing"))


def test_long_input_arrives_whole(service: Any) -> None:
    created = service.create_session(
        name="long", command=f"sh -c 'stty -icanon -echo; cat > {service.root / 'out'}'"
    )
    text = "é" * 20_000 + "END"
    with service.token_client() as client:
        response = client.post(
            f"/api/sessions/{created['id']}/input", json={"data": text, "enter": True}
        )
        assert response.status_code == 204
    out = service.root / "out"
    assert eventually(lambda: out.exists() and out.read_text().endswith("END\n"))
    assert out.read_text() == text + "\n"


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"name": "a:b"}, "name", "':'"),
        ({"name": "a.b"}, "name", "'.'"),
        ({"name": "bell\x07"}, "name", "control characters"),
        ({"name": "n" * 65}, "name", "limit is 64"),
        ({"cols": 0}, "cols", "greater than or equal to 1"),
        ({"rows": 1001}, "rows", "less than or equal to 1000"),
        ({"env": {"1BAD": "x"}}, "env", "must match"),
        ({"cwd": "/definitely/not/here"}, "cwd", "not an existing directory"),
        ({"cwd": "relative/dir"}, "cwd", "not an absolute path"),
        ({"colour": "red"}, "colour", "Extra inputs"),
    ],
)
def test_bad_create_requests_are_422_with_the_reason(
    service: Any, body: dict[str, Any], field: str, reason: str
) -> None:
    with service.token_client() as client:
        response = client.post("/api/sessions", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert detail.startswith(field) and reason in detail
    assert service.tmux("ls").returncode != 0


def test_duplicate_name_is_409(service: Any) -> None:
    service.create_session(name="twin")
    with service.token_client() as client:
        response = client.post("/api/sessions", json={"name": "twin"})
    assert response.status_code == 409
    assert "twin" in response.json()["detail"]


def test_unknown_session_is_404_everywhere(service: Any) -> None:
    with service.token_client() as client:
        assert client.get("/api/sessions/nope").status_code == 404
        assert client.delete("/api/sessions/nope").status_code == 404
        response = client.post("/api/sessions/nope/input", json={"data": "x"})
        assert response.status_code == 404
        assert response.json() == {"detail": "no session 'nope'."}


def test_input_over_64_kib_is_422(service: Any) -> None:
    created = service.create_session(name="big")
    with service.token_client() as client:
        response = client.post(f"/api/sessions/{created['id']}/input", json={"data": "€" * 30_000})
    assert response.status_code == 422
    assert "65536" in response.json()["detail"]


def test_input_ending_in_a_semicolon_is_typed_whole(service: Any) -> None:
    created = service.create_session(name="semicolon")
    with service.token_client() as client:
        response = client.post(
            f"/api/sessions/{created['id']}/input", json={"data": "echo semi-$((4+3));"}
        )
        assert response.status_code == 204
        client.post(f"/api/sessions/{created['id']}/input", json={"data": "", "enter": True})
    assert eventually(lambda: "semi-7" in pane_text(service, "=semicolon"))
    assert "echo semi-$((4+3));" in pane_text(service, "=semicolon")


def test_command_that_exits_keeps_its_status_and_last_screen(service: Any) -> None:
    created = service.create_session(
        name="boom", command="sh -c 'echo boom-marker; exit 3'", ticket_id="PROJ-3"
    )
    session = ended(service, created["id"])
    assert session["exit_status"] == 3 and "boom-marker" in session["last_output"]
    assert session["ticket_id"] == "PROJ-3" and session["command"].startswith("sh -c")
    assert "boom" not in tmux_session_names(service)
    with service.token_client() as client:
        [listed] = client.get("/api/sessions").json()
    assert listed["alive"] is False and listed["exit_status"] == 3
    assert listed["last_output"] == session["last_output"]
    [stored] = json.loads((service.data_dir / "sessions.json").read_text())["sessions"]
    assert stored["exit_status"] == 3 and "boom-marker" in stored["last_output"]


def test_command_not_found_reports_127_and_why(service: Any) -> None:
    created = service.create_session(name="missing", command="no-such-agent-binary-xyz")
    session = ended(service, created["id"])
    assert session["exit_status"] == 127
    assert "no-such-agent-binary-xyz" in session["last_output"]
    assert "not found" in session["last_output"]
    assert "missing" not in tmux_session_names(service)


def test_last_screen_lost_to_a_kill_still_records_the_exit(service: Any) -> None:
    bystander = service.create_session(name="bystander", command="sleep 300")
    created = service.create_session(name="vanishing", command="sh -c 'read line; exit 5'")
    assert service.tmux("send-keys", "-t", "=vanishing:", "Enter").returncode == 0

    def exit_status_known() -> bool:
        # As the service does: a child of the tmux server that ends makes tmux 3.3a reap a
        # pane process whose exit it missed.
        service.tmux("run-shell", "true")
        listing = service.tmux("list-sessions", "-F", "#{session_name} #{pane_dead_status}")
        return "vanishing 5" in listing.stdout

    assert eventually(exit_status_known)
    # tmux kills the session right after our listing, before its screen can be read.
    hook = ("after-list-sessions", "kill-session -t =vanishing")
    assert service.tmux("set-hook", "-g", *hook).returncode == 0
    with service.token_client() as client:
        response = client.get("/api/sessions")
    assert service.tmux("set-hook", "-gu", hook[0]).returncode == 0
    assert response.status_code == 200, response.text
    listed = {session["id"]: session for session in response.json()}
    assert listed[bystander["id"]]["alive"] is True
    assert listed[created["id"]]["alive"] is False
    assert listed[created["id"]]["exit_status"] == 5
    assert listed[created["id"]]["last_output"] is None


def test_ticket_is_readable_from_tmux_alone(service: Any) -> None:
    service.create_session(name="ticketed", command="sleep 300", ticket_id="PROJ-42;")
    service.create_session(name="unticketed", command="sleep 300")
    listing = service.tmux("list-sessions", "-F", "#{session_name} #{@aiwf_ticket}").stdout
    assert sorted(listing.splitlines()) == ["ticketed PROJ-42;", "unticketed "]


def test_ticket_with_a_control_character_is_422(service: Any) -> None:
    with service.token_client() as client:
        response = client.post("/api/sessions", json={"ticket_id": "PROJ-1\nx"})
    assert response.status_code == 422
    assert "control characters" in response.text


def test_plain_shell_ends_with_its_shell_as_before(service: Any) -> None:
    created = service.create_session(name="plain", command=None)
    window_options = service.tmux("show-options", "-w", "-t", "=plain:").stdout
    assert "remain-on-exit" not in window_options
    assert service.tmux("show-hooks", "-w", "-t", "=plain:").stdout.strip() == ""
    assert service.tmux("display", "-p", "-t", "=plain:", "#{pane_pipe}").stdout.strip() == "0"
    shell = int(service.tmux("display", "-p", "-t", "=plain:", "#{pane_pid}").stdout)
    os.kill(shell, signal.SIGKILL)  # the shell ends; a login shell may still be reading rc files
    assert eventually(lambda: "plain" not in tmux_session_names(service))
    session = ended(service, created["id"])
    assert session["exit_status"] is None and session["last_output"] is None


def test_session_killed_from_tmux_is_reported_dead(service: Any) -> None:
    created = service.create_session(name="doomed")
    assert service.tmux("kill-session", "-t", "=doomed").returncode == 0
    with service.token_client() as client:
        got = client.get(f"/api/sessions/{created['id']}").json()
        assert got["alive"] is False
        assert got["exit_status"] is None and got["last_output"] is None
        response = client.post(f"/api/sessions/{created['id']}/input", json={"data": "x"})
        assert response.status_code == 404
        assert client.delete(f"/api/sessions/{created['id']}").status_code == 204
        assert client.get("/api/sessions").json() == []


def test_session_started_from_the_host_shell_is_listed(service: Any) -> None:
    assert service.tmux("new-session", "-d", "-s", "from-host", "sleep 300").returncode == 0
    with service.token_client() as client:
        [listed] = client.get("/api/sessions").json()
    assert listed["name"] == "from-host" and listed["alive"] is True
    assert listed["created_by"] is None
    label = service.tmux("show-options", "-v", "-t", "=from-host:", "@aiwf_id").stdout.strip()
    assert label == listed["id"]


def test_sessions_survive_a_service_restart(service: Any) -> None:
    created = service.create_session(name="durable", ticket_id="PROJ-1")
    service.restart()
    with service.token_client() as client:
        got = client.get(f"/api/sessions/{created['id']}").json()
    assert got["alive"] is True and got["name"] == "durable"
    assert got["created_by"] == "service" and got["ticket_id"] == "PROJ-1"


def test_metadata_lost_is_rebuilt_from_tmux(service: Any) -> None:
    created = service.create_session(name="orphan", ticket_id="PROJ-8")
    service.stop()
    (service.data_dir / "sessions.json").unlink()
    service.start()
    with service.token_client() as client:
        got = client.get(f"/api/sessions/{created['id']}").json()
    assert got["name"] == "orphan" and got["alive"] is True
    assert got["ticket_id"] == "PROJ-8"


# --- start-up errors -----------------------------------------------------------------------


def test_missing_secret_file_stops_the_start_naming_setting_and_path(service_root: Path) -> None:
    missing = service_root / "no-such-key"
    env = {
        "TMUX_SESSIONS_SECRET_KEY_FILE": str(missing),
        "TMUX_SESSIONS_DATA_DIR": str(service_root / "data"),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tmux_sessions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert f"TMUX_SESSIONS_SECRET_KEY_FILE: {missing} does not exist" in result.stderr
    assert "Traceback" not in result.stderr
