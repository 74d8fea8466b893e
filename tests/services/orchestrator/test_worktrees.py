"""A worktree and a branch per ticket: real git, the real tmux-sessions, the real HTTP app.

The stand-in agents are shell commands (the agent command is a setting); every git command of
the orchestrator runs as a tmux-sessions session, so these tests need the real service, which
reports how a session's command ended.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from orchestrator.core.config import RepositorySetting, Settings
from orchestrator.models import Worktree
from orchestrator.repository import (
    COMMAND_LIMIT,
    SHORTENED,
    ChangeError,
    finish_command,
    read_results,
)
from pydantic import ValidationError

AUTHOR = ("aiwf test agent", "agent@test.invalid")
# Each stand-in agent appends its ticket id to the same file, then completes.
APPEND_AND_COMPLETE = (
    'echo {ticket_id} >> shared.txt && echo "finished $TICKET_ID" > "$COMPLETION_FILE"'
)


def git(*args: str, cwd: Path | None = None) -> str:
    """The test's own git (the orchestrator never runs git itself)."""
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    done = subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@test.invalid", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def make_origin(tmp_path: Path) -> Path:
    """A bare repository whose ``main`` has ``shared.txt`` = ``base``."""
    source = tmp_path / "origin-source"
    source.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=source)
    (source / "shared.txt").write_text("base\n")
    git("add", "shared.txt", cwd=source)
    git("commit", "--quiet", "-m", "base", cwd=source)
    origin = tmp_path / "origin.git"
    git("clone", "--quiet", "--bare", str(source), str(origin))
    return origin


def mirror_of(settings: Settings) -> Path:
    (mirror,) = (Path(settings.workspace) / ".aiwf" / "repos").glob("*.git")
    return mirror


def repo_settings(
    make_settings: Any, tmux: Any, repository: RepositorySetting, **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "tmux_url": tmux.url,
        "tmux_token_file": tmux.token_file,
        "agent_command": APPEND_AND_COMPLETE,
        "repository": repository,
        "poll_interval": 0.2,
        "session_check_interval": 0.2,
        "rescan_interval": 0.5,
    }
    values.update(extra)
    settings: Settings = make_settings(**values)
    return settings


def repository(url: str, **extra: Any) -> RepositorySetting:
    return RepositorySetting(url=url, author_name=AUTHOR[0], author_email=AUTHOR[1], **extra)


def tickets(url: str, name: str) -> dict[str, dict[str, Any]]:
    listed = httpx.get(f"{url}/api/{name}-tickets").json()["tickets"]
    return {t["id"]: t for t in listed}


def recorded(url: str, ids: set[str]) -> dict[str, dict[str, Any]] | None:
    """The completed tickets once each has its change recorded (or a reason why not)."""
    done = tickets(url, "completed")
    if set(done) != ids:
        return None
    if any(t["diffstat"] is None and t["change_error"] is None for t in done.values()):
        return None
    return done


def session_names(tmux: Any) -> list[str]:
    token = tmux.token_file.read_text().strip()
    response = httpx.get(tmux.url + "/api/sessions", headers={"Authorization": f"Bearer {token}"})
    return [str(session["name"]) for session in response.json()]


def approve(url: str, *ticket_ids: str) -> None:
    for ticket_id in ticket_ids:
        response = httpx.post(f"{url}/api/approve/{ticket_id}")
        assert response.status_code == 200, response.text


