"""``aiwf up`` and friends: read, plan, then apply, under the deploy lock, into the audit log.

:func:`plan_up` reads the engine (a few list calls) and the rendered files and returns an
:class:`UpPlan` (data only). :meth:`Executor.apply` applies one: network and volumes, then
containers in dependency order, each level started together and waited on until healthy. A recreated
container that does not become healthy is replaced by the one it replaced (kept stopped and
renamed until then), and the rollout stops with the failing container's last log lines.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aiwf.config import StackConfig
from aiwf.engine import history
from aiwf.engine.build import BuiltImage, build_images, image_tag, select_specs
from aiwf.engine.desired import DesiredContainer, desired_container
from aiwf.engine.docker_client import engine_errors
from aiwf.engine.labels import LABEL_PROJECT
from aiwf.engine.nginx import reload_config
from aiwf.engine.observe import ObservedStack, list_containers, observe
from aiwf.engine.plan import Action, Step, changes, plan_stack
from aiwf.errors import EngineError
from aiwf.files import write_atomic
from aiwf.stack import (
    ServiceSpec,
    claude_json_mounted,
    image_name,
    rendered_dir,
    stack_volumes,
)

if TYPE_CHECKING:
    import docker

#: Seconds to wait for a container's health beyond what its health check allows.
HEALTH_MARGIN_S = 30
STOP_TIMEOUT_S = 10
Say = Callable[[str], None]
Status = Callable[[str, str], None]


def _silent(*_args: str) -> None:
    return None


@dataclass
class UpPlan:
    """What ``up`` will do: steps, images to build, the rendered files and nginx's state."""

    steps: list[Step]
    missing_images: list[str]
    rendered: dict[str, str]
    specs: list[ServiceSpec]
    observed: ObservedStack
    notes: list[str] = field(default_factory=list)

    def changes(self) -> list[Step]:
        return changes(self.steps)

    def lines(self) -> list[str]:
        """The plan as text, one step a line (builds first)."""
        builds = [f"build {name}: image missing" for name in self.missing_images]
        return builds + [str(step) for step in self.steps]


def render_key(config: StackConfig) -> str:
    """A hash of everything rendering reads: the settings, the templates and the render code."""
    import hashlib

    import aiwf.stack
    from aiwf.paths import templates_dir

    digest = hashlib.sha256(config.model_dump_json().encode())
    digest.update(b"claude.json present" if claude_json_mounted(config) else b"-")
    code = Path(aiwf.stack.__file__).parent
    for path in [
        code / "render.py",
        code / "stack.py",
        code / "config.py",
        *sorted(templates_dir().rglob("*")),
    ]:
        if path.is_file():
            digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def render_files(config: StackConfig) -> dict[str, str]:
    """The rendered files (nginx.conf, compose.yaml, logrotate.conf, ...) as text.

    Rendering is pure, so its result is kept in the state folder under :func:`render_key`; a
    no-op ``up`` reads it back instead of compiling the templates again.
    """
    import json

    cache = config.paths.data_dir / "state" / "rendered-cache.json"
    key = render_key(config)
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key and isinstance(cached.get("files"), dict):
            return {str(name): str(text) for name, text in cached["files"].items()}
    except (OSError, ValueError):
        pass
    from aiwf.render import render_all

    files = render_all(config)
    if cache.parent.is_dir():
        write_atomic(cache, json.dumps({"key": key, "files": files}).encode())
    return files


def loaded_nginx_digest_path(config: StackConfig) -> Path:
    return config.paths.data_dir / "state" / "nginx-loaded.sha256"


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def nginx_needs_reload(config: StackConfig, rendered: dict[str, str]) -> bool:
    """True when the rendered nginx.conf is not the one nginx last loaded."""
    text = rendered.get("nginx.conf")
    if text is None:
        return False
    try:
        loaded = loaded_nginx_digest_path(config).read_text().strip()
    except FileNotFoundError:
        return True
    return loaded != _digest(text)


