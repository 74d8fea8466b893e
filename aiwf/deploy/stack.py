"""The deploy of the stack onto one host, as pyinfra ``@deploy`` functions built from operations.

:func:`deploy_stack` runs, for the current pyinfra host: pre-flight checks (facts only), the
deploy lock, Docker and the host packages, directories, the rendered files, the certificate,
aiwf itself (wheel into a venv, the sources it builds from, the host's settings), ``aiwf up`` on
the host, the nightly backup timer and a final health check. Every step is idempotent::

    from pyinfra.context import host
    deploy_current_host(host)                       # all of deploy.py

    deploy_stack(given=HostInput(settings={...}, source="tests"))   # with pyinfra's API
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, cast

from pyinfra import logger
from pyinfra.api.deploy import deploy
from pyinfra.api.host import Host
from pyinfra.api.operation import OperationMeta
from pyinfra.context import ctx_host, host
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server, systemd

from aiwf.config import StackConfig, validate
from aiwf.deploy import lock, preflight
from aiwf.deploy.artifacts import (
    archive_destination,
    build_wheel,
    sha256_of,
    source_archives,
)
from aiwf.deploy.facts import HostSurvey, LoginIdentity, Survey, TextFile
from aiwf.deploy.operations import (
    converge_stack,
    engine_answers,
    install_wheel,
    letsencrypt_certificate,
    require_healthy,
    unpack_archive,
)
from aiwf.deploy.settings import (
    AGENT_KEY_NAME,
    PLANE_KEY_NAME,
    DeploySettings,
    HostDefaults,
    RemoteLayout,
    host_config,
    host_settings,
    host_settings_text,
    read_agent_key,
    read_plane_key,
)
from aiwf.engine.agent import fetch_claude_code
from aiwf.errors import AiwfError
from aiwf.paths import project_root
from aiwf.stack import acme_webroot, claude_code_dir, rendered_dir, secrets_dir

if TYPE_CHECKING:
    from aiwf.certs import CertificateStatus

#: Debian packages every host gets besides Docker.
BASE_PACKAGES = (
    "ca-certificates",
    "python3",
    "python3-venv",
    "tmux",
    "logrotate",
    "zstd",
    "curl",
    "iproute2",
)
DOCKER_PACKAGES = {
    "debian": ("docker.io",),
    "docker": ("docker-ce", "docker-ce-cli", "containerd.io"),
}


@dataclass(frozen=True)
class HostInput:
    """What the deploy of one host starts from: its raw settings and how to install them."""

    settings: dict[str, Any]
    source: str
    deploy: DeploySettings = field(default_factory=DeploySettings)
    dry: bool = False

    @property
    def config(self) -> StackConfig:
        """The settings validated as given (machine-dependent defaults still local)."""
        return validate(self.settings, self.source)


@dataclass(frozen=True)
class Artifacts:
    """The wheel and source archives, built once per deploy run for every host."""

    wheel: Path
    archives: dict[str, Path]

    def digest(self, path: Path) -> str:
        return sha256_of(path)


_BUILT: dict[tuple[str, ...], Artifacts] = {}
#: Hosts are prepared in parallel greenlets; one of them builds, the others wait for it.
_BUILDING = threading.Lock()


def build_artifacts(folders: Sequence[str], root: Path | None = None) -> Artifacts:
    """Build (once per process and set of service folders) what the hosts get uploaded."""
    root = root or project_root()
    key = (str(root), *sorted(folders))
    with _BUILDING:
        return _built(root, key, folders)


def _built(root: Path, key: tuple[str, ...], folders: Sequence[str]) -> Artifacts:
    if key not in _BUILT:
        if "dashboard" in folders:
            from aiwf.engine.build import ensure_dashboard_dist

            ensure_dashboard_dist(root / "services" / "dashboard", lambda _s, _l: None)
        out = Path(tempfile.mkdtemp(prefix="aiwf-deploy-"))
        atexit.register(shutil.rmtree, out, True)
        _BUILT[key] = Artifacts(
            wheel=build_wheel(root, out / "wheel"),
            archives=source_archives(root, sorted(folders), out / "sources"),
        )
    return _BUILT[key]


def _fail_host(messages: Sequence[str]) -> None:
    """Stop this host's deploy before any operation: one line per reason, other hosts go on."""
    for message in messages:
        logger.error(f"{host.print_prefix}{message}")
    current = _current_host()
    current.state.fail_hosts({current})  # type: ignore[no-untyped-call]


def _current_host() -> Host:
    """The host being prepared, itself: ``pyinfra.context.host`` is a proxy whose hash and
    equality follow whichever host is current, so it must not be kept in a set or dict."""
    current = ctx_host.get()  # type: ignore[no-untyped-call]
    assert isinstance(current, Host)
    return current