def test_three_tickets_work_on_their_own_branches(
    tmp_path: Path,
    make_settings: Any,
    real_tmux_service: Any,
    app_server: Any,
    ticket_writer: Any,
    waiter: Any,
) -> None:
    origin = make_origin(tmp_path)
    base = git("--git-dir", str(origin), "rev-parse", "main").strip()
    settings = repo_settings(make_settings, real_tmux_service, repository(str(origin)))
    ids = {"W-1", "W-2", "W-3"}
    for ticket_id in sorted(ids):
        ticket_writer(settings.tickets_dir, ticket_id, f"Append {ticket_id}")
    ticket_writer(settings.tickets_dir, "W-9", "Left pending")
    url = app_server(settings)
    waiter(lambda: set(tickets(url, "pending")) == ids | {"W-9"})

    approve(url, *sorted(ids))

    done = waiter(lambda: recorded(url, ids), timeout=90)
    mirror = mirror_of(settings)
    workspace = Path(settings.workspace)
    for ticket_id, ticket in done.items():
        branch = f"aiwf/{ticket_id}"
        assert ticket["change_error"] is None
        assert ticket["branch"] == branch
        assert [c["subject"] for c in ticket["commits"]] == [f"{ticket_id}: Append {ticket_id}"]
        assert "shared.txt" in ticket["diffstat"] and "1 insertion" in ticket["diffstat"]
        # Its own line only, in its own worktree and on its own branch.
        assert (workspace / ticket_id / "shared.txt").read_text() == f"base\n{ticket_id}\n"
        shown = git("--git-dir", str(mirror), "show", f"{branch}:shared.txt")
        assert shown == f"base\n{ticket_id}\n"
        message = git("--git-dir", str(mirror), "log", "-1", "--format=%an <%ae>%n%B", branch)
        assert message.startswith(f"{AUTHOR[0]} <{AUTHOR[1]}>\n{ticket_id}: Append {ticket_id}")
        assert f"finished {ticket_id}" in message
        assert (
            ticket["commits"][0]["sha"]
            == git("--git-dir", str(mirror), "rev-parse", branch).strip()
        )

        change = httpx.get(f"{url}/api/tickets/{ticket_id}/change")
        assert change.status_code == 200
        body = change.json()
        assert (body["branch"], body["commits"], body["diffstat"]) == (
            branch,
            ticket["commits"],
            ticket["diffstat"],
        )
        assert f"+{ticket_id}\n" in body["patch"] and "shared.txt" in body["patch"]
        assert (settings.data_dir / "changes" / f"{ticket_id}.patch").read_text() == body["patch"]
    # The base branch is untouched, upstream and in the mirror.
    assert git("--git-dir", str(origin), "rev-parse", "main").strip() == base
    assert git("--git-dir", str(mirror), "rev-parse", "origin/main").strip() == base
    assert (workspace / "shared.txt").exists() is False
    # The finish jobs ran as sessions of their own and are gone; their results were taken.
    assert not [name for name in session_names(real_tmux_service) if name.startswith("finish-")]
    assert list((settings.completion_dir / ".aiwf-results").iterdir()) == []

    missing = httpx.get(f"{url}/api/tickets/W-9/change")
    assert (missing.status_code, missing.json()) == (
        404,
        {"detail": "Ticket W-9 has no recorded change."},
    )
    assert httpx.get(f"{url}/api/tickets/NOPE-1/change").status_code == 404


# Attempt 1 commits first.txt and fails; attempt 2 (its worktree was removed meanwhile) finds it
# on the branch, leaves second.txt uncommitted and fails; attempt 3 finds both and completes.
THREE_ATTEMPTS = (
    "if [ -e second.txt ]; then "
    'echo "done after $(cat first.txt) $(cat second.txt)" > "$COMPLETION_FILE"; '
    "elif [ -e first.txt ]; then echo two > second.txt; exit 4; "
    "else echo one > first.txt && git add first.txt && git commit -q -m 'attempt one' "
    "&& exit 3; fi"
)