def plan_up(
    client: docker.DockerClient,
    config: StackConfig,
    services: Sequence[str] | None = None,
    built: dict[str, BuiltImage] | None = None,
    rendered: dict[str, str] | None = None,
) -> UpPlan:
    """Compare what the config asks for with what the engine has; nothing is changed."""
    specs = select_specs(config, services)
    tags = [image_tag(spec) for spec in specs if not (built and spec.service in built)]
    observed = observe(client, config.project, config.network_name, tags)
    rendered = render_files(config) if rendered is None else rendered
    desired: list[DesiredContainer] = []
    missing: list[str] = []
    for spec in specs:
        image_id = built[spec.service].image_id if built and spec.service in built else None
        image_id = image_id or observed.images.get(image_tag(spec))
        if image_id is None:
            missing.append(spec.service)
            image_id = "(to be built)"
        desired.append(desired_container(config, spec, image_id))
    volumes = list(stack_volumes(config).values())
    steps = plan_stack(
        desired,
        observed,
        config.network_name,
        volumes,
        reload_nginx=nginx_needs_reload(config, rendered),
    )
    if services:  # a partial up leaves the other containers alone
        steps = [step for step in steps if step.action is not Action.REMOVE_ORPHAN]
    return UpPlan(steps, missing, rendered, specs, observed)


def write_rendered(config: StackConfig, rendered: dict[str, str], nginx: bool) -> list[str]:
    """Write the rendered files that changed; nginx.conf only when ``nginx`` (else: reload)."""
    folder = Path(rendered_dir(config))
    written = []
    for name, text in rendered.items():
        if name == "nginx.conf" and not nginx:
            continue
        path = folder / name
        try:
            same = path.read_bytes() == text.encode()
        except FileNotFoundError:
            same = False
        if not same:
            write_atomic(path, text.encode())
            written.append(name)
    return written


def with_logs(message: str, logs: str, lines: int = 15) -> str:
    """``message`` followed by the container's last log lines, indented under it."""
    tail = logs.splitlines()[-lines:]
    if not tail:
        return message
    return message + "\n  last log lines:\n    " + "\n    ".join(tail)


def _levels(steps: Sequence[Step]) -> list[list[Step]]:
    """Container steps grouped so each group depends only on groups before it."""
    level: dict[str, int] = {}
    container_steps = [s for s in steps if s.desired is not None]
    for step in container_steps:
        assert step.desired is not None
        deps = [level[d] for d in step.desired.depends_on if d in level]
        level[step.desired.service] = 1 + max(deps) if deps else 0
    groups: list[list[Step]] = [[] for _ in range(1 + max(level.values(), default=-1))]
    for step in container_steps:
        assert step.desired is not None
        groups[level[step.desired.service]].append(step)
    return groups


