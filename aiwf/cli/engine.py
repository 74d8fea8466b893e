"""Engine commands: base-images, build, up, down, restart, rebuild, ps, logs, exec, history.

Each command is thin: it loads the config, asks :mod:`aiwf.engine` for a plan or an action and
prints the result. docker-py is imported only inside the engine functions these call.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from aiwf.cli.context import AppContext

if TYPE_CHECKING:
    import docker

    from aiwf.engine.converge import UpOutcome

ServicesArg = Annotated[list[str] | None, typer.Argument(help="Services (default: all enabled).")]
LockWait = Annotated[
    float,
    typer.Option("--wait-lock", help="Seconds to wait for another aiwf holding the deploy lock."),
]


def _client() -> docker.DockerClient:
    from aiwf.engine.docker_client import connect

    return connect()


@contextmanager
def _live(app: AppContext, title: str) -> Iterator[Callable[[str, str], None]]:
    """A Rich status line that each progress callback updates: ``status(service, text)``."""
    with app.console.status(title) as spinner:

        def update(service: str, text: str) -> None:
            spinner.update(f"{service}: {text[:110]}")
            if text.startswith(("healthy", "failed", "reloaded", "removing", "up to date")):
                app.console.print(f"  {service}: {text}")

        yield update


def base_images(
    ctx: typer.Context,
    kind: Annotated[
        str, typer.Option("--kind", help="Which base image: python or nginx (the same image).")
    ] = "python",
) -> None:
    """Build the local Debian base image when the engine lacks it; print its tag."""
    from aiwf.engine.base_images import ensure_base_image, find_base_image

    app = AppContext.of(ctx)
    client = _client()
    found = find_base_image(client, kind)
    if found:
        app.console.print(f"{found} (present)")
        return
    with app.console.status("building the local base image") as status:
        tag = ensure_base_image(
            client, kind, progress=lambda line: status.update(f"base image: {line[:100]}")
        )
    app.console.print(f"{tag} (built)")


def build(
    ctx: typer.Context,
    services: ServicesArg = None,
    force: Annotated[bool, typer.Option("--force", help="Build even when up to date.")] = False,
) -> None:
    """Build the services' images (wheels and dist prepared on the host; no network inside)."""
    from aiwf.engine.build import build_images
    from aiwf.engine.lock import deploy_lock

    app = AppContext.of(ctx)
    config = app.config
    client = _client()
    with deploy_lock(config.paths.data_dir), _live(app, "building") as status:
        built = build_images(client, config, services, status, force=force)
    for name, image in built.items():
        for note in image.notes:
            app.console.print(f"note: {note}")
        state = "built" if image.built else "up to date"
        app.console.print(
            f"{name}: {image.tag} {image.image_id[7:19]} ({state}, base {image.base})"
        )


def _outcome_lines(app: AppContext, outcome: UpOutcome, dry_run: bool) -> list[str]:
    """What ``up`` tells the user (Rich markup); a settled run's lines are replayed verbatim."""
    from aiwf.engine.converge import stack_url
    from aiwf.engine.host import RESET_PASSWORD_HINT

    config = app.config
    lines = [f"note: {note}" for note in outcome.notes]
    if dry_run:
        if not outcome.plan.changes() and not outcome.plan.missing_images:
            lines.append("nothing to do: the stack is as configured")
        return lines + [f"  {line}" for line in outcome.plan.lines()]
    if not outcome.applied:
        lines.append("nothing to do: the stack is as configured")
    lines += [f"  done: {step}" for step in outcome.applied]
    admin = config.services.tmux_sessions.admin_user
    if outcome.admin_password_file:
        lines.append(
            f"\nfirst login: user [bold]{admin}[/], its password is in "
            f"{outcome.admin_password_file} (0600; read it with: cat "
            f"{outcome.admin_password_file}; change it with: "
            + RESET_PASSWORD_HINT.format(user=admin)
            + ")"
        )
    lines.append(f"open {stack_url(config)} (user {admin})")
    return lines