def deploy_current_host(current: Any) -> None:
    """``deploy.py``'s one call: this host's settings from the inventory, then the deploy."""
    from aiwf.deploy.entry import host_input

    try:
        given = host_input(current)
    except AiwfError as error:
        _fail_host([str(error)])
        return
    deploy_stack(given=given)


@deploy("Docker engine and host packages")
def docker_engine(settings: DeploySettings, survey: Survey) -> None:
    """Docker from Debian (``docker.io``) or Docker's apt repository, on and enabled at boot."""
    wanted = [*BASE_PACKAGES, *DOCKER_PACKAGES[settings.docker_source], *settings.extra_packages]
    installed = host.get_fact(DebPackages) or {}
    missing = [name for name in wanted if name not in installed]
    if settings.docker_source == "docker":
        distribution = survey.distribution
        apt.key(
            name="Docker's apt signing key",
            src=f"{settings.docker_apt_url}/{distribution}/gpg",
        )
        apt.repo(
            name="Docker's apt repository",
            src=f"deb [arch={survey.arch}] {settings.docker_apt_url}/{distribution} "
            f"{_codename(survey)} stable",
            filename="docker",
        )
    if missing:
        apt.update(name="Update the apt package lists")
        apt.packages(name="Install Docker and the host packages", packages=missing)
    if survey.systemd:
        systemd.service(
            name="Docker runs and starts at boot",
            service="docker",
            running=True,
            enabled=True,
        )
    else:
        logger.warning(
            f"{host.print_prefix}systemd does not run here: Docker cannot be enabled at boot"
        )
        engine_answers(name="Docker engine answers")


def _codename(survey: Survey) -> str:
    return {"12": "bookworm", "13": "trixie", "24.04": "noble", "24.10": "oracular"}.get(
        survey.version, "stable"
    )


@deploy("Directories")
def directories(config: StackConfig, layout: RemoteLayout) -> None:
    """The folders aiwf and the stack's files live in, root's, private ones 0700."""
    paths = config.paths
    private: list[object] = [
        secrets_dir(config),
        layout.secrets,
        paths.certs_dir,
        paths.backup_dir,
    ]
    shared: list[object] = [
        paths.data_dir,
        layout.root,
        layout.root / "bin",
        layout.dist,
        layout.source,
        layout.source / "services",
        layout.settings_file.parent,
        rendered_dir(config),
        acme_webroot(config),
        PurePosixPath(paths.data_dir) / "logs" / "nginx",
    ]
    for folder in shared:
        files.directory(name=f"Folder {folder}", path=str(folder), user="root", mode="755")
    for folder in private:
        files.directory(name=f"Private folder {folder}", path=str(folder), user="root", mode="700")


@deploy("Working folders")
def working_folders(config: StackConfig, settings: DeploySettings) -> None:
    """The folders people and agents work in, owned by ``aiwf_deploy.owner``.

    Run after ``aiwf up``, which creates them (and fills a new ticket folder with examples).
    """
    paths = config.paths
    for folder in (paths.workspace, paths.tickets_dir, paths.completion_dir):
        files.directory(
            name=f"Working folder {folder}", path=str(folder), user=settings.owner, mode="755"
        )


@deploy("Rendered files")
def rendered_files(config: StackConfig, layout: RemoteLayout) -> None:
    """nginx.conf and the compose file where the containers read them; logrotate's file."""
    from aiwf.render import RenderContext, render_all

    claude_json = config.paths.claude_json
    present = claude_json is not None and bool(host.get_fact(File, path=str(claude_json)))
    context = RenderContext.for_stack(config).with_changes(
        services_dir=str(layout.source / "services"), claude_json_present=present
    )
    texts = render_all(config, context)
    for name, text in texts.items():
        if name == "logrotate.conf":
            continue
        files.put(
            name=f"Rendered {name}",
            src=StringIO(text),
            dest=str(rendered_dir(config) / name),
            user="root",
            mode="644",
        )
    if "logrotate.conf" in texts:
        files.put(
            name="logrotate's file for the stack",
            src=StringIO(texts["logrotate.conf"]),
            dest=f"/etc/logrotate.d/aiwf-{config.project}",
            user="root",
            mode="644",
        )