@dataclass
class Executor:
    """Applies plans to one engine for one stack; reports through ``say`` and ``status``."""

    client: docker.DockerClient
    config: StackConfig
    say: Say = _silent
    status: Status = _silent
    #: The rendered files of the plan being applied.
    rendered: dict[str, str] = field(default_factory=dict)
    #: Containers started by this executor (id -> spec), confirmed healthy by Docker at the end.
    started: dict[str, DesiredContainer] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.config.paths.data_dir

    def record(self, action: str, target: str, **details: object) -> None:
        history.record(self.data_dir, action, target, project=self.config.project, **details)

    # -- infrastructure -------------------------------------------------------------------------
    def create_network(self, name: str) -> None:
        with engine_errors(f"create network {name}"):
            self.client.api.create_network(
                name, driver="bridge", labels={LABEL_PROJECT: self.config.project}
            )
        self.record("create-network", name, outcome="ok")

    def create_volume(self, name: str) -> None:
        with engine_errors(f"create volume {name}"):
            self.client.api.create_volume(name, labels={LABEL_PROJECT: self.config.project})
        self.record("create-volume", name, outcome="ok")

    # -- containers -----------------------------------------------------------------------------
    def create_and_start(self, want: DesiredContainer) -> str:
        with engine_errors(f"create {want.name}"):
            created = self.client.api.create_container_from_config(want.body, want.name)
        container_id = str(created["Id"])
        with engine_errors(f"start {want.name}"):
            self.client.api.start(container_id)
        return container_id

    def stop_and_remove(self, container: str) -> None:
        import docker.errors

        with engine_errors(f"remove {container}"):
            try:
                self.client.api.stop(container, timeout=STOP_TIMEOUT_S)
                self.client.api.remove_container(container, force=True)
            except docker.errors.NotFound:
                pass

    def logs_tail(self, container: str, lines: int = 20) -> str:
        try:
            with engine_errors(f"read the logs of {container}"):
                raw = self.client.api.logs(container, tail=lines)
        except EngineError as error:
            return str(error)
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        return text.rstrip()

    def health_timeout(self, want: DesiredContainer) -> float:
        check = want.body["Healthcheck"]
        nanoseconds = int(check["StartPeriod"]) + int(check["Interval"]) * (
            int(check["Retries"]) + 1
        )
        return nanoseconds / 1e9 + HEALTH_MARGIN_S

    def probe(self, container: str, want: DesiredContainer) -> bool:
        """Run the container's own health check command once, now; True when it passes."""
        test = list(want.body["Healthcheck"]["Test"])
        command = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", " ".join(test[1:])]
        try:
            with engine_errors(f"probe {want.name}"):
                exec_id = self.client.api.exec_create(container, command)["Id"]
                self.client.api.exec_start(exec_id)
                return bool(self.client.api.exec_inspect(exec_id).get("ExitCode") == 0)
        except EngineError:
            return False

    def wait_healthy(
        self, waiting: dict[str, DesiredContainer], probe: bool = False
    ) -> dict[str, str]:
        """Wait for each container id -> its desired spec; return id -> failure reason.

        Docker runs a container's first health check one interval after it starts. With
        ``probe`` the same check also runs here every second while Docker still says
        ``starting``, so the next dependency level starts as soon as this one answers.
        """
        import docker.errors

        next_probe: dict[str, float] = {cid: 0.0 for cid in waiting}
        deadline = {cid: time.monotonic() + self.health_timeout(w) for cid, w in waiting.items()}
        pending = dict(waiting)
        failures: dict[str, str] = {}
        while pending:
            for cid, want in list(pending.items()):
                try:
                    with engine_errors(f"inspect {want.name}"):
                        state = self.client.api.inspect_container(cid)["State"]
                except EngineError as error:
                    if isinstance(error.__context__, docker.errors.NotFound):
                        failures[cid] = "the container disappeared"
                        del pending[cid]
                        continue
                    raise
                health = (state.get("Health") or {}).get("Status")
                if not state.get("Running"):
                    failures[cid] = f"exited with status {state.get('ExitCode')}"
                elif health in (None, "healthy"):
                    self.status(want.service, "healthy" if health else "running")
                    del pending[cid]
                    continue
                elif health == "unhealthy":
                    failures[cid] = "its health check failed"
                elif time.monotonic() > deadline[cid]:
                    failures[cid] = "it did not become healthy in time"
                elif probe and time.monotonic() >= next_probe[cid] and self.probe(cid, want):
                    self.status(want.service, "healthy (its health check passes)")
                    del pending[cid]
                    continue
                else:
                    next_probe[cid] = time.monotonic() + 1.0
                    self.status(want.service, f"waiting for health ({health})")
                    continue
                self.status(want.service, f"failed: {failures[cid]}")
                del pending[cid]
            if pending:
                time.sleep(0.5)
        return failures

    def _previous_name(self, want: DesiredContainer) -> str:
        return f"{want.name}-previous"

    def _set_aside(self, step: Step) -> str | None:
        """Stop the current container and rename it out of the way; its id."""
        import docker.errors

        if step.current is None:
            return None
        want = step.desired
        assert want is not None
        aside = self._previous_name(want)
        with engine_errors(f"set {want.name} aside"):
            with contextlib.suppress(docker.errors.NotFound):
                self.client.api.remove_container(aside, force=True)
            self.client.api.stop(step.current.id, timeout=STOP_TIMEOUT_S)
            self.client.api.rename(step.current.id, aside)
        if step.current.image_id != want.image_id and step.current.image_id.startswith("sha256:"):
            repository = image_name(self.config, want.service)
            with engine_errors(f"tag the previous image of {want.service}"):
                self.client.api.tag(step.current.image_id, repository, "previous")
        return step.current.id

    def _roll_back(self, step: Step, new_id: str | None, reason: str) -> EngineError:
        want = step.desired
        assert want is not None
        logs = self.logs_tail(new_id) if new_id else ""
        if new_id:
            self.stop_and_remove(new_id)
        message = f"{want.service}: the new container failed: {reason}"
        if step.current is not None:
            with engine_errors(f"put the previous {want.name} back"):
                self.client.api.rename(step.current.id, want.name)
                self.client.api.start(step.current.id)
                if step.current.image_id != want.image_id:
                    # the image that failed stays cached; :latest is the one that works
                    repository = image_name(self.config, want.service)
                    self.client.api.tag(step.current.image_id, repository, "latest")
            back = self.wait_healthy({step.current.id: want})
            if back:
                message += "; the previous container is back but not healthy either"
            else:
                message += "; the previous container is back and healthy"
            self.record("rollback", want.service, reason=reason, outcome="rolled back")
        else:
            self.record(step.action.value, want.service, reason=reason, outcome="failed")
        return EngineError(with_logs(message, logs))

    def apply_level(self, steps: Sequence[Step]) -> None:
        """Start every container of one dependency level, then wait for all of them."""
        started: dict[str, tuple[Step, DesiredContainer]] = {}
        for step in steps:
            want = step.desired
            assert want is not None
            if step.action is Action.RELOAD:
                self.reload_nginx(step)
                continue
            if step.action is Action.NOTHING:
                continue
            self.status(want.service, f"{step.action.value}: {step.reason}")
            if step.action is Action.START:
                assert step.current is not None
                with engine_errors(f"start {want.name}"):
                    self.client.api.start(step.current.id)
                started[step.current.id] = (step, want)
                continue
            if step.action is Action.RECREATE:
                self._set_aside(step)
            try:
                new_id = self.create_and_start(want)
            except EngineError as error:
                raise self._roll_back(step, None, str(error)) from None
            started[new_id] = (step, want)
        self.started.update({cid: want for cid, (_s, want) in started.items()})
        failures = self.wait_healthy({cid: want for cid, (_s, want) in started.items()}, True)
        first_error: EngineError | None = None
        for cid, (step, want) in started.items():
            if cid in failures:
                if step.action is Action.START:
                    logs = self.logs_tail(cid)
                    self.record("start", want.service, outcome="failed", reason=failures[cid])
                    first_error = first_error or EngineError(
                        with_logs(f"{want.service}: {failures[cid]}", logs)
                    )
                    continue
                first_error = first_error or self._roll_back(step, cid, failures[cid])
                continue
            if step.action is Action.RECREATE and step.current is not None:
                self.stop_and_remove(step.current.id)
            self.record(
                step.action.value,
                want.service,
                reason=step.reason,
                outcome="ok",
                container=cid[:12],
                image=want.image_id[:19],
            )
        if first_error is not None:
            raise first_error

    def confirm_healthy(self) -> None:
        """Wait until Docker itself reports every started container healthy."""
        say, self.status = self.status, _silent
        try:
            failures = self.wait_healthy(self.started)
        finally:
            self.status = say
        if failures:
            cid, reason = next(iter(failures.items()))
            logs = self.logs_tail(cid)
            raise EngineError(with_logs(f"{self.started[cid].service}: {reason}", logs))

    def reload_nginx(self, step: Step, rendered: dict[str, str] | None = None) -> None:
        assert step.current is not None
        text = (rendered or self.rendered)["nginx.conf"]
        live = Path(rendered_dir(self.config)) / "nginx.conf"
        self.status("nginx", "testing the new nginx.conf")
        try:
            reload_config(self.client, step.current.id, text, live, write_atomic)
        except EngineError as error:
            self.record("reload", "nginx", outcome="refused", reason=str(error).splitlines()[0])
            raise
        self.remember_nginx(text)
        self.record("reload", "nginx", reason=step.reason, outcome="ok")
        self.status("nginx", "reloaded")

    def remember_nginx(self, text: str) -> None:
        write_atomic(loaded_nginx_digest_path(self.config), _digest(text).encode())

    def remove_orphan(self, step: Step) -> None:
        self.status(step.target, "removing")
        self.stop_and_remove(step.current.id if step.current else step.target)
        self.record("remove-orphan", step.target, reason=step.reason, outcome="ok")

    def apply(self, plan: UpPlan) -> list[Step]:
        """Apply ``plan``; the steps that changed something."""
        self.rendered = plan.rendered
        nginx_step = next((s for s in plan.steps if s.target == "nginx" and s.desired), None)
        nginx_fresh = nginx_step is not None and nginx_step.action in (
            Action.CREATE,
            Action.RECREATE,
            Action.START,
        )
        nginx_absent = (
            nginx_step is None or not (Path(rendered_dir(self.config)) / "nginx.conf").exists()
        )
        written = write_rendered(self.config, plan.rendered, nginx=nginx_fresh or nginx_absent)
        for name in written:
            self.record("write", name, outcome="ok")
        for step in plan.steps:
            if step.action is Action.CREATE_NETWORK:
                self.create_network(step.target)
            elif step.action is Action.CREATE_VOLUME:
                self.create_volume(step.target)
        for level in _levels(plan.steps):
            self.apply_level(level)
        self.confirm_healthy()
        if nginx_fresh and "nginx.conf" in plan.rendered:
            self.remember_nginx(plan.rendered["nginx.conf"])
        for step in plan.steps:
            if step.action is Action.REMOVE_ORPHAN:
                self.remove_orphan(step)
        return plan.changes()


