"""One health sweep of the stack: independent checks, run in parallel, each with a time limit.

Each check is a plain function returning :class:`CheckResult` objects, so each is testable on its
own; :func:`sweep` runs them all and :func:`to_prometheus` renders node-exporter textfile metrics.

Example::

    results = sweep(config)
    bad = [result for result in results if not result.ok]
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, TimeoutError
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiwf.config import VOLUMES, StackConfig
from aiwf.errors import AiwfError

#: Health paths answered by each service directly (inside the network).
HEALTH_PATHS = {
    "nginx": "/health",
    "dashboard": "/",
    "tmux-sessions": "/health",
    "orchestrator": "/health",
    "whisper": "/health",
}
PROBE_SECONDS = 5.0
MIN_FREE_BYTES = 1 << 30
MIN_FREE_FRACTION = 0.05


@dataclass(frozen=True)
class CheckResult:
    """One line of the sweep: what was checked, whether it is fine, and what was seen."""

    check: str
    target: str
    ok: bool
    detail: str
    value: float | None = None


Check = Callable[[StackConfig], list[CheckResult]]


# --- containers ----------


def _containers(config: StackConfig) -> dict[str, Any]:
    from aiwf.engine.docker_client import connect, engine_errors

    client = connect()
    with engine_errors("listing the stack's containers"):
        found = client.containers.list(
            all=True, filters={"label": f"aiwf.project={config.project}"}
        )
        named = client.containers.list(all=True, filters={"name": config.project})
    by_name = {container.name: container for container in [*found, *named]}
    return {
        service: by_name[config.container_name(service)]
        for service in config.enabled_services()
        if config.container_name(service) in by_name
    }


def check_containers(config: StackConfig) -> list[CheckResult]:
    """Every enabled service has a running container, healthy when it has a health check."""
    containers = _containers(config)
    results = []
    for service in config.enabled_services():
        container = containers.get(service)
        if container is None:
            results.append(CheckResult("container", service, False, "no container"))
            continue
        state = container.attrs.get("State", {})
        status = state.get("Status", container.status)
        health = (state.get("Health") or {}).get("Status")
        ok = status == "running" and health in (None, "healthy")
        detail = status if health is None else f"{status}, {health}"
        results.append(CheckResult("container", service, ok, detail))
    return results


def _get(
    url: str, timeout: float = PROBE_SECONDS, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the probe checks reachability; certs are checked apart
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return int(response.status), bytes(response.read(65536))
    except urllib.error.HTTPError as error:
        return int(error.code), error.read(65536)


def check_http_direct(config: StackConfig) -> list[CheckResult]:
    """GET each service's health path on its container IP in the stack's network."""
    containers = _containers(config)
    results = []
    for service, container in containers.items():
        if service not in HEALTH_PATHS:
            continue  # the sandbox serves no HTTP; check_agent asks it instead
        networks = container.attrs.get("NetworkSettings", {}).get("Networks", {})
        address = next(
            (net.get("IPAddress") for net in networks.values() if net.get("IPAddress")), None
        )
        port = 80 if service == "nginx" else config.services.get(service).port
        if not address:
            results.append(CheckResult("http-direct", service, False, "no IP address"))
            continue
        url = f"http://{address}:{port}{HEALTH_PATHS[service]}"
        results.append(_probe("http-direct", service, url))
    return results


def _probe(check: str, target: str, url: str) -> CheckResult:
    try:
        status, _ = _get(url)
    except (OSError, urllib.error.URLError) as error:
        return CheckResult(check, target, False, f"{url}: {error}")
    return CheckResult(check, target, status == 200, f"{url}: HTTP {status}")


def check_through_nginx(config: StackConfig) -> list[CheckResult]:
    """``/health`` through nginx on the published HTTPS port, and the orchestrator's details."""
    base = f"https://127.0.0.1:{config.ports.https}"
    results = [_probe("via-nginx", "nginx", f"{base}/health")]
    if config.services.orchestrator.enabled:
        url = f"{base}/api/orchestrator/health"
        try:
            status, body = _get(url, headers=_service_authorization(config))
            details = json.loads(body) if status == 200 else {}
        except (OSError, ValueError, urllib.error.URLError) as error:
            results.append(CheckResult("orchestrator", "orchestrator", False, f"{url}: {error}"))
        else:
            healthy = details.get("status") == "healthy" and details.get("tmux_service") is True
            summary = ", ".join(
                f"{key}={details.get(key)}"
                for key in ("status", "tmux_service", "pending_count", "active_count")
            )
            results.append(
                CheckResult("orchestrator", "orchestrator", healthy, summary or f"HTTP {status}")
            )
    return results


def _service_authorization(config: StackConfig) -> dict[str, str]:
    """The stack's service token as a Bearer header: nginx lets only logged-in calls through."""
    from aiwf.stack import secrets_dir

    try:
        token = (Path(secrets_dir(config)) / "service_token").read_text().strip()
    except OSError:
        return {}
    return {"Authorization": f"Bearer {token}"}


def check_websocket(config: StackConfig) -> list[CheckResult]:
    """A WebSocket upgrade reaches tmux-sessions through nginx (101, or refused by its auth)."""
    if not config.services.tmux_sessions.enabled:
        return []
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = f"wss://127.0.0.1:{config.ports.https}/ws/sessions/health-probe"
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with connect(url, ssl=context, open_timeout=PROBE_SECONDS):
            return [CheckResult("websocket", "tmux-sessions", True, f"{url}: upgraded")]
    except InvalidStatus as error:
        status = error.response.status_code
        answered = status in (401, 403, 404)  # the service (or its auth) answered the upgrade
        return [CheckResult("websocket", "tmux-sessions", answered, f"{url}: HTTP {status}")]
    except (OSError, TimeoutError) as error:
        return [CheckResult("websocket", "tmux-sessions", False, f"{url}: {error}")]