def _remember_if_settled(
    app: AppContext, client: docker.DockerClient, outcome: UpOutcome, lines: list[str]
) -> None:
    """Keep the record that lets the next identical ``up`` answer at once (or drop it)."""
    from aiwf.engine import settled

    try:
        if outcome.settled:
            settled.remember(
                app.command_line,
                app.config,
                app.inventory,
                outcome.plan,
                client.api.api_version,
                lines,
            )
        else:
            settled.forget(app.command_line)
    except OSError as error:  # a shortcut lost, nothing else: the next up checks everything
        app.err.print(
            f"note: cannot keep the record of this run in {settled.record_folder()}: {error}"
        )


def up(
    ctx: typer.Context,
    services: ServicesArg = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and stop.")] = False,
    build_images: Annotated[
        bool, typer.Option("--build", help="Rebuild images whose sources changed first.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="The plan as JSON.")] = False,
    wait_lock: LockWait = 0,
    full: Annotated[
        bool,
        typer.Option(
            "--full", help="Check everything, even when the last run found the stack settled."
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Recreate the sandbox even though agent sessions run in it."),
    ] = False,
) -> None:
    """Bring the stack to the configured state: create, recreate, reload or nothing.

    A repeated ``up`` on a stack nothing has touched since answers from the record the last
    settled run left (see ``aiwf.engine.settled``); ``--full`` checks everything again.
    """
    del full  # the replay is decided before this runs (aiwf.cli.entry); here all is checked
    from aiwf.engine.converge import up as converge_up

    app = AppContext.of(ctx)
    config = app.config
    client = _client()
    if dry_run or json_output:
        outcome = converge_up(client, config, services, dry_run=True)
    else:
        with _live(app, "converging") as status:
            outcome = converge_up(
                client,
                config,
                services,
                build=build_images,
                force=force,
                status=status,
                lock_timeout_s=wait_lock,
            )
    if json_output:
        app.print_json(
            {
                "missing_images": outcome.plan.missing_images,
                "steps": [step.as_dict() for step in outcome.plan.steps],
            }
        )
        return
    lines = _outcome_lines(app, outcome, dry_run)
    for line in lines:
        app.console.print(line)
    if not dry_run and not build_images:
        _remember_if_settled(app, client, outcome, lines)


def down(
    ctx: typer.Context,
    volumes: Annotated[
        bool, typer.Option("--volumes", help="Also delete the named volumes (their data!).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before deleting.")] = False,
    wait_lock: LockWait = 0,
) -> None:
    """Stop and remove the stack's containers and network; volumes only with --volumes."""
    from aiwf.engine.converge import down as converge_down
    from aiwf.stack import stack_volumes

    app = AppContext.of(ctx)
    config = app.config
    if volumes and not yes:
        names = ", ".join(stack_volumes(config).values())
        typer.confirm(f"delete the volumes {names} and all their data?", abort=True)
    client = _client()
    with _live(app, "removing") as status:
        removed = converge_down(
            client,
            config,
            volumes=volumes,
            status=status,
            lock_timeout_s=wait_lock,
        )
    app.console.print(f"removed: {', '.join(removed)}" if removed else "nothing to remove")


def restart(ctx: typer.Context, services: ServicesArg = None, wait_lock: LockWait = 0) -> None:
    """Restart the running containers (all, or those named) and wait until healthy."""
    from aiwf.engine.converge import restart as converge_restart

    app = AppContext.of(ctx)
    client = _client()
    with _live(app, "restarting") as status:
        done = converge_restart(client, app.config, services, status, wait_lock)
    app.console.print(f"restarted: {', '.join(done)}" if done else "nothing running to restart")


def rebuild(ctx: typer.Context, services: ServicesArg = None, wait_lock: LockWait = 0) -> None:
    """Rebuild images and bring the services up again (all, or those named)."""
    from aiwf.engine.converge import restart as converge_restart
    from aiwf.engine.converge import up as converge_up

    app = AppContext.of(ctx)
    config = app.config
    client = _client()
    with _live(app, "rebuilding") as status:
        outcome = converge_up(
            client,
            config,
            services,
            build=True,
            status=status,
            lock_timeout_s=wait_lock,
        )
        touched = {step.target for step in outcome.applied}
        others = [s.service for s in outcome.plan.specs if s.service not in touched]
        if others:
            converge_restart(client, config, others, status, wait_lock)
    for line in _outcome_lines(app, outcome, dry_run=False):
        app.console.print(line)


def ps(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The stack's containers: state, health, image."""
    from aiwf.engine.observe import list_containers

    app = AppContext.of(ctx)
    config = app.config
    containers = list_containers(_client(), config.project)
    rows = [
        {
            "service": c.service,
            "container": c.name,
            "id": c.id[:12],
            "state": c.state,
            "health": c.health,
            "status": c.status,
            "image": c.image_id[7:19],
            "hash": c.spec_hash[:12],
        }
        for c in containers
    ]
    if json_output:
        app.print_json(rows)
        return
    from rich.table import Table

    table = Table("service", "container", "state", "health", "image", box=None)
    for row in rows:
        table.add_row(
            row["service"], row["container"], row["state"], row["health"] or "-", row["image"]
        )
    app.console.print(table if rows else f"no containers of project {config.project}")


def _container_of(app: AppContext, client: docker.DockerClient, service: str) -> str:
    from aiwf.engine.observe import list_containers
    from aiwf.errors import UsageError

    for container in list_containers(client, app.config.project):
        if container.service == service and container.name == app.config.container_name(service):
            return container.id
    raise UsageError(f"service {service} has no container; run `aiwf up` first")


def logs(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="The service whose logs to show.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing.")] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Only since: 10m, 2h or a unix time.")
    ] = None,
    tail: Annotated[int, typer.Option("--tail", help="Lines from the end (0: all).")] = 200,
) -> None:
    """A service's container output (stdout and stderr)."""
    from aiwf.engine.docker_client import engine_errors

    app = AppContext.of(ctx)
    client = _client()
    container = _container_of(app, client, service)
    kwargs: dict[str, object] = {"stream": True, "follow": follow, "tail": tail or "all"}
    if since:
        kwargs["since"] = _since(since)
    with engine_errors(f"logs of {service}"):
        for chunk in client.api.logs(container, **kwargs):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()


def _since(value: str) -> int:
    import time

    from aiwf.errors import UsageError

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1:] in units and value[:-1].isdigit():
        return int(time.time()) - int(value[:-1]) * units[value[-1]]
    if value.isdigit():
        return int(value)
    raise UsageError(f"--since {value!r}: give 30s, 10m, 2h, 1d or a unix time")