@dataclass
class UpOutcome:
    """What ``up`` did (or, in a dry run, would do)."""

    plan: UpPlan
    applied: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    admin_password_file: Path | None = None
    built: dict[str, BuiltImage] = field(default_factory=dict)
    #: Preparing the host changed something (a folder, a secret, the host tmux server).
    host_changed: bool = False

    @property
    def settled(self) -> bool:
        """Nothing was built, applied or changed on the host: the stack was as configured."""
        return not (self.applied or self.built or self.host_changed)


def stack_url(config: StackConfig) -> str:
    """``https://localhost/`` (with the port when it is not 443)."""
    port = "" if config.ports.https == 443 else f":{config.ports.https}"
    return f"https://{config.domains[0]}{port}/"


def up(
    client: docker.DockerClient,
    config: StackConfig,
    services: Sequence[str] | None = None,
    *,
    dry_run: bool = False,
    build: bool = False,
    force: bool = False,
    say: Say = _silent,
    status: Status = _silent,
    lock_timeout_s: float = 0,
) -> UpOutcome:
    """Converge the engine on the config: prepare the host, build, plan, apply.

    A plan that would recreate the sandbox while agents run in it is refused (naming their
    tickets) unless ``force``: recreating it ends every session.
    """
    from aiwf.engine.host import prepare_host
    from aiwf.engine.lock import deploy_lock
    from aiwf.engine.sandbox import check_claude_code, refuse_ending_sessions

    if dry_run:
        return UpOutcome(plan_up(client, config, services))
    with deploy_lock(config.paths.data_dir, timeout_s=lock_timeout_s):
        report = prepare_host(config)
        for note in report.notes:
            history.record(config.paths.data_dir, "prepare", note, project=config.project)
        plan = plan_up(client, config, services)
        to_build = [s.service for s in plan.specs] if build else plan.missing_images
        built = build_images(client, config, to_build, status) if to_build else {}
        if built:
            for name, image in built.items():
                if image.built:
                    history.record(
                        config.paths.data_dir,
                        "build",
                        name,
                        image=image.image_id[:19],
                        project=config.project,
                        outcome="ok",
                    )
                report.notes.extend(image.notes)
            plan = plan_up(client, config, services, built=built, rendered=plan.rendered)
        if not force:
            refuse_ending_sessions(client, config, plan)
        executor = Executor(client, config, say=say, status=status)
        applied = executor.apply(plan)
        if config.agent.runtime == "host" or any(s.target == "sandbox" for s in plan.steps):
            report.notes.append(check_claude_code(client, config))
    notes = list(dict.fromkeys(report.notes))
    return UpOutcome(plan, applied, notes, report.admin_password_file, built, report.changed)