@deploy("Application")
def application(
    config: StackConfig,
    layout: RemoteLayout,
    settings: dict[str, Any],
    plane_key: str | None,
    agent_key: str | None,
    artifacts: Artifacts,
) -> list[OperationMeta]:
    """aiwf's wheel in a venv, the sources ``aiwf up`` builds from, the host's settings, the
    keys, and the pinned Claude Code (fetched here, so the host needs no npm).

    Returns the operations after whose change ``aiwf up`` must run (the wheel, the sources, the
    keys, Claude Code). Settings and rendered files need no such hint: the engine's plan sees
    them.
    """
    remote_wheel = layout.dist / artifacts.wheel.name
    files.put(
        name="aiwf wheel uploaded",
        src=str(artifacts.wheel),
        dest=str(remote_wheel),
        user="root",
        mode="644",
    )
    build_inputs = [
        install_wheel(
            name="aiwf installed in its venv",
            venv=str(layout.venv),
            wheel=str(remote_wheel),
            digest=artifacts.digest(artifacts.wheel),
        )
    ]
    for key, archive in artifacts.archives.items():
        remote = layout.dist / archive.name
        files.put(
            name=f"{archive_destination(key)} sources uploaded",
            src=str(archive),
            dest=str(remote),
            user="root",
            mode="644",
        )
        build_inputs.append(
            unpack_archive(
                name=f"{archive_destination(key)} sources in place",
                archive=str(remote),
                destination=str(layout.source / archive_destination(key)),
                digest=artifacts.digest(archive),
            )
        )
    files.put(
        name="Host settings",
        src=StringIO(host_settings_text(settings)),
        dest=str(layout.settings_file),
        user="root",
        mode="600",
    )
    files.put(
        name="aiwf command for this host",
        src=StringIO(_command_script(layout)),
        dest=str(layout.command),
        user="root",
        mode="755",
    )
    # ``aiwf up`` copies a key into the stack's secrets: a new key needs a run of it.
    for label, secret, name in (
        ("Plane API key", plane_key, PLANE_KEY_NAME),
        ("Agent API key", agent_key, AGENT_KEY_NAME),
    ):
        if secret is not None:
            build_inputs.append(
                files.put(
                    name=label,
                    src=StringIO(secret + "\n"),
                    dest=str(layout.secrets / name),
                    user="root",
                    mode="600",
                )
            )
    if "sandbox" in config.enabled_services():
        version = config.agent.claude_code_version
        build_inputs.append(
            files.put(
                name=f"Claude Code {version}",
                src=str(fetch_claude_code(version)),
                dest=str(PurePosixPath(claude_code_dir(config)) / "claude"),
                user="root",
                mode="755",
            )
        )
    return build_inputs


def _command_script(layout: RemoteLayout) -> str:
    return (
        "#!/bin/sh\n"
        "# aiwf with this host's settings; written by the aiwf deploy.\n"
        f"AIWF_ROOT={layout.source} exec {layout.venv}/bin/aiwf "
        f'--inventory {layout.settings_file} "$@"\n'
    )


@deploy("Nightly backup")
def backup_timer(config: StackConfig, layout: RemoteLayout, survey: Survey) -> None:
    """The backup service and timer units; enabled where systemd runs."""
    from aiwf.backup.schedule import unit_name
    from aiwf.render import render_template

    unit = unit_name(config)
    values = {
        "project": config.project,
        "unit": unit,
        "schedule": config.backup.schedule,
        "command": f"{layout.command} backup",
    }
    written = [
        files.put(
            name=f"{unit}.{kind} unit",
            src=StringIO(render_template(f"backup.{kind}.j2", **values)),
            dest=f"/etc/systemd/system/{unit}.{kind}",
            user="root",
            mode="644",
        )
        for kind in ("service", "timer")
    ]
    if survey.systemd:
        systemd.service(
            name="Backup timer enabled",
            service=f"{unit}.timer",
            running=True,
            enabled=True,
            daemon_reload=any(unit_file.changed for unit_file in written),
        )


def certificate_status(pem: str | None) -> CertificateStatus | None:
    """The certificate a host serves, parsed here from its PEM text; ``None`` if none or bad."""
    from aiwf.certs import read_certificate

    if not pem:
        return None
    with tempfile.TemporaryDirectory(prefix="aiwf-cert-") as folder:
        path = Path(folder) / "fullchain.pem"
        path.write_text(pem + "\n")
        try:
            return read_certificate(path)
        except AiwfError:
            return None


def certificate_is_good(status: CertificateStatus | None, config: StackConfig) -> bool:
    """Covers the stack's names and is not about to expire."""
    from aiwf.certs import certificate_names

    return (
        status is not None
        and not status.missing_names(certificate_names(config))
        and status.days_left >= config.tls.warn_days
    )


