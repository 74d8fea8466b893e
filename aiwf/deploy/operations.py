"""aiwf's own pyinfra operations: the steps pyinfra has no operation for, each idempotent.

Every operation reads a fact first and yields commands only when the host differs from what is
wanted, so a second deploy reports no change for them. Example, inside a ``@deploy``::

    unpacked = unpack_archive(
        name="Unpack the orchestrator sources",
        archive="/srv/aiwf/dist/services-orchestrator.tar.gz",
        destination="/srv/aiwf/src/services/orchestrator",
        digest=sha256_of(local_archive),
    )
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Generator
from typing import Any

import gevent
from pyinfra.api.operation import operation
from pyinfra.context import host

from aiwf.deploy.facts import HostSurvey, StackHealth, StackPlan, TextFile

#: Marker files recording which artifact a folder or venv holds (by SHA-256).
ARCHIVE_MARKER = ".aiwf-archive.sha256"
WHEEL_MARKER = ".aiwf-wheel.sha256"


def _q(value: object) -> str:
    return shlex.quote(str(value))


def _holds(marker: str, digest: str) -> bool:
    """Whether the host's marker file records ``digest`` (the artifact is already in place)."""
    return (host.get_fact(TextFile, path=marker) or "").strip() == digest


@operation()
def unpack_archive(archive: str, destination: str, digest: str) -> Generator[str, None, None]:
    """Replace ``destination`` with the archive's content unless it already holds ``digest``.

    The new tree is unpacked beside the old one and swapped in, so a failed unpack leaves the
    previous sources in place.
    """
    marker = f"{destination}/{ARCHIVE_MARKER}"
    if _holds(marker, digest):
        return
    staging = f"{destination}.new"
    yield (
        f"rm -rf {_q(staging)} && mkdir -p {_q(staging)} && "
        f"tar -xzf {_q(archive)} -C {_q(staging)} && "
        f"echo {_q(digest)} > {_q(staging + '/' + ARCHIVE_MARKER)} && "
        f"rm -rf {_q(destination)} && mv {_q(staging)} {_q(destination)}"
    )


@operation()
def install_wheel(venv: str, wheel: str, digest: str) -> Generator[str, None, None]:
    """A venv at ``venv`` holding ``wheel`` (its dependencies from the package index).

    pip skips a wheel whose version is already installed, so the package itself is reinstalled
    by force (without touching its dependencies) whenever the wheel's digest changed.
    """
    marker = f"{venv}/{WHEEL_MARKER}"
    if _holds(marker, digest):
        return
    pip = f"{venv}/bin/pip"
    yield (
        f"( [ -x {_q(venv + '/bin/python')} ] || python3 -m venv {_q(venv)} ) && "
        f"{_q(pip)} install --quiet --disable-pip-version-check {_q(wheel)} && "
        f"{_q(pip)} install --quiet --disable-pip-version-check --no-deps --force-reinstall "
        f"{_q(wheel)} && echo {_q(digest)} > {_q(marker)}"
    )


@operation()
def engine_answers(start_timeout_s: int = 60) -> Generator[str, None, None]:
    """Start ``dockerd`` on a host without systemd when the engine does not answer."""
    if host.get_fact(HostSurvey, ports=[]).docker_answers:
        return
    yield (
        "(nohup dockerd >/var/log/dockerd.log 2>&1 &) ; "
        f"for attempt in $(seq {start_timeout_s}); do "
        "docker info >/dev/null 2>&1 && exit 0; sleep 1; done; "
        "echo 'dockerd did not answer; see /var/log/dockerd.log' >&2; exit 1"
    )


#: What a new stack cannot have yet; the nightly timer makes the first one.
NO_BACKUP_YET = "no verified backup"


def health_status(report: Any) -> tuple[bool, str]:
    """(healthy?, one line naming what is not) from the host's ``aiwf health --json``.

    A stack is healthy when every check passes, except that a stack never backed up yet (a first
    deploy) is not held against it: the nightly timer the deploy installs makes the first backup.
    """
    if report is None:
        return False, "aiwf is not installed on the host yet"
    if not isinstance(report, dict) or "checks" not in report:
        return False, f"unreadable health report: {str(report)[:300]}"
    failing = [
        check
        for check in report.get("checks") or []
        if isinstance(check, dict)
        and not check.get("ok")
        and not (check.get("check") == "backup" and check.get("detail") == NO_BACKUP_YET)
    ]
    if not failing:
        return True, "healthy"
    return False, "; ".join(
        f"{check.get('check')} {check.get('target')}: {check.get('detail')}" for check in failing
    )


def plan_is_empty(plan: dict[str, Any] | None) -> bool:
    """Whether ``aiwf up --json`` on the host has nothing to do (every step is ``nothing``)."""
    if plan is None or plan.get("error"):
        return False
    steps = plan.get("steps") or []
    busy = [step for step in steps if not isinstance(step, dict) or step.get("action") != "nothing"]
    return not busy and not plan.get("missing_images")


@operation()
def converge_stack(command: str, inputs_changed: Callable[[], bool]) -> Generator[str, None, None]:
    """``aiwf up --build`` on the host when its inputs changed or its plan is not empty.

    The plan is the engine's own (``aiwf up --json``), so a removed or drifted container is put
    back even when nothing was uploaded.
    """
    if not inputs_changed() and plan_is_empty(host.get_fact(StackPlan, command=command)):
        return
    yield f"{_q(command)} up --build"


@operation()
def require_healthy(
    command: str, attempts: int = 10, interval_s: float = 3.0
) -> Generator[str, None, None]:
    """Fail the deploy of this host unless ``aiwf health`` on the host says healthy.

    Changes nothing, so it reports no change on a healthy stack; an unhealthy one fails the
    host with a command that prints why.
    """
    if not host.state.is_executing:
        return
    healthy, why = False, ""
    for _attempt in range(attempts):
        healthy, why = health_status(host.get_fact(StackHealth, command=command))
        if healthy:
            return
        gevent.sleep(interval_s)
    if not healthy:
        yield f"echo {_q('the stack is not healthy: ' + why)} >&2; exit 1"


@operation()
def letsencrypt_certificate(
    command: str, certificate: str, needs_issue: Callable[[str | None], bool]
) -> Generator[str, None, None]:
    """``aiwf certs letsencrypt`` on the host while the served certificate is not a valid one."""
    if not needs_issue(host.get_fact(TextFile, path=certificate)):
        return
    yield f"{_q(command)} certs letsencrypt"