# --- files on the host ----------


def check_certificate(config: StackConfig) -> list[CheckResult]:
    """Days left above ``tls.warn_days`` and every stack name covered."""
    from aiwf.certs import certificate_names, certificate_status

    try:
        status = certificate_status(config)
    except AiwfError as error:
        return [CheckResult("certificate", "tls", False, str(error))]
    days = status.days_left
    results = [
        CheckResult(
            "certificate",
            "days-left",
            days >= config.tls.warn_days,
            f"{days:.1f} days left (warn below {config.tls.warn_days})",
            round(days, 2),
        )
    ]
    missing = status.missing_names(certificate_names(config))
    results.append(
        CheckResult(
            "certificate",
            "names",
            not missing,
            f"not covered: {', '.join(missing)}" if missing else "all names covered",
        )
    )
    return results


def check_disk(config: StackConfig) -> list[CheckResult]:
    """Free space in the data and backup directories (at least 1 GiB and 5 %)."""
    results = []
    for label, path in (("data", config.paths.data_dir), ("backups", config.paths.backup_dir)):
        assert path is not None
        existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
        usage = shutil.disk_usage(existing)
        ok = usage.free >= MIN_FREE_BYTES and usage.free >= usage.total * MIN_FREE_FRACTION
        detail = f"{existing}: {usage.free / 1e9:.1f} GB free of {usage.total / 1e9:.1f} GB"
        results.append(CheckResult("disk", label, ok, detail, float(usage.free)))
    return results


def check_backups(config: StackConfig) -> list[CheckResult]:
    """The newest verified backup of each volume is younger than ``backup.max_age_hours``."""
    from aiwf.backup import store

    assert config.paths.backup_dir is not None
    limit = dt.timedelta(hours=config.backup.max_age_hours)
    results = []
    for volume in VOLUMES:
        archives = store.list_archives(config.paths.backup_dir, config.project, volume)
        verified = [item for item in archives if item.state == "verified"]
        if not verified:
            results.append(CheckResult("backup", volume, False, "no verified backup"))
            continue
        age = verified[0].age
        hours = age.total_seconds() / 3600
        results.append(
            CheckResult(
                "backup",
                volume,
                age <= limit,
                f"newest verified {hours:.1f} h old (limit {config.backup.max_age_hours} h)",
                round(age.total_seconds()),
            )
        )
    return results


def check_agent(config: StackConfig) -> list[CheckResult]:
    """The pinned Claude Code answers where agents run, as a user that is not root."""
    from aiwf.engine.docker_client import connect
    from aiwf.engine.sandbox import check_claude_code

    try:
        note = check_claude_code(connect(), config)
    except AiwfError as error:
        return [CheckResult("agent", config.agent.runtime, False, str(error))]
    credential = config.agent.credential
    ready = credential != "none"
    detail = f"{note}; credential: {credential}"
    if not ready:
        detail += " (set agent.api_key_env, agent.api_key_file or agent.credentials_file)"
    return [CheckResult("agent", config.agent.runtime, True, detail)]


ALL_CHECKS: tuple[Check, ...] = (
    check_containers,
    check_agent,
    check_http_direct,
    check_through_nginx,
    check_websocket,
    check_certificate,
    check_disk,
    check_backups,
)


def sweep(
    config: StackConfig, checks: tuple[Check, ...] = ALL_CHECKS, limit: float = 15.0
) -> list[CheckResult]:
    """Run ``checks`` in parallel; a check that fails or overruns ``limit`` reports itself."""
    pool = ThreadPoolExecutor(max_workers=len(checks))
    futures = [(check, pool.submit(check, config)) for check in checks]
    results: list[CheckResult] = []
    for check, future in futures:
        name = check.__name__.removeprefix("check_").replace("_", "-")
        try:
            results.extend(future.result(timeout=limit))
        except TimeoutError:
            results.append(CheckResult(name, "-", False, f"no answer within {limit:.0f} s"))
        except Exception as error:  # one broken check must not hide the others
            results.append(CheckResult(name, "-", False, f"{type(error).__name__}: {error}"))
    pool.shutdown(wait=False, cancel_futures=True)
    return results


def as_json(results: list[CheckResult]) -> dict[str, Any]:
    return {
        "healthy": all(result.ok for result in results),
        "checks": [asdict(result) for result in results],
    }


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def to_prometheus(config: StackConfig, results: list[CheckResult]) -> str:
    """node-exporter textfile format: one ``aiwf_health_ok`` per result, plus measured values."""
    project = _label(config.project)
    lines = [
        "# HELP aiwf_health_ok 1 when the check passed, 0 when it did not.",
        "# TYPE aiwf_health_ok gauge",
    ]
    for result in results:
        labels = (
            f'project="{project}",check="{_label(result.check)}",target="{_label(result.target)}"'
        )
        lines.append(f"aiwf_health_ok{{{labels}}} {int(result.ok)}")
    lines += [
        "# HELP aiwf_health_value What the check measured (days, seconds or bytes).",
        "# TYPE aiwf_health_value gauge",
    ]
    for result in results:
        if result.value is not None:
            labels = (
                f'project="{project}",check="{_label(result.check)}",'
                f'target="{_label(result.target)}"'
            )
            lines.append(f"aiwf_health_value{{{labels}}} {result.value}")
    return "\n".join(lines) + "\n"
