"""Installing the stack's logrotate file: rendered, checked with ``logrotate -d``, then written.

The file (``templates/logrotate.conf.j2``, rendered by :func:`aiwf.render.render_logrotate`)
rotates the orchestrator's log inside its volume (the orchestrator logs through a
``WatchedFileHandler``, so rename + create is safe) and nginx's logs (nginx reopens them on USR1).

Example::

    plan = plan_install(config)            # refuses a file logrotate would reject
    if plan.state != "unchanged":
        install(plan)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiwf.config import StackConfig
from aiwf.errors import AiwfError

LOGROTATE_DIR = Path("/etc/logrotate.d")


class LogrotateError(AiwfError):
    """logrotate rejects the rendered file, or is not installed."""


def docker_root() -> str:
    """Where the engine keeps volumes (``docker info``), so the log paths point at real files."""
    from aiwf.engine.docker_client import connect, engine_errors

    with engine_errors("reading the engine's data root"):
        return str(connect().info()["DockerRootDir"])


def render(config: StackConfig, engine_root: str | None = None) -> str:
    from aiwf.render import RenderContext, render_logrotate

    context = RenderContext.for_stack(config)
    if engine_root is not None:
        context = context.with_changes(docker_root=engine_root)
    return render_logrotate(config, context)


def check(text: str) -> None:
    """Run ``logrotate -d`` (debug: reads, changes nothing) on ``text``; raise with its errors."""
    executable = shutil.which("logrotate") or "/usr/sbin/logrotate"
    with tempfile.TemporaryDirectory(prefix="aiwf-logrotate-") as work:
        candidate = Path(work) / "candidate.conf"
        candidate.write_text(text)
        candidate.chmod(0o644)
        try:
            result = subprocess.run(
                [executable, "-d", "-s", str(Path(work) / "state"), str(candidate)],
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError:
            raise LogrotateError(
                "logrotate is not installed (apt-get install -y logrotate)"
            ) from None
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    if result.returncode != 0 or errors:
        shown = "; ".join(errors) or result.stderr.strip().splitlines()[-1]
        raise LogrotateError(f"logrotate rejects the rendered file: {shown}")


@dataclass(frozen=True)
class InstallPlan:
    path: Path
    text: str
    state: str  # created, changed or unchanged

    def steps(self) -> list[str]:
        if self.state == "unchanged":
            return [f"{self.path} is up to date"]
        return ["check the rendered file with logrotate -d", f"write {self.path} ({self.state})"]


def plan_install(
    config: StackConfig, directory: Path = LOGROTATE_DIR, engine_root: str | None = None
) -> InstallPlan:
    """Render and check the file (so a bad one is refused before anything is written)."""
    text = render(config, engine_root)
    check(text)
    path = directory / config.project
    try:
        state = "unchanged" if path.read_text() == text else "changed"
    except FileNotFoundError:
        state = "created"
    return InstallPlan(path=path, text=text, state=state)


def install(plan: InstallPlan) -> None:
    from aiwf.files import write_atomic

    if plan.state != "unchanged":
        write_atomic(plan.path, plan.text.encode(), mode=0o644)