def test_retry_continues_the_same_branch(
    tmp_path: Path,
    make_settings: Any,
    real_tmux_service: Any,
    app_server: Any,
    ticket_writer: Any,
    waiter: Any,
) -> None:
    origin = make_origin(tmp_path)
    settings = repo_settings(
        make_settings, real_tmux_service, repository(str(origin)), agent_command=THREE_ATTEMPTS
    )
    ticket_writer(settings.tickets_dir, "R-1", "Carry on")
    url = app_server(settings)
    waiter(lambda: "R-1" in tickets(url, "pending"))
    worktree = Path(settings.workspace) / "R-1"

    def interrupted_with(status: int) -> dict[str, Any] | None:
        ticket = tickets(url, "active").get("R-1")
        return ticket if ticket and ticket["agent_exit_status"] == status else None

    approve(url, "R-1")
    assert waiter(lambda: interrupted_with(3), timeout=60)["status"] == "interrupted"
    shutil.rmtree(worktree)  # the branch stays; the next attempt adds a worktree on it
    assert httpx.post(f"{url}/api/retry/R-1").status_code == 200
    waiter(lambda: interrupted_with(4), timeout=60)
    assert (worktree / "second.txt").exists()  # left uncommitted
    assert httpx.post(f"{url}/api/retry/R-1").status_code == 200

    ticket = waiter(lambda: recorded(url, {"R-1"}), timeout=60)["R-1"]
    assert ticket["summary"] == "done after one two"
    assert ticket["change_error"] is None and ticket["branch"] == "aiwf/R-1"
    assert [c["subject"] for c in ticket["commits"]] == ["attempt one", "R-1: Carry on"]
    assert "first.txt" in ticket["diffstat"] and "second.txt" in ticket["diffstat"]
    mirror = mirror_of(settings)
    author = git("--git-dir", str(mirror), "log", "-1", "--format=%an", "aiwf/R-1~1")
    assert author.strip() == AUTHOR[0]  # the agent's own commit, by the configured author
    patch = httpx.get(f"{url}/api/tickets/R-1/change").json()["patch"]
    assert "+one\n" in patch and "+two\n" in patch


def test_plane_comment_carries_the_change_once(
    tmp_path: Path,
    make_settings: Any,
    real_tmux_service: Any,
    plane: Any,
    app_server: Any,
    waiter: Any,
) -> None:
    origin = make_origin(tmp_path)
    double = plane.double
    project = double.add_project("OPS")
    item = double.add_item(project, "Add <an> entry & check")
    setting = RepositorySetting(
        url=None,
        projects={"OPS": {"url": str(origin), "base_branch": "main"}},
        author_name=AUTHOR[0],
        author_email=AUTHOR[1],
    )
    settings = repo_settings(
        make_settings,
        real_tmux_service,
        setting,
        plane_api_key=plane.api_key,
        plane_workspace_slug=double.slug,
        plane_api_url=plane.url,
    )
    url = app_server(settings)
    waiter(lambda: item["id"] in tickets(url, "pending"))

    approve(url, item["id"])

    waiter(lambda: double.group_of(project, item["id"]) == "completed", timeout=90)
    (comment,) = project.comments[item["id"]]
    html = comment["comment_html"]
    assert html.startswith("<p>finished ")
    assert "<code>aiwf/OPS-1</code>" in html
    assert "OPS-1: Add &lt;an&gt; entry &amp; check</li>" in html
    assert "shared.txt" in html and "1 insertion" in html
    ticket = tickets(url, "completed")[item["id"]]
    assert ticket["commits"][0]["sha"][:7] in html
    assert ticket["tracker_sync"]["state"] == "ok"


