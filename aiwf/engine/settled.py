"""A settled stack answers a repeated ``aiwf up`` before the CLI or the settings are loaded.

After an ``aiwf up`` that found nothing to do, :func:`remember` keeps a record of that run: the
state of every file it depended on (the inventory, aiwf's own code and templates, the host
folders, secrets, rendered files and certificates, every file a container mounts), what the
engine had (each container's id, state and health, the image ids, the network and the volumes)
and what the run printed. The next ``aiwf up`` with the same command line, working folder and
environment calls :func:`replay` first. When every file is as recorded, nobody holds the deploy
lock, the host tmux server answers and the engine reports exactly the recorded containers,
images, network and volumes, the record's output is printed and nothing else runs. Any
difference, or any doubt, and the full ``up`` runs and decides (``aiwf up --full`` always does).

What an inventory file reads besides its own files and the ``AIWF_*``, ``DOCKER_*`` and ``HOME``
variables (and the variable ``api_key_env`` names) is not watched: a ``--full`` run sees it.

The check costs a few hundred ``stat`` calls and one Engine API call per image plus three (the
containers, the network, the volumes), through docker-py, with the API version taken from the
record instead of negotiated. Example::

    lines = replay(sys.argv[1:])  # None: run the full ``up``
    if lines is not None:
        print("\\n".join(lines))
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiwf.files import write_atomic

if TYPE_CHECKING:
    from aiwf.config import StackConfig
    from aiwf.engine.converge import UpPlan

RECORD_FORMAT = 1
#: Records of command lines not used for this long are removed when a new one is written.
STALE_AFTER_S = 30 * 24 * 3600
#: Options of ``aiwf up`` (and of ``aiwf`` itself) that take a value. Besides them a replayable
#: command line holds only service names and ``--full``; any other option means no key.
_VALUE_OPTIONS = ("--inventory", "-i", "--host", "--wait-lock")
_WATCHED_VARIABLES = ("AIWF_", "DOCKER_")

Signature = list[Any] | None


def record_folder() -> Path:
    """``$XDG_CACHE_HOME/aiwf/settled`` (``~/.cache/aiwf/settled``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache) / "aiwf" / "settled"


