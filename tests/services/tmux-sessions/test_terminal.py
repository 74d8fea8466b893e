"""WebSocket terminals: real websockets clients against the service and a real tmux server."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

ORIGIN = "https://aiwf.test"


@pytest.fixture
def service(shared_service: Any) -> Any:
    """Every test here names its own sessions, so they share one service and tmux server."""
    return shared_service


async def eventually(check: Any, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.05)
    return bool(check())


def window_width(service: Any, name: str) -> str:
    return str(service.tmux("display", "-p", "-t", f"={name}:", "#{window_width}").stdout.strip())


async def test_type_and_read_back(service: Any, screen: Any) -> None:
    created = service.create_session(name="echo")
    async with service.connect(created["id"]) as connection:
        terminal = screen(connection)
        await terminal.type("echo hi$((6*7))\r")
        await terminal.wait_for_output(b"hi42")


async def test_two_clients_see_the_same_output(service: Any, screen: Any) -> None:
    created = service.create_session(name="shared")
    async with (
        service.connect(created["id"]) as first,
        service.connect(created["id"]) as second,
    ):
        one, two = screen(first), screen(second)
        await one.type("echo both$((20+3))\r")
        await one.wait_for_output(b"both23")
        await two.wait_for_output(b"both23")
        with service.token_client() as client:
            assert client.get(f"/api/sessions/{created['id']}").json()["clients"] == 2
    with service.token_client() as client:

        def attached() -> int:
            return int(client.get(f"/api/sessions/{created['id']}").json()["clients"])

        assert await eventually(lambda: attached() == 0)


async def test_read_only_viewer_cannot_type(service: Any, screen: Any) -> None:
    created = service.create_session(name="watched")
    async with (
        service.connect(created["id"], query="mode=view") as viewer_connection,
        service.connect(created["id"]) as typist_connection,
    ):
        viewer, typist = screen(viewer_connection), screen(typist_connection)
        await viewer.type("echo viewer$((1+1))\r")
        error = await viewer.wait_for_message()
        assert error["type"] == "error" and "read-only" in error["message"]
        flags = service.tmux("list-clients", "-F", "#{client_flags}").stdout
        assert "read-only" in flags and "ignore-size" in flags
        await typist.type("echo typist$((2+2))\r")
        await viewer.wait_for_output(b"typist4")
        assert b"viewer2" not in viewer.output
        pane = service.tmux("capture-pane", "-p", "-t", "=watched:").stdout
        assert "typist4" in pane and "viewer" not in pane


async def test_resize_reaches_tmux(service: Any, screen: Any) -> None:
    created = service.create_session(name="sized")
    async with service.connect(created["id"], query="cols=90&rows=30") as connection:
        terminal = screen(connection)
        assert await eventually(lambda: window_width(service, "sized") == "90")
        await connection.send(json.dumps({"type": "resize", "cols": 132, "rows": 43}))
        assert await eventually(lambda: window_width(service, "sized") == "132")
        await connection.send(json.dumps({"type": "resize", "cols": 0, "rows": 43}))
        error = await terminal.wait_for_message()
        assert error["type"] == "error" and "between 1 and 1000" in error["message"]
        await connection.send(json.dumps({"type": "resize", "cols": 80, "rows": 5000}))
        assert (await terminal.wait_for_message())["type"] == "error"
        assert window_width(service, "sized") == "132"
        await terminal.type("echo still$((3*3))\r")
        await terminal.wait_for_output(b"still9")


async def test_viewer_size_does_not_change_the_window(service: Any) -> None:
    created = service.create_session(name="viewsize")
    async with (
        service.connect(created["id"], query="cols=100&rows=30"),
        service.connect(created["id"], query="mode=view&cols=40&rows=10") as viewer,
    ):
        assert await eventually(lambda: window_width(service, "viewsize") == "100")
        await viewer.send(json.dumps({"type": "resize", "cols": 50, "rows": 12}))

        def client_widths() -> list[str]:
            return sorted(service.tmux("list-clients", "-F", "#{client_width}").stdout.split())

        assert await eventually(lambda: client_widths() == ["100", "50"])
        assert window_width(service, "viewsize") == "100"


async def test_reattach_shows_the_current_screen(service: Any, screen: Any) -> None:
    created = service.create_session(name="again")
    async with service.connect(created["id"]) as connection:
        terminal = screen(connection)
        await terminal.type("echo mark$((3+4))\r")
        await terminal.wait_for_output(b"mark7")
    async with service.connect(created["id"]) as connection:
        await screen(connection).wait_for_output(b"mark7")


async def test_malformed_frames_get_error_frames_and_the_connection_stays(
    service: Any, screen: Any
) -> None:
    created = service.create_session(name="sturdy")
    async with service.connect(created["id"]) as connection:
        terminal = screen(connection)
        for bad in ("{not json", '{"type":"jump"}', "[]", '{"type":"input","data":5}'):
            await connection.send(bad)
            message = await terminal.wait_for_message()
            assert message["type"] == "error" and message["message"]
        await connection.send(b"\x00binary")
        assert "binary" in (await terminal.wait_for_message())["message"]
        await terminal.type("echo alive$((5+5))\r")
        await terminal.wait_for_output(b"alive10")


async def test_input_frame_over_64_kib_closes_1009(service: Any, screen: Any) -> None:
    created = service.create_session(name="flood")
    async with service.connect(created["id"]) as connection:
        await connection.send(json.dumps({"type": "input", "data": "x" * (64 * 1024 + 1)}))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(connection.recv(), 15)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_session_end_closes_the_socket_normally(service: Any, screen: Any) -> None:
    created = service.create_session(name="brief")
    async with service.connect(created["id"]) as connection:
        await screen(connection).type("echo last-words; exit 4\r")
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(connection.recv(), 15)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    with service.token_client() as client:
        session = client.get(f"/api/sessions/{created['id']}").json()
    assert session["alive"] is False and session["exit_status"] == 4
    assert "last-words" in session["last_output"]


async def test_kill_from_tmux_ends_the_terminal_and_the_api_says_so(
    service: Any, screen: Any
) -> None:
    created = service.create_session(name="victim")
    async with service.connect(created["id"]) as connection:
        await screen(connection).type("echo up\r")
        service.tmux("kill-session", "-t", "=victim")
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(connection.recv(), 15)
    with service.token_client() as client:
        assert client.get(f"/api/sessions/{created['id']}").json()["alive"] is False
    with pytest.raises(InvalidStatus) as refused:
        async with service.connect(created["id"]):
            pass
    assert refused.value.response.status_code == 404


async def test_unknown_session_is_refused_404(service: Any) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with service.connect("does-not-exist"):
            pass
    assert refused.value.response.status_code == 404


async def test_without_cookie_or_token_the_socket_is_refused(service: Any) -> None:
    created = service.create_session(name="private")
    with pytest.raises(InvalidStatus) as refused:
        async with service.connect(created["id"], token=False, origin=ORIGIN):
            pass
    assert refused.value.response.status_code == 401


async def test_cookie_login_with_allowed_origin_attaches(service: Any, screen: Any) -> None:
    created = service.create_session(name="browser")
    cookie = {"Cookie": f"aiwf_session={service.login_cookie()}"}
    async with service.connect(
        created["id"], token=False, origin=ORIGIN, additional_headers=cookie
    ) as connection:
        terminal = screen(connection)
        await terminal.type("echo browser$((4+4))\r")
        await terminal.wait_for_output(b"browser8")


@pytest.mark.parametrize("origin", ["https://evil.example", None])
async def test_cookie_with_foreign_or_no_origin_is_refused(
    service: Any, origin: str | None
) -> None:
    created = service.create_session()
    cookie = {"Cookie": f"aiwf_session={service.login_cookie()}"}
    with pytest.raises(InvalidStatus) as refused:
        async with service.connect(
            created["id"], token=False, origin=origin, additional_headers=cookie
        ):
            pass
    assert refused.value.response.status_code == 403


async def test_a_stalled_client_does_not_stall_the_others(service: Any, screen: Any) -> None:
    created = service.create_session(name="busy")
    async with (
        service.connect(created["id"], max_queue=1) as stalled,
        service.connect(created["id"]) as active_connection,
    ):
        active = screen(active_connection)
        await active.type("head -c 30000000 /dev/zero | base64; echo done$((40+2))\r")
        await active.wait_for_output(b"done42", timeout=120)
        late = screen(stalled)
        await late.wait_for_output(b"done42", timeout=120)
