"""``python -m tmux_sessions.admin`` against the users.json of a running service."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx


def admin(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX_SESSIONS_")}
    env["TMUX_SESSIONS_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "tmux_sessions.admin", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def login(service: Any, username: str, password: str) -> httpx.Response:
    with service.client() as client:
        response: httpx.Response = client.post(
            "/api/auth/login", json={"username": username, "password": password}
        )
        return response


def test_add_user_list_and_login(service: Any) -> None:
    added = admin(service.data_dir, "add-user", "alice", "--password-stdin", stdin="alice-pass-1\n")
    assert added.returncode == 0, added.stderr
    listed = admin(service.data_dir, "list-users")
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["admin", "alice"]
    assert login(service, "alice", "alice-pass-1").status_code == 204


def test_reset_password_ends_old_logins(service: Any) -> None:
    admin(service.data_dir, "add-user", "bob", "--password-stdin", stdin="bob-pass-one\n")
    cookie = login(service, "bob", "bob-pass-one").cookies["aiwf_session"]
    with service.client(cookies={"aiwf_session": cookie}) as client:
        assert client.get("/api/auth/check").status_code == 204
        reset = admin(
            service.data_dir, "reset-password", "bob", "--password-stdin", stdin="bob-pass-two\n"
        )
        assert reset.returncode == 0, reset.stderr
        assert client.get("/api/auth/check").status_code == 401
    assert login(service, "bob", "bob-pass-one").status_code == 401
    assert login(service, "bob", "bob-pass-two").status_code == 204


def test_admin_errors_are_one_line_and_change_nothing(tmp_path: Path) -> None:
    assert (
        admin(tmp_path, "add-user", "carol", "--password-stdin", stdin="carol-pass\n").returncode
        == 0
    )
    before = (tmp_path / "users.json").read_text()
    duplicate = admin(tmp_path, "add-user", "carol", "--password-stdin", stdin="other-pass\n")
    assert duplicate.returncode == 1 and "exists" in duplicate.stderr
    short = admin(tmp_path, "add-user", "dave", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8" in short.stderr
    unknown = admin(tmp_path, "reset-password", "erin", "--password-stdin", stdin="long-pass\n")
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr
    empty = admin(tmp_path, "add-user", "frank", "--password-stdin", stdin="")
    assert empty.returncode == 1 and "standard input" in empty.stderr
    assert (tmp_path / "users.json").read_text() == before
    assert "Traceback" not in duplicate.stderr + short.stderr + unknown.stderr