def down(
    client: docker.DockerClient,
    config: StackConfig,
    *,
    volumes: bool = False,
    status: Status = _silent,
    lock_timeout_s: float = 0,
) -> list[str]:
    """Remove the containers and network (volumes too when asked); the names removed."""
    import docker.errors

    from aiwf.engine.lock import deploy_lock

    removed: list[str] = []
    with deploy_lock(config.paths.data_dir, timeout_s=lock_timeout_s):
        executor = Executor(client, config, status=status)
        from aiwf.config import SERVICE_NAMES

        order = {name: index for index, name in enumerate(SERVICE_NAMES)}
        containers = sorted(
            list_containers(client, config.project),
            key=lambda c: order.get(c.service, len(order)),
            reverse=True,
        )
        for container in containers:  # dependents first: nginx before what it proxies
            status(container.service or container.name, "removing")
            executor.stop_and_remove(container.id)
            executor.record("remove", container.name, outcome="ok")
            removed.append(container.name)
        with engine_errors(f"remove network {config.network_name}"):
            for network in client.api.networks(names=[config.network_name]):
                if network.get("Name") == config.network_name:
                    client.api.remove_network(network["Id"])
                    executor.record("remove-network", config.network_name, outcome="ok")
                    removed.append(config.network_name)
        if volumes:
            for volume in stack_volumes(config).values():
                with engine_errors(f"remove volume {volume}"):
                    try:
                        client.api.remove_volume(volume)
                    except docker.errors.NotFound:
                        continue
                executor.record("remove-volume", volume, outcome="ok")
                removed.append(volume)
    return removed