def test_deleting_a_ticket_keeps_its_work_on_its_branch(
    tmp_path: Path,
    make_settings: Any,
    real_tmux_service: Any,
    app_server: Any,
    ticket_writer: Any,
    waiter: Any,
) -> None:
    origin = make_origin(tmp_path)
    settings = repo_settings(
        make_settings,
        real_tmux_service,
        repository(str(origin)),
        agent_command="echo wip >> shared.txt && exec sleep 600",
    )
    ticket_writer(settings.tickets_dir, "D-1", "Started, then dropped")
    url = app_server(settings)
    waiter(lambda: "D-1" in tickets(url, "pending"))
    approve(url, "D-1")
    worktree = Path(settings.workspace) / "D-1"
    shared = worktree / "shared.txt"
    waiter(lambda: shared.exists() and shared.read_text() == "base\nwip\n", timeout=60)

    assert httpx.delete(f"{url}/api/tickets/D-1").status_code == 204

    waiter(lambda: not worktree.exists(), timeout=60)
    mirror = mirror_of(settings)
    assert git("--git-dir", str(mirror), "log", "-1", "--format=%s", "aiwf/D-1") == "wip: D-1\n"
    assert git("--git-dir", str(mirror), "show", "aiwf/D-1:shared.txt") == "base\nwip\n"
    assert str(worktree) not in git("--git-dir", str(mirror), "worktree", "list")
    waiter(lambda: not any(n.startswith("cleanup-") for n in session_names(real_tmux_service)))
    assert not any(n.startswith("claude-D-1-") for n in session_names(real_tmux_service))


def test_a_bad_repository_url_shows_git_error_on_the_ticket(
    tmp_path: Path,
    make_settings: Any,
    real_tmux_service: Any,
    app_server: Any,
    ticket_writer: Any,
    waiter: Any,
) -> None:
    missing = tmp_path / "no-such-repository.git"
    settings = repo_settings(make_settings, real_tmux_service, repository(str(missing)))
    ticket_writer(settings.tickets_dir, "B-1", "Cannot clone")
    url = app_server(settings)
    waiter(lambda: "B-1" in tickets(url, "pending"))

    approve(url, "B-1")

    ticket = waiter(
        lambda: (t := tickets(url, "active")["B-1"])["status"] == "interrupted" and t, timeout=60
    )
    assert ticket["agent_exit_status"] == 128
    assert ticket["error"] == (
        f"the agent exited with status 128: fatal: repository '{missing}' does not exist"
    )
    assert f"aiwf: cloning {missing}" in ticket["agent_output"]
    assert not (Path(settings.workspace) / "B-1").exists()


def test_a_failing_finish_job_still_completes_the_ticket(
    tmp_path: Path,
    make_settings: Any,
    real_tmux_service: Any,
    app_server: Any,
    ticket_writer: Any,
    waiter: Any,
) -> None:
    origin = make_origin(tmp_path)
    settings = repo_settings(
        make_settings,
        real_tmux_service,
        repository(str(origin)),
        agent_command=(
            'echo x >> shared.txt && git checkout -q --detach && echo done > "$COMPLETION_FILE"'
        ),
    )
    ticket_writer(settings.tickets_dir, "F-1", "Detaches its HEAD")
    url = app_server(settings)
    waiter(lambda: "F-1" in tickets(url, "pending"))

    approve(url, "F-1")

    ticket = waiter(lambda: recorded(url, {"F-1"}), timeout=60)["F-1"]
    assert ticket["status"] == "completed" and ticket["summary"] == "done"
    assert ticket["change_error"].startswith("the finish job exited with status 1: aiwf: ")
    assert ticket["change_error"].endswith("is not on a branch (detached HEAD)")
    assert (ticket["branch"], ticket["commits"], ticket["diffstat"]) == ("aiwf/F-1", [], None)
    assert httpx.get(f"{url}/api/tickets/F-1/change").status_code == 404
    assert (Path(settings.workspace) / "F-1" / "shared.txt").read_text() == "base\nx\n"


