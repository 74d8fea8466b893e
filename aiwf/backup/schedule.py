"""The nightly backup as a systemd service + timer, rendered from ``templates/backup.*.j2``.

Example: ``render_units(config, inventory=None)`` gives ``{"aiwf-backup-ai-workflow.service":
"...", "aiwf-backup-ai-workflow.timer": "..."}``; :func:`install_units` writes them (atomically)
and enables the timer when systemd runs.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from aiwf.config import StackConfig
from aiwf.errors import BackupError
from aiwf.files import aiwf_command, write_atomic
from aiwf.paths import templates_dir

SYSTEMD_DIR = Path("/etc/systemd/system")


def unit_name(config: StackConfig) -> str:
    return f"aiwf-backup-{config.project}"


def backup_command(inventory: Path | None, host: str | None) -> str:
    """``aiwf [--inventory I] [--host H] backup``: this same aiwf, the same settings."""
    return aiwf_command(inventory, host, "backup")


def render_units(config: StackConfig, inventory: Path | None, host: str | None) -> dict[str, str]:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    environment = Environment(
        loader=FileSystemLoader(str(templates_dir())),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    unit = unit_name(config)
    values = {
        "project": config.project,
        "unit": unit,
        "schedule": config.backup.schedule,
        "command": backup_command(inventory, host),
    }
    return {
        f"{unit}.service": environment.get_template("backup.service.j2").render(values),
        f"{unit}.timer": environment.get_template("backup.timer.j2").render(values),
    }


def install_units(units: dict[str, str], directory: Path = SYSTEMD_DIR) -> list[str]:
    """Write the unit files; enable the timer when systemd answers. Returns what was done."""
    done = []
    for name, text in units.items():
        write_atomic(directory / name, text.encode())
        done.append(f"wrote {directory / name}")
    systemctl = shutil.which("systemctl")
    if directory != SYSTEMD_DIR or systemctl is None or not Path("/run/systemd/system").is_dir():
        done.append("systemd is not running here: enable the timer where it runs")
        return done
    timer = next(name for name in units if name.endswith(".timer"))
    for command in ([systemctl, "daemon-reload"], [systemctl, "enable", "--now", timer]):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BackupError(f"{' '.join(command)} failed: {result.stderr.strip()}")
        done.append(" ".join(command))
    return done
