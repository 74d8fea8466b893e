"""The whole stack from nothing on the real engine, then every way converge must behave.

The tests share one stack (built once per session) and run in file order; each one that changes
the settings or the sources puts them back before it ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import websockets

pytestmark = [pytest.mark.engine, pytest.mark.e2e]


def test_every_service_is_healthy_and_only_nginx_publishes(stack: Any) -> None:
    rows = stack.ps()
    assert set(rows) == {"sandbox", "tmux-sessions", "orchestrator", "dashboard", "nginx"}
    for service, row in rows.items():
        assert (row["state"], row["health"]) == ("running", "healthy"), service
    from aiwf.engine.docker_client import connect

    client = connect()
    for service, row in rows.items():
        host_config = client.api.inspect_container(row["id"])["HostConfig"]
        ports = host_config["PortBindings"] or {}
        assert bool(ports) == (service == "nginx"), (service, ports)
        # Every container is limited and gains no privilege through a setuid program.
        assert host_config["Memory"] > 0 and host_config["PidsLimit"] > 0, service
        assert host_config["SecurityOpt"] == ["no-new-privileges"], service
    for service in ("sandbox", "tmux-sessions"):  # the two that run as the agent's uid
        inspected = client.api.inspect_container(rows[service]["id"])
        assert inspected["HostConfig"]["CapDrop"] == ["ALL"], service
        assert inspected["Config"]["User"] not in ("", "0", "root"), service


def test_the_health_sweep_sees_every_part_of_the_running_stack(stack: Any) -> None:
    swept = stack.aiwf("health", "--json", check=False)
    checks = json.loads(swept.stdout)["checks"]
    failing = [c for c in checks if not c["ok"] and c["check"] not in ("backup", "certificate")]
    assert not failing, failing
    passed = {(c["check"], c["target"]) for c in checks if c["ok"]}
    expected = {
        ("orchestrator", "orchestrator"),  # the daemon's JSON, through nginx's login gate
        ("via-nginx", "nginx"),
        ("websocket", "tmux-sessions"),
        ("http-direct", "dashboard"),
        ("agent", "sandbox"),  # the pinned Claude Code answers there, not as root
    }
    assert expected <= passed
    agent = next(c for c in checks if c["check"] == "agent")
    assert "Claude Code 2.1.328" in agent["detail"] and "uid 1000" in agent["detail"]


def test_nginx_serves_health_and_the_dashboard_over_https(stack: Any) -> None:
    with stack.client() as client:
        health = client.get("/health")
        assert (health.status_code, health.text.strip()) == (200, "healthy")
        index = client.get("/")
        assert index.status_code == 200
        assert '<div id="root">' in index.text
    with httpx_plain(stack) as plain:
        assert plain.get("/health").text.strip() == "healthy"  # the health check's own path
        redirect = plain.get("/api/sessions")
        assert redirect.status_code == 301
        assert redirect.headers["location"].startswith("https://")


def httpx_plain(stack: Any) -> Any:
    import httpx

    http_port = stack.settings["ports"]["http"]
    return httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=30)


def test_without_the_cookie_only_health_and_login_pass(stack: Any) -> None:
    with stack.client() as client:
        for path in ("/api/orchestrator/health", "/api/sessions", "/api/pending-tickets"):
            assert client.get(path).status_code == 401, path
        wrong = client.post(
            "/api/auth/login",
            json={"username": "admin", "password": "not-the-password"},
            headers={"Origin": stack.origin},
        )
        assert wrong.status_code == 401
        stack.login(client)
        health = client.get("/api/orchestrator/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "healthy" and body["tmux_service"] is True
        assert {"pending_count", "active_count", "completed_count"} <= set(body)


async def _read_until(socket: Any, marker: bytes, limit_s: float = 30) -> bytes:
    seen = b""
    async with asyncio.timeout(limit_s):
        while marker not in seen:
            frame = await socket.recv()
            seen += frame if isinstance(frame, bytes) else frame.encode()
    return seen


def test_a_tmux_session_is_created_and_attached_over_wss(stack: Any) -> None:
    with stack.client() as client:
        stack.login(client)
        created = client.post("/api/sessions", json={"name": "e2e-shell"})
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]
        cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())

    async def attach() -> bytes:
        url = f"wss://127.0.0.1:{stack.https_port}/ws/sessions/{session_id}"
        async with websockets.connect(
            url,
            ssl=stack.tls(),
            additional_headers={"Cookie": cookie},
            origin=stack.origin,
        ) as socket:
            command = "echo e2e-$((6*7))-marker\r"
            await socket.send(json.dumps({"type": "input", "data": command}))
            return await _read_until(socket, b"e2e-42-marker")

    assert b"e2e-42-marker" in asyncio.run(attach())

    async def refused_without_cookie() -> None:
        url = f"wss://127.0.0.1:{stack.https_port}/ws/sessions/{session_id}"
        async with websockets.connect(url, ssl=stack.tls(), origin=stack.origin) as socket:
            await socket.recv()

    with pytest.raises(websockets.InvalidStatus):
        asyncio.run(refused_without_cookie())


def test_a_second_up_recreates_nothing(stack: Any) -> None:
    before = stack.container_ids()
    result = stack.aiwf("up")
    assert "nothing to do" in result.stdout
    assert stack.container_ids() == before
    dry = json.loads(stack.aiwf("up", "--json").stdout)
    assert {step["action"] for step in dry["steps"]} == {"nothing"}


def test_a_changed_variable_recreates_that_container_alone(stack: Any) -> None:
    before = stack.container_ids()
    change = {"services": {"orchestrator": {"environment": {"AIWF_E2E_MARK": "changed"}}}}
    stack.write_inventory(change)
    try:
        plan = json.loads(stack.aiwf("up", "--json").stdout)
        changed = [s for s in plan["steps"] if s["action"] != "nothing"]
        assert changed == [
            {"action": "recreate", "target": "orchestrator", "reason": "spec changed"}
        ]
        stack.aiwf("up")
        after = stack.container_ids()
        assert after["orchestrator"] != before["orchestrator"]
        assert {k: v for k, v in after.items() if k != "orchestrator"} == {
            k: v for k, v in before.items() if k != "orchestrator"
        }
        from aiwf.engine.docker_client import connect

        env = connect().api.inspect_container(after["orchestrator"])["Config"]["Env"]
        assert "AIWF_E2E_MARK=changed" in env
        assert stack.ps()["orchestrator"]["health"] == "healthy"
    finally:
        stack.write_inventory()
        stack.aiwf("up")


def _project_copy(tmp_path: Path) -> Path:
    """A copy of the project root (templates, inventory) whose services link to the real ones."""
    root = Path(__file__).resolve().parents[2]
    copy = tmp_path / "root"
    copy.mkdir()
    shutil.copytree(root / "templates", copy / "templates")
    (copy / "services").mkdir()
    for service in (root / "services").iterdir():
        (copy / "services" / service.name).symlink_to(service)
    return copy


def test_a_broken_nginx_template_is_refused_and_the_old_config_keeps_serving(
    stack: Any, tmp_path: Path
) -> None:
    copy = _project_copy(tmp_path)
    template = copy / "templates" / "nginx.conf.j2"
    text = template.read_text()
    template.write_text(text.replace("http {", "http {\n    no_such_directive on;", 1))
    before = stack.container_ids()
    live = (stack.data_dir / "rendered" / "nginx.conf").read_text()
    result = stack.aiwf("up", check=False, env={"AIWF_ROOT": str(copy)})
    assert result.returncode != 0
    assert "fails `nginx -t`" in result.stderr and "no_such_directive" in result.stderr
    assert (stack.data_dir / "rendered" / "nginx.conf").read_text() == live
    assert stack.container_ids()["nginx"] == before["nginx"]
    with stack.client() as client:
        assert client.get("/health").text.strip() == "healthy"
    history = [json.loads(line) for line in (stack.data_dir / "history.jsonl").open()]
    assert history[-1]["action"] == "reload" and history[-1]["outcome"] == "refused"


def test_a_good_nginx_change_is_a_reload_not_a_restart(stack: Any) -> None:
    before = stack.container_ids()
    stack.write_inventory({"services": {"nginx": {"client_max_body_size": "31m"}}})
    try:
        result = stack.aiwf("up")
        assert "reload nginx" in result.stdout
        assert stack.container_ids() == before
        live = (stack.data_dir / "rendered" / "nginx.conf").read_text()
        assert "client_max_body_size 31m;" in live
        from aiwf.engine.docker_client import connect

        client = connect()
        exec_id = client.api.exec_create(before["nginx"], ["nginx", "-T"])["Id"]
        assert b"client_max_body_size 31m;" in client.api.exec_start(exec_id)
    finally:
        stack.write_inventory()
        stack.aiwf("up")


def test_a_new_image_that_fails_its_health_check_is_rolled_back(stack: Any, tmp_path: Path) -> None:
    copy = _project_copy(tmp_path)
    dashboard = copy / "services" / "dashboard"
    dashboard.unlink()
    real = Path(__file__).resolve().parents[2] / "services" / "dashboard"
    shutil.copytree(real, dashboard, ignore=shutil.ignore_patterns("node_modules"))
    conf = dashboard / "nginx" / "default.conf"
    conf.write_text(conf.read_text().replace("listen 3000", "listen 3999"))
    os.utime(dashboard / "dist" / "index.html")  # the copied dist is as fresh as its sources
    before = stack.container_ids()
    result = stack.aiwf("up", "--build", "dashboard", check=False, env={"AIWF_ROOT": str(copy)})
    assert result.returncode != 0, result.stdout
    assert "dashboard: the new container failed" in result.stderr
    assert "previous container is back and healthy" in result.stderr
    rows = stack.ps()
    assert rows["dashboard"]["id"] == before["dashboard"]
    assert rows["dashboard"]["health"] == "healthy"
    with stack.client() as client:
        assert client.get("/").status_code == 200
    # :latest points at the image that works again, so a plain up has nothing to do
    assert "nothing to do" in stack.aiwf("up").stdout


def test_down_then_up_keeps_the_volumes_data(stack: Any) -> None:
    with stack.client() as client:
        stack.login(client)
        pending = client.get("/api/pending-tickets").json()
        tickets = pending["tickets"] if isinstance(pending, dict) else pending
        assert tickets, "the example ticket is pending"
        ticket_id = tickets[0]["id"]
        approved = client.post(f"/api/approve/{ticket_id}", headers={"Origin": stack.origin})
        assert approved.status_code == 200, approved.text
    stack.aiwf("down")
    assert stack.ps() == {}
    stack.aiwf("up")
    with stack.client() as client:
        stack.login(client)

        def ids(kind: str) -> set[str]:
            body = client.get(f"/api/{kind}-tickets").json()
            items = body["tickets"] if isinstance(body, dict) else body
            return {item["id"] for item in items}

        assert ticket_id not in ids("pending")
        assert ticket_id in ids("active") | ids("completed")


def test_cross_site_writes_are_refused_on_every_route_through_nginx(stack: Any) -> None:
    """nginx's auth subrequest names the original method: a write with the login cookie from a
    foreign Origin is refused before it reaches any service, the orchestrator's included."""
    evil = {"Origin": "https://evil.example"}
    ours = {"Origin": stack.origin}
    with stack.client() as client:
        stack.login(client)
        writes = [
            ("POST", "/api/approve/NO-SUCH-TICKET"),
            ("POST", "/api/reject/NO-SUCH-TICKET"),
            ("POST", "/api/retry/NO-SUCH-TICKET"),
            ("DELETE", "/api/tickets/NO-SUCH-TICKET"),
            ("DELETE", "/api/sessions/no-such-session"),
        ]
        for method, path in writes:
            refused = client.request(method, path, headers=evil)
            assert refused.status_code == 403, (method, path, refused.status_code)
            passed = client.request(method, path, headers=ours)
            assert passed.status_code == 404, (method, path, passed.status_code, passed.text)
        assert client.get("/api/pending-tickets", headers=evil).status_code == 200