def exec_command(
    ctx: typer.Context,
    service: Annotated[str, typer.Argument(help="The service to run the command in.")],
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
) -> None:
    """Run a command in a service's container (with the terminal when there is one)."""
    from aiwf.engine.exec import run_in_container

    app = AppContext.of(ctx)
    client = _client()
    container = _container_of(app, client, service)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        from aiwf.errors import UsageError

        raise UsageError("give the command to run after --, e.g. aiwf exec nginx -- nginx -t")
    raise typer.Exit(run_in_container(client, container, command))


def show_history(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-n", help="The last N entries.")] = 50,
    json_output: Annotated[bool, typer.Option("--json", help="JSON lines as stored.")] = False,
) -> None:
    """The audit log of changes aiwf applied to this stack."""
    from aiwf.engine.history import read_history

    app = AppContext.of(ctx)
    entries = read_history(app.config.paths.data_dir, limit)
    if json_output:
        app.print_json(entries)
        return
    if not entries:
        app.console.print("no changes recorded yet")
    for entry in entries:
        extra = f" ({entry['reason']})" if entry.get("reason") else ""
        outcome = entry.get("outcome", "")
        app.console.print(
            f"{entry.get('time')} {entry.get('action')} {entry.get('target')}{extra} {outcome}"
        )


def register(app: typer.Typer) -> None:
    app.command("base-images")(base_images)
    app.command("build")(build)
    app.command("up")(up)
    app.command("down")(down)
    app.command("restart")(restart)
    app.command("rebuild")(rebuild)
    app.command("ps")(ps)
    app.command("logs")(logs)
    app.command("exec", context_settings={"allow_interspersed_args": False})(exec_command)
    app.command("history")(show_history)