def invocation_key(args: Sequence[str]) -> str | None:
    """A key naming this ``aiwf up`` (options, services, folder, environment), or None.

    None when the command line is not a plain ``up``: ``--dry-run``, ``--json``, ``--build``,
    ``--help`` or anything unknown always take the full path. ``--full`` is left out of the key:
    ``up --full`` checks everything (:func:`replay` refuses it) and records for ``up``.

    Example: ``invocation_key(["-i", "inventory/prod.py", "up"])`` -> ``'3f9a...'``.
    """
    options: dict[str, str] = {}
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        name, has_value, value = arg.partition("=")
        if name in _VALUE_OPTIONS:
            if not has_value:
                if index + 1 >= len(args):
                    return None
                index += 1
                value = args[index]
            options["--inventory" if name == "-i" else name] = value
        elif arg == "--full":
            pass  # a full run refreshes the record of the same command line without it
        elif arg.startswith("-"):
            return None
        else:
            positional.append(arg)
        index += 1
    if not positional or positional[0] != "up":
        return None
    options.pop("--wait-lock", None)  # how long to wait for the lock changes nothing found
    environment = {
        key: value
        for key, value in os.environ.items()
        if key.startswith(_WATCHED_VARIABLES) or key == "HOME"
    }
    identity = {
        "options": options,
        "services": sorted(set(positional[1:])),
        "cwd": os.getcwd(),
        "environment": environment,
        "package": str(Path(__file__).resolve().parent.parent),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def signature(path: Path | str, listing: bool = False) -> Signature:
    """What a file or folder looks like now; None when it is missing.

    A file: its modification time, size, inode and mode (an atomic replace changes the inode).
    A folder: its mode, and with ``listing`` its modification time (which moves when an entry
    is added, removed or renamed).
    """
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISDIR(info.st_mode):
        return ["dir", info.st_mtime_ns if listing else None, mode]
    return ["file", info.st_mtime_ns, info.st_size, info.st_ino, mode]


def _still(path: str, recorded: Signature) -> bool:
    listing = recorded is not None and recorded[0] == "dir" and recorded[1] is not None
    return signature(path, listing) == recorded


def _tree(root: Path, suffixes: tuple[str, ...] | None = None) -> dict[str, Signature]:
    """Every folder (as a listing) and file of ``root`` (those ending in ``suffixes``)."""
    found: dict[str, Signature] = {}
    if not root.is_dir():
        return {str(root): None}
    for folder, folders, files in os.walk(root):
        folders[:] = [name for name in folders if name != "__pycache__"]
        found[folder] = signature(folder, listing=True)
        for name in files:
            if suffixes is None or name.endswith(suffixes):
                path = os.path.join(folder, name)
                found[path] = signature(path)
    return found


def watched_files(config: StackConfig, inventory: Path | None, plan: UpPlan) -> dict[str, Any]:
    """Path -> signature of everything a full ``up`` of ``config`` reads or prepares."""
    import shutil

    import aiwf
    from aiwf import certs
    from aiwf.engine.converge import loaded_nginx_digest_path
    from aiwf.engine.host import host_directories
    from aiwf.inventory import default_inventory
    from aiwf.paths import services_dir, templates_dir
    from aiwf.stack import rendered_dir, secrets_dir

    files: dict[str, Signature] = {}
    inventory_file = (inventory or default_inventory()).resolve()
    files[str(inventory_file)] = signature(inventory_file)
    files.update(_tree(inventory_file.parent / "group_data", (".py",)))
    files.update(_tree(Path(aiwf.__file__).resolve().parent, (".py", ".j2")))
    files.update(_tree(templates_dir()))
    files.update(_tree(services_dir() / "orchestrator" / "claude"))
    for folder in host_directories(config):
        files[str(folder)] = signature(folder)
    files.update(_tree(Path(secrets_dir(config))))
    files.update(_tree(Path(rendered_dir(config))))
    paths = config.paths
    optional = [
        loaded_nginx_digest_path(config),
        paths.claude_json,
        config.services.orchestrator.plane.api_key_file,
        paths.workspace / ".claude" / "commands" / "complete.md" if paths.workspace else None,
    ]
    if paths.certs_dir is not None:
        optional += [paths.certs_dir / certs.CERT_FILE, paths.certs_dir / certs.KEY_FILE]
    for path in optional:
        if path is not None:
            files[str(path)] = signature(path)
    tmux = shutil.which("tmux")  # which tmux the host has decides where the sessions' server runs
    if tmux is not None:
        files[tmux] = signature(tmux)
    for step in plan.steps:
        if step.desired is not None:
            for mount in step.desired.body["HostConfig"]["Mounts"]:
                if mount["Type"] == "bind":
                    files[mount["Source"]] = signature(mount["Source"])
    return files


def _engine_state(plan: UpPlan, config: StackConfig, api_version: str) -> dict[str, Any]:
    from aiwf.stack import stack_volumes

    observed = plan.observed
    return {
        "api_version": api_version,
        "project": config.project,
        "containers": {
            container.name: [container.id, container.state, container.health]
            for container in observed.containers
        },
        "images": dict(observed.images),
        "network": config.network_name,
        "volumes": sorted(stack_volumes(config).values()),
    }


def _variables(*names: str | None) -> dict[str, str | None]:
    """Name -> sha256 of the value (None: unset) of the variables the settings name."""
    values = {name: os.environ.get(name) for name in names if name}
    return {
        name: None if value is None else hashlib.sha256(value.encode()).hexdigest()
        for name, value in values.items()
    }


def _socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(1)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def remember(
    args: Sequence[str],
    config: StackConfig,
    inventory: Path | None,
    plan: UpPlan,
    api_version: str,
    output: Iterable[str],
) -> Path | None:
    """Keep the record of a settled ``aiwf up`` ran as ``args``; its path (None: not replayable).

    The files are read after the run: what the next ``up`` compares with is the state this run
    left behind.
    """
    import shutil

    from aiwf.stack import tmux_socket

    key = invocation_key(args)
    if key is None:
        return None
    socket_path = Path(tmux_socket(config))
    record = {
        "format": RECORD_FORMAT,
        "key": key,
        "files": watched_files(config, inventory, plan),
        "engine": _engine_state(plan, config, api_version),
        "lock": str(config.paths.data_dir / "deploy.lock"),
        "tmux_socket": str(socket_path) if _socket_answers(socket_path) else None,
        "variables": _variables(config.services.orchestrator.plane.api_key_env),
        "tmux": shutil.which("tmux"),
        "output": list(output),
    }
    folder = record_folder()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / f"{key}.json"
    write_atomic(path, json.dumps(record).encode(), 0o600)
    _remove_stale(folder)
    return path


def _remove_stale(folder: Path) -> None:
    limit = time.time() - STALE_AFTER_S
    for old in folder.glob("*.json"):
        try:
            if old.stat().st_mtime < limit:
                old.unlink()
        except FileNotFoundError:
            continue


def forget(args: Sequence[str]) -> None:
    """Drop the record of ``args`` (a run that changed something will record anew)."""
    key = invocation_key(args)
    if key is not None:
        (record_folder() / f"{key}.json").unlink(missing_ok=True)


def replay(args: Sequence[str]) -> list[str] | None:
    """The output of the recorded ``up`` when nothing has moved since; None: run the full one.

    Never raises: whatever goes wrong here (an unreadable record, an engine that does not
    answer) is for the full ``up`` to find and report.
    """
    key = invocation_key(args)
    if key is None or "--full" in args:
        return None
    try:
        record = json.loads((record_folder() / f"{key}.json").read_bytes())
        if record.get("format") != RECORD_FORMAT or record.get("key") != key:
            return None
        if not _host_unchanged(record) or not _engine_unchanged(record["engine"]):
            return None
    except Exception:
        return None
    os.utime(record_folder() / f"{key}.json")
    return [str(line) for line in record["output"]]


def _host_unchanged(record: dict[str, Any]) -> bool:
    lock = Path(record["lock"])
    if lock.exists() and lock.stat().st_size > 0:  # a holder writes itself in; see lock.py
        return False
    if record["tmux_socket"] and not _socket_answers(Path(record["tmux_socket"])):
        return False
    if _variables(*record["variables"]) != record["variables"]:
        return False
    import shutil

    if shutil.which("tmux") != record["tmux"]:
        return False
    return all(_still(path, recorded) for path, recorded in record["files"].items())


def _engine_unchanged(engine: dict[str, Any]) -> bool:
    """The engine has exactly the recorded containers (same ids, running, same health), images,
    network and volumes."""
    from aiwf.engine.docker_client import connect_api
    from aiwf.engine.labels import LABEL_PROJECT
    from aiwf.engine.observe import container_from_listing

    api = connect_api(engine["api_version"], timeout=10)
    try:
        listing = api.containers(
            all=True, filters={"label": f"{LABEL_PROJECT}={engine['project']}"}
        )
        containers = {}
        for item in listing:
            container = container_from_listing(item)
            containers[container.name] = [container.id, container.state, container.health]
        if containers != engine["containers"]:
            return False
        for tag, image_id in engine["images"].items():
            if api.inspect_image(tag)["Id"] != image_id:
                return False
        networks = api.networks(names=[engine["network"]])
        if not any(item.get("Name") == engine["network"] for item in networks):
            return False
        found = api.volumes(filters={"name": f"{engine['project']}_"}).get("Volumes") or ()
        return set(engine["volumes"]) <= {str(volume["Name"]) for volume in found}
    finally:
        api.close()
