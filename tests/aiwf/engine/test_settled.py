"""Which command lines a settled ``aiwf up`` may answer, and what counts as a change on disk.

The replay against a real stack is in ``tests/e2e/test_settled_up.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aiwf.engine import settled


def test_the_same_up_written_differently_has_one_key() -> None:
    key = settled.invocation_key(["-i", "inventory/x.py", "up", "nginx", "dashboard"])
    assert key is not None
    assert settled.invocation_key(["up", "dashboard", "--inventory=inventory/x.py", "nginx"]) == key
    assert settled.invocation_key(["up", "-i", "inventory/x.py", "nginx", "dashboard"]) == key
    waiting = ["--wait-lock", "30", "up", "-i", "inventory/x.py", "nginx", "dashboard"]
    assert settled.invocation_key(waiting) == key


@pytest.mark.parametrize(
    "args",
    [
        ["up", "--dry-run"],
        ["up", "--json"],
        ["up", "--build"],
        ["up", "--help"],
        ["up", "-i"],
        ["down"],
        ["ps", "up"],
        [],
    ],
)
def test_anything_but_a_plain_up_is_never_replayed(args: list[str]) -> None:
    assert settled.invocation_key(args) is None


def test_other_settings_sources_make_another_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    base = settled.invocation_key(["up"])
    assert settled.invocation_key(["-i", "other.py", "up"]) != base
    assert settled.invocation_key(["--host", "web1", "up"]) != base
    assert settled.invocation_key(["up", "nginx"]) != base
    monkeypatch.setenv("AIWF_INVENTORY", "inventory/production.py")
    assert settled.invocation_key(["up"]) != base
    monkeypatch.delenv("AIWF_INVENTORY")
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.2:2375")
    assert settled.invocation_key(["up"]) != base
    monkeypatch.delenv("DOCKER_HOST")
    monkeypatch.chdir(tmp_path)  # a relative --inventory means another file here
    assert settled.invocation_key(["up"]) != base


def test_a_file_replaced_or_touched_no_longer_matches(tmp_path: Path) -> None:
    path = tmp_path / "compose.yaml"
    path.write_text("services: {}\n")
    recorded = settled.signature(path)
    assert settled.signature(path) == recorded
    replacement = tmp_path / "new"
    replacement.write_text("services: {}\n")
    os.replace(replacement, path)  # same content, same size: a new inode
    assert settled.signature(path) != recorded
    recorded = settled.signature(path)
    os.chmod(path, 0o600)
    assert settled.signature(path) != recorded
    path.unlink()
    assert settled.signature(path) is None


def test_a_folder_is_watched_for_its_mode_or_also_for_its_entries(tmp_path: Path) -> None:
    folder = tmp_path / "group_data"
    folder.mkdir(mode=0o755)
    as_folder, as_listing = settled.signature(folder), settled.signature(folder, listing=True)
    os.utime(folder, ns=(0, 10**18))  # what adding or removing an entry does to it
    assert settled.signature(folder) == as_folder
    assert settled.signature(folder, listing=True) != as_listing
    folder.chmod(0o700)
    assert settled.signature(folder) != as_folder


def test_no_record_means_the_full_up_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert settled.replay(["up"]) is None
    folder = settled.record_folder()
    folder.mkdir(parents=True)
    key = settled.invocation_key(["up"])
    (folder / f"{key}.json").write_text("{not json")
    assert settled.replay(["up"]) is None


def test_a_full_up_records_for_the_plain_one() -> None:
    assert settled.invocation_key(["up", "--full"]) == settled.invocation_key(["up"])
