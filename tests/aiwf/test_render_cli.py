"""``aiwf render`` as a user runs it: default folder, same bytes, dry runs that write nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

Aiwf = Callable[..., subprocess.CompletedProcess[str]]


def _inventory(tmp_path: Path, name: str = "site", **extra: object) -> Path:
    settings = {"project": "render-cli", "paths": {"data_dir": str(tmp_path / "data")}, **extra}
    path = tmp_path / f"{name}.py"
    path.write_text(f"hosts = [('@local', {{'aiwf': {settings!r}}})]\n")
    return path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_render_writes_into_the_data_dir_and_repeats_identically(
    tmp_path: Path, aiwf: Aiwf
) -> None:
    inventory = _inventory(tmp_path)
    first = aiwf("render", "--inventory", str(inventory))
    assert first.returncode == 0, first.stderr
    rendered = tmp_path / "data" / "rendered"
    files = _snapshot(rendered)
    assert set(files) == {"nginx.conf", "compose.yaml", ".env", "logrotate.conf"}
    assert [line.split()[0] for line in first.stdout.splitlines()] == ["created"] * 4
    second = aiwf("render", "--inventory", str(inventory))
    assert second.returncode == 0, second.stderr
    assert _snapshot(rendered) == files
    assert [line.split()[0] for line in second.stdout.splitlines()] == ["unchanged"] * 4


def test_dry_run_writes_nothing_and_tells_what_differs(tmp_path: Path, aiwf: Aiwf) -> None:
    out = tmp_path / "out"
    inventory = _inventory(tmp_path)
    nothing_yet = aiwf("render", "--inventory", str(inventory), "--out", str(out), "--dry-run")
    assert nothing_yet.returncode == 0, nothing_yet.stderr
    assert not out.exists()
    assert f"would create {out}/nginx.conf" in nothing_yet.stdout

    assert aiwf("render", "--inventory", str(inventory), "--out", str(out)).returncode == 0
    before = _snapshot(out)
    speech_on = _inventory(tmp_path, "speech", speech={"mode": "local"})
    plan = aiwf("render", "--inventory", str(speech_on), "--out", str(out), "--dry-run")
    assert plan.returncode == 0, plan.stderr
    states = {line.rsplit("/", 1)[-1]: line.rsplit(" ", 1)[0] for line in plan.stdout.splitlines()}
    assert states == {
        "nginx.conf": "would change",
        "compose.yaml": "would change",
        ".env": "unchanged",
        "logrotate.conf": "unchanged",
    }
    assert _snapshot(out) == before


def test_unwritable_folder_is_one_line_and_status_1(tmp_path: Path, aiwf: Aiwf) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "rendered"
    result = aiwf("render", "--inventory", str(_inventory(tmp_path)), "--out", str(out))
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"aiwf: cannot write {out}")
    debug = aiwf(
        "render", "--inventory", str(_inventory(tmp_path)), "--out", str(out),
        env={"AIWF_DEBUG": "1"},
    )  # fmt: skip
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr
