"""Settings resolution and the local ticket folder, without HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from orchestrator.core.config import Settings, load_plane_credentials, normalise_api_url
from orchestrator.prompt import build_command
from orchestrator.sources.local import LocalFolderSource

EXAMPLES = Path(__file__).parents[3] / "services" / "orchestrator" / "examples" / "tickets"


def claude_json(tmp_path: Path, env: dict[str, str]) -> Path:
    path = tmp_path / "claude.json"
    path.write_text(json.dumps({"mcpServers": {"plane": {"command": "npx", "env": env}}}))
    return path


def test_claude_json_supplies_plane_and_environment_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = claude_json(
        tmp_path,
        {
            "PLANE_API_KEY": "from-file",
            "PLANE_WORKSPACE_SLUG": "cslog",
            "PLANE_API_URL": "https://plane.example.com/api/v1",
        },
    )
    monkeypatch.setenv("PLANE_WORKSPACE_SLUG", "override")
    credentials, problems = load_plane_credentials(Settings(claude_json=path))
    assert problems == []
    assert credentials is not None
    assert credentials.api_key == "from-file" and credentials.workspace_slug == "override"
    assert credentials.api_url == "https://plane.example.com/api/v1"
    assert "from-file" not in repr(credentials)


def test_key_file_wins(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("secret-from-file\n")
    path = claude_json(tmp_path, {"PLANE_API_KEY": "old", "PLANE_WORKSPACE_SLUG": "w"})
    credentials, _ = load_plane_credentials(Settings(claude_json=path, plane_api_key_file=key_file))
    assert credentials is not None and credentials.api_key == "secret-from-file"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"mcpServers": {"plane": {"env": {"PLANE_API_KEY": "k"}}}}), "SLUG"),
        (json.dumps({"mcpServers": {"plane": {"env": ["x"]}}}), "must be an object"),
    ],
)
def test_bad_claude_json_is_a_problem_not_a_crash(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "claude.json"
    path.write_text(content)
    credentials, problems = load_plane_credentials(Settings(claude_json=path))
    assert credentials is None
    assert len(problems) == 1 and expected in problems[0]


def test_api_url_forms() -> None:
    assert normalise_api_url("https://api.plane.so") == "https://api.plane.so/api/v1"
    assert normalise_api_url("https://p.example/api/v1/") == "https://p.example/api/v1"


def test_agent_command_placeholders_are_shell_quoted() -> None:
    command = build_command(
        "claude {prompt} --ticket {ticket_id}", {"prompt": "a; rm -rf $HOME", "ticket_id": "T-1"}
    )
    assert command == "claude 'a; rm -rf $HOME' --ticket T-1"


async def test_shipped_example_ticket_parses() -> None:
    result = await LocalFolderSource(EXAMPLES).fetch_changes({})
    assert result.problems == []
    (ticket,) = result.tickets
    assert ticket.id == "EXAMPLE-1" and "claude" in ticket.labels
    assert ticket.priority == "medium" and "/version" in ticket.description


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("no front matter", "must start with a '---'"),
        ("---\nid: X-1\ntitle: t\n", "not closed"),
        ("---\nid: ../evil\ntitle: t\n---\n", "'id' must be"),
        ("---\nid: X-1\n---\n", "'title' is missing"),
        ("---\nid: X-1\ntitle: t\npriority: asap\n---\n", "'priority' must be"),
    ],
)
async def test_bad_ticket_file_is_named_and_others_still_load(
    tmp_path: Path, content: str, expected: str, ticket_writer: Any
) -> None:
    (tmp_path / "bad.md").write_text(content)
    ticket_writer(tmp_path, "GOOD-1", "Fine")
    result = await LocalFolderSource(tmp_path).fetch_changes({})
    assert [t.id for t in result.tickets] == ["GOOD-1"]
    assert len(result.problems) == 1
    assert "bad.md" in result.problems[0] and expected in result.problems[0]


async def test_unchanged_files_are_not_reported_again(tmp_path: Path, ticket_writer: Any) -> None:
    ticket_writer(tmp_path, "A-1", "One")
    source = LocalFolderSource(tmp_path)
    first = await source.fetch_changes({})
    second = await source.fetch_changes(first.marks)
    assert [t.id for t in first.tickets] == ["A-1"] and second.tickets == []