@deploy("Certificate")
def certificate(config: StackConfig) -> OperationMeta | None:
    """The certificate nginx serves: self-signed ones made here and uploaded (0600).

    With ``tls.mode: letsencrypt`` a self-signed one is put in place only while there is none,
    so nginx can start and answer certbot's challenge; certbot then runs on the host.
    Returns the upload of a new certificate, if one is made.
    """
    from aiwf.certs import CERT_FILE, KEY_FILE, certificate_names, create_self_signed

    if config.tls.mode == "files":
        return None
    if config.tls.mode == "letsencrypt":
        apt.packages(name="certbot", packages=["certbot"])
    certs_dir = PurePosixPath(str(config.paths.certs_dir))
    status = certificate_status(host.get_fact(TextFile, path=str(certs_dir / CERT_FILE)))
    wanted_new = (
        status is None
        if config.tls.mode == "letsencrypt"
        else not certificate_is_good(status, config)
    )
    if not wanted_new:
        return None
    made = Path(tempfile.mkdtemp(prefix="aiwf-deploy-cert-"))
    atexit.register(shutil.rmtree, made, True)
    create_self_signed(made, certificate_names(config))
    files.put(
        name="Self-signed key (0600)",
        src=str(made / KEY_FILE),
        dest=str(certs_dir / KEY_FILE),
        user="root",
        mode="600",
    )
    return files.put(
        name="Self-signed certificate",
        src=str(made / CERT_FILE),
        dest=str(certs_dir / CERT_FILE),
        user="root",
        mode="600",
    )


def _needs_issue(config: StackConfig) -> Callable[[str | None], bool]:
    """Whether certbot must run: the served certificate is self-signed or not good enough."""

    def check(pem: str | None) -> bool:
        status = certificate_status(pem)
        return status is None or status.self_signed or not certificate_is_good(status, config)

    return check


@deploy("aiwf stack")
def deploy_stack(given: HostInput) -> None:
    """The whole deploy of the current host; see the module's docstring for the steps.

    A problem found before the first operation (pre-flight, the lock, a missing secret) stops
    this host with one line and leaves it as it was.
    """
    try:
        _deploy_stack(given)
    except AiwfError as error:
        _fail_host([str(error)])


def _deploy_stack(given: HostInput) -> None:
    current = _current_host()
    state = current.state
    base = given.config
    identity = host.get_fact(LoginIdentity, _sudo=False)
    found = preflight.identity_problems(
        identity, bool(host.data.get("_sudo")), bool(host.data.get("_use_sudo_password"))
    )
    if found:
        _fail_host([f"pre-flight: {problem}" for problem in found])
        return
    survey = host.get_fact(HostSurvey, ports=[base.ports.https, base.ports.http])
    found = preflight.host_problems(survey, base)
    if found:
        _fail_host([f"pre-flight: {problem}" for problem in found])
        return
    layout = RemoteLayout.of(base, given.deploy)
    settings = host_settings(given.settings, HostDefaults(survey.home), layout)
    config = host_config(settings, given.source)
    plane_key = read_plane_key(given.settings)
    agent_key = read_agent_key(given.settings)
    artifacts = build_artifacts(_folders(config))
    holder = lock.acquire_lock(
        state, current, layout.lock, given.deploy.lock_stale_minutes, check_only=given.dry
    )
    if holder is not None:
        lock.hold(state, current, layout.lock, holder)
    try:
        docker_engine(settings=given.deploy, survey=survey)
        directories(config=config, layout=layout)
        rendered_files(config=config, layout=layout)
        new_certificate = cast(OperationMeta | None, certificate(config=config))
        inputs = cast(
            list[OperationMeta],
            application(
                config=config,
                layout=layout,
                settings=settings,
                plane_key=plane_key,
                agent_key=agent_key,
                artifacts=artifacts,
            ),
        )
        command = str(layout.command)
        converge_stack(
            name="Stack converged (aiwf up on the host)",
            command=command,
            inputs_changed=lambda: any(op.changed for op in inputs),
        )
        if new_certificate is not None:
            reload_for_certificate(config, new_certificate)
        working_folders(config=config, settings=given.deploy)
        if config.tls.mode == "letsencrypt":
            letsencrypt_certificate(
                name="Let's Encrypt certificate",
                command=command,
                certificate=str(Path(str(config.paths.certs_dir)) / "fullchain.pem"),
                needs_issue=_needs_issue(config),
            )
        backup_timer(config=config, layout=layout, survey=survey)
        last = require_healthy(name="Stack healthy", command=command)
    except BaseException:
        lock.release_now(state, current)
        raise
    lock.release_after(state, current, last)


def reload_for_certificate(config: StackConfig, uploaded: OperationMeta) -> None:
    """A running nginx reloads a certificate uploaded in this deploy (a new one reads it anyway)."""
    nginx = config.container_name("nginx")
    server.shell(
        name="nginx reloads the new certificate",
        commands=[
            f"if [ \"$(docker inspect -f '{{{{.State.Running}}}}' {nginx} 2>/dev/null)\" = true ]; "
            f"then docker exec {nginx} nginx -s reload; fi"
        ],
        _if=uploaded.did_change,
    )


def _folders(config: StackConfig) -> list[str]:
    from aiwf.stack import BUILD_FOLDERS

    return [BUILD_FOLDERS[name] for name in config.enabled_services()]
