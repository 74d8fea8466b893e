"""Host preparation, the deploy lock and the audit log, on real files and real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from aiwf.config import StackConfig
from aiwf.engine.base_images import RECIPE, host_mirror
from aiwf.engine.history import read_history, record
from aiwf.engine.host import HostReport, ensure_directories, ensure_secrets
from aiwf.engine.lock import deploy_lock
from aiwf.errors import AiwfError, LockedError
from aiwf.stack import GENERATED_SECRETS, secrets_dir


def test_secrets_are_generated_once_private_and_the_password_is_reported_once(
    config: StackConfig,
) -> None:
    report = HostReport()
    ensure_directories(config, report)
    ensure_secrets(config, report)
    folder = Path(secrets_dir(config))
    assert folder.stat().st_mode & 0o777 == 0o700
    for name in GENERATED_SECRETS:
        assert (folder / name).stat().st_mode & 0o777 == 0o600
        assert len((folder / name).read_bytes()) >= 16
    assert report.admin_password_file == folder / "admin_password"
    before = {name: (folder / name).read_bytes() for name in GENERATED_SECRETS}
    again = HostReport()
    ensure_secrets(config, again)
    assert again.admin_password_file is None
    assert {name: (folder / name).read_bytes() for name in GENERATED_SECRETS} == before


def test_plane_key_comes_from_the_named_variable(
    config: StackConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    config.services.orchestrator.plane.api_key_env = "UNIT_PLANE_KEY"
    monkeypatch.delenv("UNIT_PLANE_KEY", raising=False)
    with pytest.raises(AiwfError, match="UNIT_PLANE_KEY"):
        ensure_secrets(config, HostReport())
    monkeypatch.setenv("UNIT_PLANE_KEY", "plane-key-1")
    ensure_secrets(config, HostReport())
    stored = Path(secrets_dir(config)) / "plane_api_key"
    assert stored.read_text() == "plane-key-1"
    assert stored.stat().st_mode & 0o777 == 0o600


def test_host_directories_exist_with_private_modes(config: StackConfig) -> None:
    report = HostReport()
    ensure_directories(config, report)
    assert config.paths.tmux_socket_dir.stat().st_mode & 0o777 == 0o700
    for folder in (config.paths.data_dir / "logs" / "nginx", config.paths.tickets_dir):
        assert folder is not None and folder.is_dir()
    assert any("created" in note for note in report.notes)


def test_a_second_holder_is_refused_with_who_holds_the_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from aiwf.engine.lock import deploy_lock
                with deploy_lock(Path({str(tmp_path)!r}), command="aiwf up (holder)"):
                    print("held", flush=True)
                    time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockedError) as refused, deploy_lock(tmp_path, timeout_s=0.5):
            pass
        message = str(refused.value)
        assert f"pid {holder.pid}" in message
        assert "aiwf up (holder)" in message and "since" in message
    finally:
        holder.kill()
        holder.wait()
    with deploy_lock(tmp_path, timeout_s=5):  # released when the holder died
        pass


def test_history_appends_json_lines_and_reads_them_back(tmp_path: Path) -> None:
    record(tmp_path, "create", "nginx", reason="not there", outcome="ok")
    record(tmp_path, "reload", "nginx", outcome="refused")
    with open(tmp_path / "history.jsonl", "a") as handle:
        handle.write("{broken\n")
    entries = read_history(tmp_path)
    assert [(e["action"], e["outcome"]) for e in entries] == [
        ("create", "ok"),
        ("reload", "refused"),
    ]
    assert read_history(tmp_path, limit=1)[0]["action"] == "reload"
    first = json.loads((tmp_path / "history.jsonl").read_text().splitlines()[0])
    assert first["pid"] == os.getpid() and first["target"] == "nginx"


def test_the_mirror_is_read_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\n"
    )
    assert host_mirror((deb822,)) == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text("# comment\ndeb [arch=amd64] http://other.example/debian/ bookworm main\n")
    assert host_mirror((one_line,)) == "http://other.example/debian"
    assert host_mirror((tmp_path / "missing",)) == "http://deb.debian.org/debian"


def test_the_base_image_tag_follows_the_recipe() -> None:
    import dataclasses

    changed = dataclasses.replace(RECIPE, packages=(*RECIPE.packages, "jq"))
    assert RECIPE.tag().startswith("aiwf-base:bookworm-")
    assert changed.tag() != RECIPE.tag()