def restart(
    client: docker.DockerClient,
    config: StackConfig,
    services: Sequence[str] | None = None,
    status: Status = _silent,
    lock_timeout_s: float = 0,
) -> list[str]:
    """Restart the running containers of ``services`` (all) in dependency order, wait for health."""
    from aiwf.engine.lock import deploy_lock

    with deploy_lock(config.paths.data_dir, timeout_s=lock_timeout_s):
        plan = plan_up(client, config, services)
        executor = Executor(client, config, status=status)
        restarted: list[str] = []
        for level in _levels(plan.steps):
            waiting: dict[str, DesiredContainer] = {}
            for step in level:
                if step.current is None or step.desired is None:
                    continue
                status(step.desired.service, "restarting")
                with engine_errors(f"restart {step.current.name}"):
                    executor.client.api.restart(step.current.id, timeout=STOP_TIMEOUT_S)
                waiting[step.current.id] = step.desired
                executor.record("restart", step.desired.service, outcome="ok")
                restarted.append(step.desired.service)
            failures = executor.wait_healthy(waiting)
            if failures:
                cid, reason = next(iter(failures.items()))
                logs = executor.logs_tail(cid)
                raise EngineError(
                    with_logs(f"{waiting[cid].service} did not come back: {reason}", logs)
                )
    return restarted