# ------------------------------------------------------------------ settings and results
def test_repository_setting_is_parsed_from_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "ORCHESTRATOR_REPOSITORY",
        '{"url": "/srv/web.git", "base_branch": "develop", "ssh_key": "/home/a/.ssh/k",'
        ' "projects": {"OPS": {"url": "git@example.com:acme/ops.git"}}}',
    )
    setting = Settings().repository
    assert setting is not None
    web, ops = setting.for_identifier("WEB-3"), setting.for_identifier("OPS-12")
    assert web is not None and (web.url, web.base_branch) == ("/srv/web.git", "develop")
    assert ops is not None and (ops.url, ops.base_branch) == (
        "git@example.com:acme/ops.git",
        "main",
    )
    monkeypatch.setenv("ORCHESTRATOR_REPOSITORY", "")
    assert Settings().repository is None
    monkeypatch.delenv("ORCHESTRATOR_REPOSITORY")
    assert Settings().repository is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{", "not valid JSON"),
        ('{"url": "/r.git", "branch": "x"}', "Extra inputs are not permitted"),
        ('{"url": "--upload-pack=evil"}', "must not start with '-'"),
        ('{"url": "/r.git", "branch_template": "aiwf/all"}', "must contain {identifier}"),
        ('{"url": "/r.git", "ssh_key": "key"}', "must be an absolute path"),
        ('{"projects": {"OPS": {}}}', "Field required"),
    ],
)
def test_a_malformed_repository_setting_stops_the_start(
    tmp_path: Path, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_REPOSITORY", value)
    with pytest.raises(ValidationError, match="repository"):
        Settings()
    env = {
        **os.environ,
        "ORCHESTRATOR_DATA_DIR": str(tmp_path / "data"),
        "ORCHESTRATOR_LOG_DIR": str(tmp_path / "logs"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.startswith("orchestrator: bad setting ORCHESTRATOR_REPOSITORY")
    assert message in done.stderr


def write_results(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "branch").write_text("aiwf/T-1\n")
    (folder / "commits").write_text("a" * 40 + "\tT-1: first\n" + "b" * 40 + "\tsecond\ttab\n")
    (folder / "diffstat").write_text(" x | 1 +\n 1 file changed, 1 insertion(+)\n")
    (folder / "patch").write_bytes(b"+\xff\n")


def test_results_are_read_and_removed(tmp_path: Path) -> None:
    write_results(tmp_path / ".aiwf-results" / "T-1")

    result = read_results(tmp_path, "T-1")

    assert result.branch == "aiwf/T-1"
    assert [(c.sha[:2], c.subject) for c in result.commits] == [
        ("aa", "T-1: first"),
        ("bb", "second\ttab"),
    ]
    assert result.diffstat == " x | 1 +\n 1 file changed, 1 insertion(+)"
    assert result.patch == b"+\xff\n"
    assert list((tmp_path / ".aiwf-results").iterdir()) == []


def test_results_never_follow_a_symlink(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("the Plane key\n")
    completion_dir = tmp_path / "completions"
    folder = completion_dir / ".aiwf-results" / "T-1"
    write_results(folder)
    (folder / "patch").unlink()
    (folder / "patch").symlink_to(secret)

    with pytest.raises(ChangeError, match="patch file is a symlink"):
        read_results(completion_dir, "T-1")

    elsewhere = tmp_path / "elsewhere"
    shutil.move(completion_dir / ".aiwf-results", elsewhere)
    (completion_dir / ".aiwf-results").symlink_to(elsewhere)
    with pytest.raises(ChangeError, match="is not a folder"):
        read_results(completion_dir, "T-1")
    assert secret.read_text() == "the Plane key\n"
    assert (elsewhere / "T-1" / "branch").exists()  # nothing deleted through the link


def test_results_over_their_limit_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / ".aiwf-results" / "T-1"
    write_results(folder)
    (folder / "branch").write_text("x" * 2000)
    with pytest.raises(ChangeError, match="branch file is over 1024 bytes"):
        read_results(tmp_path, "T-1")


def test_a_long_summary_is_shortened_to_fit_the_session_command() -> None:
    worktree = Worktree(path="/w/T-1", mirror="/w/.aiwf/repos/x.git", base_branch="main")
    summary = "it's 'quoted' " * 2000

    command = finish_command(worktree, "/tmp/.aiwf-results/T-1", "T-1: title", summary)

    assert len(command) <= COMMAND_LIMIT
    assert len(command) > COMMAND_LIMIT - 100  # as much of the summary as fits
    assert "summary shortened" in command and SHORTENED.startswith("\n\n")
