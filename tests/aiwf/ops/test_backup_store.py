"""Archive names, verification records, retention and the nightly timer, without an engine."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from typer.testing import CliRunner

from aiwf.backup import schedule, store
from aiwf.cli.main import _register_commands, app
from aiwf.config import Retention, validate

from .conftest import make_settings, write_inventory


def _archives(tmp_path: Path, moments: list[dt.datetime]) -> list[store.ArchiveInfo]:
    made = []
    for moment in moments:
        path = tmp_path / store.archive_name("proj", "tmux-session-data", moment, "zstd")
        path.write_bytes(b"x")
        made.append(path)
    return store.list_archives(tmp_path, "proj")


def test_names_round_trip_and_sort_newest_first(tmp_path: Path) -> None:
    base = dt.datetime(2026, 11, 25, 3, 15, 0, 123000, tzinfo=dt.UTC)
    archives = _archives(tmp_path, [base, base + dt.timedelta(hours=1)])
    assert [item.created for item in archives] == [base + dt.timedelta(hours=1), base]
    assert archives[0].path.name == "proj_tmux-session-data_20261125T041500.123Z.tar.zst"
    assert {item.volume for item in archives} == {"tmux-session-data"}
    assert store.list_archives(tmp_path, "other") == []


def test_verification_state_follows_the_file(tmp_path: Path) -> None:
    archive = _archives(tmp_path, [dt.datetime.now(dt.UTC)])[0].path
    assert store.verification_state(archive) == "unverified"
    store.record_verified(archive, {"volume": "tmux-session-data"})
    assert store.verification_state(archive) == "verified"
    archive.write_bytes(b"changed afterwards")
    assert store.verification_state(archive) == "changed"


def test_retention_keeps_last_daily_and_weekly(tmp_path: Path) -> None:
    newest = dt.datetime(2026, 11, 25, 3, 0, tzinfo=dt.UTC)
    # Four backups a day for 30 days.
    moments = [newest - dt.timedelta(hours=6 * step) for step in range(120)]
    archives = _archives(tmp_path, moments)
    keep = store.to_keep(archives, Retention(keep_last=3, keep_daily=5, keep_weekly=3))
    kept = sorted((item.created for item in archives if item.path in keep), reverse=True)

    def at(day: int, hour: int) -> dt.datetime:
        return dt.datetime(2026, 11, day, hour, tzinfo=dt.UTC)

    assert kept == [
        at(25, 3),  # the last 3
        at(24, 21),
        at(24, 15),
        at(23, 21),  # the newest of each of 5 days: 25, 24, 23, 22, 21
        at(22, 21),  # ... also the newest of ISO week 47 (Nov 16-22)
        at(21, 21),
        at(15, 21),  # the newest of ISO week 46 (Nov 9-15); week 48 is Nov 25's
    ]


def test_stale_partials_are_those_of_dead_writers(tmp_path: Path) -> None:
    live = tmp_path / f".a.tar.zst.{os.getpid()}.partial"
    dead = tmp_path / ".b.tar.zst.999999999.partial"
    live.write_bytes(b"")
    dead.write_bytes(b"")
    assert store.stale_partials(tmp_path) == [dead]


def test_timer_renders_schedule_and_command(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "timer-test")
    settings["backup"] = {"schedule": "02:45"}
    config = validate(settings)
    inventory = write_inventory(tmp_path, settings)
    units = schedule.render_units(config, inventory, None)
    assert set(units) == {"aiwf-backup-timer-test.service", "aiwf-backup-timer-test.timer"}
    assert "OnCalendar=*-*-* 02:45:00" in units["aiwf-backup-timer-test.timer"]
    assert f"--inventory {inventory} backup" in units["aiwf-backup-timer-test.service"]
    done = schedule.install_units(units, tmp_path / "units")
    assert (tmp_path / "units" / "aiwf-backup-timer-test.timer").read_text() == (
        units["aiwf-backup-timer-test.timer"]
    )
    assert done[-1].startswith("systemd is not running here")


def test_bad_input_is_refused_before_anything_runs(tmp_path: Path) -> None:
    _register_commands()
    inventory = write_inventory(tmp_path, make_settings(tmp_path, "refuse-test"))
    runner = CliRunner()
    result = runner.invoke(app, ["-i", str(inventory), "backup", "no-such-volume", "--dry-run"])
    assert result.exit_code != 0
    assert "unknown volume no-such-volume" in str(result.exception)
    missing = runner.invoke(app, ["-i", str(inventory), "restore", str(tmp_path / "nope.tar.zst")])
    assert "no such archive" in str(missing.exception)
    assert not (tmp_path / "backups").exists()


def test_prune_waits_for_the_newest_backup_to_verify(tmp_path: Path) -> None:
    from aiwf.backup.operations import prune

    settings = make_settings(tmp_path, "proj")
    settings["backup"] = {"retention": {"keep_last": 1, "keep_daily": 0, "keep_weekly": 0}}
    config = validate(settings)
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    newest = dt.datetime.now(dt.UTC)
    archives = _archives(backup_dir, [newest - dt.timedelta(days=2), newest])
    assert prune(config, backup_dir, "tmux-session-data") == []  # the newest is unverified
    store.record_verified(archives[0].path, {"volume": "tmux-session-data"})
    assert prune(config, backup_dir, "tmux-session-data") == [archives[1].path]
    assert [item.path for item in store.list_archives(backup_dir)] == [archives[0].path]


def test_backups_lists_size_age_and_state(tmp_path: Path) -> None:
    import json

    _register_commands()
    settings = make_settings(tmp_path, "proj")
    inventory = write_inventory(tmp_path, settings)
    backup_dir = tmp_path / "backups"
    backup_dir.mkdir()
    now = dt.datetime.now(dt.UTC)
    archives = _archives(backup_dir, [now - dt.timedelta(hours=30), now - dt.timedelta(hours=1)])
    store.record_verified(archives[0].path, {"volume": "tmux-session-data"})
    result = CliRunner().invoke(app, ["-i", str(inventory), "backups", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert [(item["state"], round(item["age_hours"])) for item in listed] == [
        ("verified", 1),
        ("unverified", 30),
    ]
    assert all(item["size"] == 1 for item in listed)
    table = CliRunner().invoke(app, ["-i", str(inventory), "backups"])
    assert "verified" in table.output and "unverified" in table.output
