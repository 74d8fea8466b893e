"""Domain logic as plain functions: names, frames, store, hashing, cookies, rate limits."""

from __future__ import annotations

import asyncio
import json
import stat
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import pytest
from tmux_sessions.core.config import Settings
from tmux_sessions.core.secrets import SecretFileError, Secrets, read_secret_file
from tmux_sessions.core.security import (
    SessionClaims,
    hash_password,
    read_session,
    sign_session,
    verify_password,
)
from tmux_sessions.fileio import StateFileError, read_json, write_json_atomic
from tmux_sessions.frames import FrameError, parse_frame
from tmux_sessions.logins import LoginRegistry
from tmux_sessions.models import InputFrame, ResizeFrame
from tmux_sessions.naming import check_session_name, session_name_problem
from tmux_sessions.ratelimit import LoginRateLimiter, client_address
from tmux_sessions.store import SessionRecord, SessionStore, reconcile
from tmux_sessions.terminal import PtyClient
from tmux_sessions.tmux import (
    Tmux,
    TmuxError,
    TmuxSession,
    command_sequence,
    last_screen,
    split_utf8,
    tmux_argument,
)
from tmux_sessions.users import UserError, UserStore

# --- session names -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["claude-PROJ-123-1-20261125-153000", "work", "a b", "ü" * 64])
def test_names_tmux_takes(name: str) -> None:
    assert check_session_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("a:b", "':'"),
        ("a.b", "'.'"),
        ("a\x01b", "control characters"),
        ("a\nb", "control characters"),
        ("x" * 65, "limit is 64"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_names_tmux_refuses(name: str, reason: str) -> None:
    problem = session_name_problem(name)
    assert problem is not None and reason in problem
    with pytest.raises(ValueError, match="session name"):
        check_session_name(name)


# --- WebSocket frames ----------------------------------------------------------------------


def test_frames_parse() -> None:
    assert parse_frame('{"type":"input","data":"ls\\r"}') == InputFrame(type="input", data="ls\r")
    assert parse_frame('{"type":"resize","cols":120,"rows":40}') == ResizeFrame(
        type="resize", cols=120, rows=40
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("not json", "not JSON"),
        ("[1,2]", "JSON object"),
        ('{"type":"dance"}', "unknown frame type"),
        ('{"type":"input"}', "data"),
        ('{"type":"resize","cols":0,"rows":10}', "between 1 and 1000"),
        ('{"type":"resize","cols":10,"rows":1001}', "between 1 and 1000"),
    ],
)
def test_frames_refused(text: str, fragment: str) -> None:
    frame = parse_frame(text)
    assert isinstance(frame, FrameError)
    assert fragment in frame.message
    assert json.loads(frame.to_json()) == {"type": "error", "message": frame.message}


# --- tmux helpers --------------------------------------------------------------------------


def test_split_utf8_keeps_characters_whole() -> None:
    text = "aé€😀" * 1000
    parts = split_utf8(text, 100)
    assert "".join(parts) == text
    assert all(len(part.encode()) <= 100 for part in parts)


# --- metadata store and reconciliation -----------------------------------------------------

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def live(tmux_id: str, name: str, aiwf_id: str | None, clients: int = 0) -> TmuxSession:
    return TmuxSession(tmux_id, name, NOW, clients, aiwf_id)


def test_reconcile_joins_labels_and_marks_dead() -> None:
    ids = (f"new{n}" for n in count())
    stored = [
        SessionRecord("a", "alpha", NOW, command="claude", created_by="admin", ticket_id="T-1"),
        SessionRecord("gone", "old", NOW - timedelta(hours=1)),
    ]
    records, labels = reconcile(
        stored,
        [live("$1", "alpha-renamed", "a", clients=2), live("$2", "from-host", None)],
        last_screens={},
        new_id=lambda: next(ids),
        dead_retention=10,
    )
    by_id = {record.id: record for record in records}
    assert by_id["a"].name == "alpha-renamed"
    assert by_id["a"].created_by == "admin" and by_id["a"].ticket_id == "T-1"
    assert by_id["a"].alive and by_id["a"].clients == 2 and by_id["a"].tmux_id == "$1"
    assert by_id["new0"].name == "from-host" and by_id["new0"].created_by is None
    assert labels == [("$2", "new0")]
    assert not by_id["gone"].alive and by_id["gone"].tmux_id is None
    assert [record.id for record in records] == ["a", "new0", "gone"]


def test_reconcile_keeps_only_newest_dead() -> None:
    stored = [SessionRecord(f"d{n}", f"d{n}", NOW + timedelta(minutes=n)) for n in range(5)]
    records, _ = reconcile(stored, [], last_screens={}, new_id=lambda: "x", dead_retention=2)
    assert [record.id for record in records] == ["d4", "d3"]


def test_reconcile_records_how_finished_sessions_ended() -> None:
    ids = (f"new{n}" for n in count())
    stored = [SessionRecord("a", "agent", NOW, command="claude", ticket_id="T-1")]
    finished = [
        TmuxSession("$1", "agent", NOW, 0, "a", exit_status=127),
        TmuxSession("$2", "host-job", NOW, 0, None, ticket_id="T-2", exit_status=3),
    ]
    records, labels = reconcile(
        stored,
        finished,
        last_screens={"$1": "claude: command not found"},
        new_id=lambda: next(ids),
        dead_retention=10,
    )
    by_id = {record.id: record for record in records}
    assert not by_id["a"].alive and by_id["a"].tmux_id is None
    assert by_id["a"].exit_status == 127 and by_id["a"].ticket_id == "T-1"
    assert by_id["a"].last_output == "claude: command not found"
    assert by_id["new0"].exit_status == 3 and by_id["new0"].last_output is None
    assert by_id["new0"].ticket_id == "T-2"
    assert labels == []
    again, _ = reconcile(records, [], last_screens={}, new_id=lambda: "x", dead_retention=10)
    assert {record.id: record.exit_status for record in again} == {"a": 127, "new0": 3}


def test_last_screen_keeps_the_end_without_trailing_blanks() -> None:
    assert last_screen("one  \n\ntwo\t\n\n\n") == "one\n\ntwo"
    assert last_screen("x" * 5000 + "\nreason") == ("x" * 5000 + "\nreason")[-4000:]
    assert last_screen("") == ""


def test_arguments_ending_in_semicolon_reach_tmux_whole() -> None:
    assert tmux_argument("a;") == "a\\;" and tmux_argument(";") == "\\;"
    assert tmux_argument("a;b") == "a;b"
    assert command_sequence(["set-option", "@aiwf_ticket", "T;"], ["kill-server"]) == [
        "set-option",
        "@aiwf_ticket",
        "T\\;",
        ";",
        "kill-server",
    ]


def test_store_round_trip_and_atomic_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "sessions.json"
    store = SessionStore(path)
    record = SessionRecord("a", "alpha", NOW, command="claude", cwd="/w", ticket_id="T-9")
    ended = SessionRecord("b", "beta", NOW, alive=False, exit_status=2, last_output="no such file")
    store.replace_all([record, ended])
    assert SessionStore(path).records == [record, ended]
    assert [p.name for p in path.parent.iterdir()] == ["sessions.json"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_store_loads_files_written_before_exit_status(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    old_entry = {"id": "a", "name": "alpha", "created_at": NOW.isoformat(), "alive": False}
    path.write_text(json.dumps({"version": 1, "sessions": [old_entry]}))
    [record] = SessionStore(path).records
    assert record.exit_status is None and record.last_output is None and not record.alive


def test_damaged_state_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    path.write_text("{broken")
    with pytest.raises(StateFileError, match=r"sessions\.json: not valid JSON"):
        SessionStore(path)
    path.write_text('{"sessions": [{"nope": 1}]}')
    with pytest.raises(StateFileError, match="expected"):
        SessionStore(path)
    assert path.read_text() == '{"sessions": [{"nope": 1}]}'


def test_write_json_atomic_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"b": 2})
    assert read_json(path) == {"b": 2}
    assert read_json(tmp_path / "missing.json") is None


# --- passwords, cookies, users -------------------------------------------------------------


def test_password_hash_verifies_only_the_password() -> None:
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$")
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse battery!", stored)
    assert not verify_password("x", "scrypt$broken")
    assert hash_password("same") != hash_password("same")


def test_session_cookie_signature_and_expiry() -> None:
    key = b"k" * 32
    claims = SessionClaims("alice", 2, 2_000, "login-1")
    value = sign_session(claims, key)
    assert read_session(value, key, now=1_000) == claims
    assert read_session(value, key, now=2_000) is None
    assert read_session(value, b"other-key" * 4, now=1_000) is None
    _, _, mac = value.partition(".")
    forged = sign_session(SessionClaims("admin", 2, 2_000, "x"), b"guess" * 8).partition(".")[0]
    assert read_session(f"{forged}.{mac}", key, now=1_000) is None
    assert read_session("garbage", key, now=1_000) is None


def test_user_store(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")
    assert store.ensure_bootstrap_user("admin", None) is None
    created = store.ensure_bootstrap_user("admin", "first-password")
    assert created is not None and created.username == "admin"
    assert store.ensure_bootstrap_user("other", "another-password") is None
    assert store.authenticate("admin", "first-password") is not None
    assert store.authenticate("admin", "wrong-password") is None
    assert store.authenticate("nobody", "first-password") is None
    with pytest.raises(UserError, match="exists"):
        store.add_user("admin", "whatever-password")
    with pytest.raises(UserError, match="at least 8"):
        store.add_user("bob", "short")
    with pytest.raises(UserError, match="username"):
        store.add_user("bad|name", "long-enough-pw")
    updated = store.reset_password("admin", "second-password")
    assert updated.password_version == 2
    assert UserStore(tmp_path / "users.json").authenticate("admin", "second-password")
    assert "first-password" not in (tmp_path / "users.json").read_text()


# --- login rate limit and client address ---------------------------------------------------


def test_rate_limiter_locks_then_releases() -> None:
    now = [0.0]
    limiter = LoginRateLimiter(3, 60, clock=lambda: now[0])
    for _ in range(3):
        assert limiter.retry_after("1.2.3.4") is None
        limiter.record_failure("1.2.3.4")
        now[0] += 1
    assert limiter.retry_after("1.2.3.4") == pytest.approx(57)
    assert limiter.retry_after("5.6.7.8") is None
    now[0] = 60.5
    assert limiter.retry_after("1.2.3.4") is None
    limiter.record_failure("1.2.3.4")
    limiter.reset("1.2.3.4")
    assert limiter.retry_after("1.2.3.4") is None


def test_rate_limiter_memory_is_bounded() -> None:
    limiter = LoginRateLimiter(1, 60, max_clients=100)
    for n in range(1000):
        limiter.record_failure(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter._failures) == 100


def test_client_address_takes_rightmost_forwarded() -> None:
    assert client_address("172.18.0.2", "6.6.6.6, 198.51.100.7", None, trust_proxy=True) == (
        "198.51.100.7"
    )
    assert client_address("172.18.0.2", None, "198.51.100.8", trust_proxy=True) == "198.51.100.8"
    assert client_address("172.18.0.2", "6.6.6.6", "7.7.7.7", trust_proxy=False) == "172.18.0.2"
    assert client_address(None, None, None, trust_proxy=True) == "unknown"


# --- secrets -------------------------------------------------------------------------------


def test_secret_files_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(SecretFileError, match="TMUX_SESSIONS_SECRET_KEY_FILE is not set"):
        read_secret_file("SECRET_KEY_FILE", None)
    missing = tmp_path / "nope"
    with pytest.raises(SecretFileError, match=f"TMUX_SESSIONS_SERVICE_TOKEN_FILE: {missing}"):
        read_secret_file("SERVICE_TOKEN_FILE", missing)
    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(SecretFileError, match="at least 16"):
        read_secret_file("SECRET_KEY_FILE", short, min_length=16)
    good = tmp_path / "good"
    good.write_text("  0123456789abcdef0123 \n")
    assert read_secret_file("SECRET_KEY_FILE", good) == "0123456789abcdef0123"


def test_secrets_load_from_settings(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("k" * 32)
    settings = Settings(secret_key_file=key, data_dir=tmp_path)
    loaded = Secrets.load(settings)
    assert loaded.cookie_key == b"k" * 32
    assert loaded.service_token is None and loaded.bootstrap_password is None


def test_allowed_origins_are_normalised() -> None:
    settings = Settings(allowed_origins="https://Example.org/, http://localhost:3000")
    assert settings.origins == {"https://example.org", "http://localhost:3000"}


# --- pty flow control ----------------------------------------------------------------------


async def test_pty_client_pauses_when_not_read_and_loses_nothing() -> None:
    total = 8 * 1024 * 1024
    limit = 64 * 1024
    client = PtyClient(
        ["sh", "-c", f"stty raw -echo; head -c {total} /dev/zero | tr '\\0' x"],
        cols=80,
        rows=24,
        buffer_limit=limit,
    )
    await client.start()
    try:
        for _ in range(200):
            if client.paused:
                break
            await asyncio.sleep(0.05)
        assert client.paused
        await asyncio.sleep(0.3)
        assert limit <= client.buffered < limit + 64 * 1024
        received = 0
        while (chunk := await client.read()) is not None:
            received += chunk.count(b"x")
        assert received == total
    finally:
        await client.close()


async def test_a_service_told_not_to_start_a_server_never_does(tmp_path: Path) -> None:
    """In the stack the sandbox owns the tmux server: with none there, creating a session fails
    instead of starting one inside the service's own container."""
    socket = tmp_path / "tmux" / "default"
    socket.parent.mkdir(mode=0o700)
    tmux = Tmux(socket, start_server=False)
    with pytest.raises(TmuxError, match="error connecting to"):
        await tmux.new_session(
            name="nowhere", command=None, cwd=tmp_path, env={}, cols=80, rows=24, aiwf_id="x"
        )
    assert not socket.exists()
    assert await tmux.list_sessions() == []


def test_logins_end_one_by_one_or_all_at_once_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "logins.json"
    logins = LoginRegistry(path)
    first = logins.issue("alice", expires_at=2_000, now=1_000)
    second = logins.issue("alice", expires_at=2_000, now=1_000)
    other = logins.issue("bob", expires_at=2_000, now=1_000)
    assert logins.is_live(first, "alice", now=1_500)
    assert not logins.is_live(first, "bob", now=1_500)  # an id names one user's login only
    assert not logins.is_live(first, "alice", now=2_000)  # expired
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert logins.end(first) and not logins.end(first)
    reloaded = LoginRegistry(path)
    assert not reloaded.is_live(first, "alice", now=1_500)
    assert reloaded.is_live(second, "alice", now=1_500)
    assert reloaded.end_all("alice") == 1
    assert not reloaded.is_live(second, "alice", now=1_500)
    assert reloaded.is_live(other, "bob", now=1_500)
    # Expired logins are dropped when the next one is written.
    carol = reloaded.issue("carol", expires_at=9_000, now=5_000)
    assert set(json.loads(path.read_text())) == {carol}
    # A damaged list is named, never half-read.
    path.write_text('{"x": {"user": "alice"}}')
    with pytest.raises(StateFileError, match=r"logins\.json: not the list of logins"):
        LoginRegistry(path)
