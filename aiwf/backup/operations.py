"""Backup, verification and restore of the stack's volumes, each planned before it acts.

A backup of a volume: quiesce the service writing it (``config.backup.policy``: pause, stop or
none), archive it through a helper container made from the local base image into a partial file,
resume the service (always, on failure too), verify the archive on the host, rename it to its final
name, record the verification, then prune by retention.

A restore: verify the archive (refusing a corrupt, truncated or foreign one), extract it into a new
staging volume, check it there and flush it to disk, stop the service, swap the staging copy in,
start the service again, remove the staging volume (which then holds the old content). The swap
trades the two volumes' folders in one atomic rename where the engine keeps them side by side, and
copies otherwise (keeping the old content until the copy checks out); when nothing runs on the
volume, one helper container extracts, checks and swaps.

Example::

    plan = plan_backup(config, ["plane-orchestrator-data"], out_dir=None)
    print("\\n".join(plan.steps()))
    results = apply_backup(config, plan)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from aiwf import __version__
from aiwf.backup import archiver, store
from aiwf.config import VOLUMES, StackConfig
from aiwf.engine.docker_client import connect, engine_errors
from aiwf.errors import BackupError, UsageError
from aiwf.files import write_atomic
from aiwf.stack import volume_name

HELPER_ARCHIVER = "/aiwf/archiver.py"
HELPER_ROLE = "backup-helper"
Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    del message


@cache
def docker_client() -> Any:
    """One engine client for the whole operation (connecting negotiates the API version)."""
    return connect()


def helper_image() -> str:
    """The local base image helper containers run (python3, tar, zstd); built when missing."""
    from aiwf.engine.base_images import ensure_base_image

    return ensure_base_image(docker_client(), "python")


def _backup_dir(config: StackConfig, out_dir: Path | None) -> Path:
    directory = out_dir or config.paths.backup_dir
    assert directory is not None
    return directory.resolve()


def _check_volumes(volumes: list[str]) -> list[str]:
    unknown = [name for name in volumes if name not in VOLUMES]
    if unknown:
        raise UsageError(
            f"unknown volume {', '.join(unknown)}; the stack's volumes are: {', '.join(VOLUMES)}"
        )
    return volumes or list(VOLUMES)


def _existing_volume(config: StackConfig, volume: str) -> bool:
    import docker.errors

    with engine_errors(f"inspecting volume {volume_name(config, volume)}"):
        try:
            docker_client().volumes.get(volume_name(config, volume))
        except docker.errors.NotFound:
            return False
    return True


def _running_container(config: StackConfig, service: str) -> Any | None:
    """The service's container when it is running (or paused), else None."""
    name = config.container_name(service)
    with engine_errors(f"looking up container {name}"):
        for container in docker_client().containers.list(filters={"name": f"^/{name}$"}):
            if container.name == name:
                return container
    return None


# --- quiescing: pause or stop a service, and always bring it back ----------


def _marker(backup_dir: Path, project: str) -> Path:
    return backup_dir / f".aiwf-quiesced-{project}.json"


@contextmanager
def quiesced(
    config: StackConfig, backup_dir: Path, service: str, action: str, progress: Progress
) -> Iterator[None]:
    """Pause or stop ``service`` inside the block; resume it afterwards, whatever happened.

    A marker file names the container while it is quiesced, so a run that was killed outright
    (no chance to resume) is repaired by the next one (:func:`recover_interrupted`).
    """
    container = _running_container(config, service) if action != "none" else None
    if container is None:
        yield
        return
    marker = _marker(backup_dir, config.project)
    write_atomic(
        marker,
        json.dumps({"pid": os.getpid(), "container": container.name, "action": action}).encode(),
    )
    try:
        with engine_errors(f"{action} {container.name}"):
            if action == "pause":
                container.pause()
            else:
                container.stop(timeout=30)
        progress(f"{'paused' if action == 'pause' else 'stopped'} {container.name}")
        yield
    finally:
        with engine_errors(f"resuming {container.name}"):
            if action == "pause":
                container.unpause()
            else:
                container.start()
        marker.unlink(missing_ok=True)
        progress(f"resumed {container.name}")


def recover_interrupted(config: StackConfig, backup_dir: Path, progress: Progress) -> None:
    """Undo what a killed run left: its helper container and scratch volumes, partial archives,
    a paused service."""
    with engine_errors("removing helper containers and volumes of interrupted runs"):
        helpers = docker_client().containers.list(
            all=True,
            filters={"label": [f"aiwf.project={config.project}", f"aiwf.role={HELPER_ROLE}"]},
        )
        for helper in helpers:
            if not store.alive(int(helper.labels.get("aiwf.pid", "0"))):
                helper.remove(force=True)
                progress(f"removed helper container {helper.name} of an interrupted run")
        scratch = docker_client().volumes.list(
            filters={"label": [f"aiwf.project={config.project}", f"aiwf.role={HELPER_ROLE}"]}
        )
        for volume in scratch:  # a staging copy, or after its swap the content it replaced
            if not store.alive(int((volume.attrs.get("Labels") or {}).get("aiwf.pid", "0"))):
                volume.remove(force=True)
                progress(f"removed volume {volume.name} of an interrupted run")
    for partial in store.stale_partials(backup_dir):
        partial.unlink(missing_ok=True)
        progress(f"removed {partial.name}, left by an interrupted backup")
    marker = _marker(backup_dir, config.project)
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return
    if store.alive(int(record.get("pid", 0))) and record.get("pid") != os.getpid():
        return
    import docker.errors

    with engine_errors(f"resuming {record.get('container')}"):
        try:
            container = docker_client().containers.get(record["container"])
        except docker.errors.NotFound:
            container = None
        if container is not None and container.status == "paused":
            container.unpause()
        elif container is not None and container.status in ("exited", "created"):
            container.start()
    marker.unlink(missing_ok=True)
    progress(f"resumed {record.get('container')}, left quiesced by an interrupted run")


# --- the helper container ----------


def run_helper(
    config: StackConfig, arguments: list[str], mounts: dict[str, dict[str, str]], image: str
) -> dict[str, Any]:
    """Run the archiver in a throwaway container; its JSON answer, or :class:`BackupError`.

    The container has no network. It is removed afterwards, and killed if this process is
    interrupted while it runs.
    """
    client = docker_client()
    binds = {str(Path(archiver.__file__).resolve()): {"bind": HELPER_ARCHIVER, "mode": "ro"}}
    binds.update(mounts)
    with engine_errors("running the backup helper container"):
        container = client.containers.create(
            image,
            ["python3", HELPER_ARCHIVER, *arguments],
            volumes=binds,
            labels={
                "aiwf.project": config.project,
                "aiwf.role": HELPER_ROLE,
                "aiwf.pid": str(os.getpid()),
            },
            network_mode="none",
        )
    try:
        with engine_errors("running the backup helper container"):
            container.start()
            status = container.wait()
            output = container.logs(stdout=True, stderr=False).decode(errors="replace")
            errors = container.logs(stdout=False, stderr=True).decode(errors="replace")
    finally:
        with engine_errors("removing the backup helper container"):
            container.remove(force=True)
    lines = [line for line in output.splitlines() if line.startswith("{")]
    answer: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    if status.get("StatusCode") != 0 or not answer.get("ok"):
        reason = answer.get("error") or (errors.strip().splitlines() or ["no output"])[-1]
        raise BackupError(reason)
    result: dict[str, Any] = answer["result"]
    return result


# --- backup ----------


@dataclass
class VolumeBackup:
    volume: str
    docker_volume: str
    service: str
    action: str
    archive: Path


@dataclass
class BackupPlan:
    backup_dir: Path
    items: list[VolumeBackup]
    prune: bool = True

    def steps(self) -> list[str]:
        lines = []
        for item in self.items:
            if item.action != "none":
                lines.append(f"{item.action} {item.service} while {item.volume} is archived")
            lines.append(f"archive volume {item.docker_volume} -> {item.archive}")
            lines.append(f"verify {item.archive.name} against its manifest")
            if self.prune:
                lines.append(f"prune old {item.volume} archives beyond retention")
        return lines


def plan_backup(
    config: StackConfig, volumes: list[str], out_dir: Path | None, prune: bool = True
) -> BackupPlan:
    """Check every input (volume names, volumes present, output dir usable) and plan."""
    names = _check_volumes(volumes)
    backup_dir = _backup_dir(config, out_dir)
    if backup_dir.exists() and not backup_dir.is_dir():
        raise UsageError(f"--out {backup_dir}: not a directory")
    missing = [name for name in names if not _existing_volume(config, name)]
    if missing:
        raise BackupError(
            f"volume {', '.join(volume_name(config, name) for name in missing)} does not exist; "
            "is the stack up (aiwf up)?"
        )
    now = dt.datetime.now(dt.UTC)
    items = [
        VolumeBackup(
            volume=name,
            docker_volume=volume_name(config, name),
            service=VOLUMES[name],
            action=config.backup.policy.get(name, "pause"),
            archive=backup_dir
            / store.archive_name(config.project, name, now, config.backup.compression),
        )
        for name in names
    ]
    return BackupPlan(backup_dir=backup_dir, items=items, prune=prune)


def _header(config: StackConfig, volume: str, now: dt.datetime) -> dict[str, Any]:
    return {
        "project": config.project,
        "volume": volume,
        "stack_version": __version__,
        "created": now.isoformat(),
        "created_unix": int(now.timestamp()),
    }


def apply_backup(
    config: StackConfig,
    plan: BackupPlan,
    image: str | None = None,
    progress: Progress = _quiet,
) -> list[Path]:
    """Carry out ``plan``; the verified archives. No half archive ever has a final name."""
    plan.backup_dir.mkdir(parents=True, exist_ok=True)
    recover_interrupted(config, plan.backup_dir, progress)
    image = image or helper_image()
    made = []
    for item in plan.items:
        partial = item.archive.with_name(store.partial_name(item.archive.name))
        created = dt.datetime.now(dt.UTC)
        arguments = [
            "create",
            "--source",
            "/data",
            "--out",
            f"/backup/{partial.name}",
            "--compression",
            config.backup.compression,
            "--level",
            str(config.backup.level),
            "--header",
            json.dumps(_header(config, item.volume, created)),
        ]
        mounts = {
            item.docker_volume: {"bind": "/data", "mode": "ro"},
            str(plan.backup_dir): {"bind": "/backup", "mode": "rw"},
        }
        try:
            with quiesced(config, plan.backup_dir, item.service, item.action, progress):
                summary = run_helper(config, arguments, mounts, image)
            progress(f"archived {item.docker_volume}: {summary['entries']} entries")
            result = archiver.read(partial, expect_project=config.project)
        except archiver.ArchiveError as error:
            partial.unlink(missing_ok=True)
            raise BackupError(
                f"{item.archive.name}: the new archive does not verify: {error}"
            ) from None
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, item.archive)
        store.record_verified(
            item.archive, {"volume": item.volume, "entries": len(result.manifest["entries"])}
        )
        progress(f"verified {item.archive.name}")
        made.append(item.archive)
        if plan.prune:
            for path in prune(config, plan.backup_dir, item.volume):
                progress(f"pruned {path.name}")
    return made


def prune(config: StackConfig, backup_dir: Path, volume: str) -> list[Path]:
    """Remove the volume's archives retention does not keep, only if the newest one verified."""
    archives = store.list_archives(backup_dir, config.project, volume)
    if not archives or archives[0].state != "verified":
        return []
    keep = store.to_keep(archives, config.backup.retention)
    removed = []
    for item in archives:
        if item.path not in keep:
            item.path.unlink(missing_ok=True)
            store.record_path(item.path).unlink(missing_ok=True)
            removed.append(item.path)
    return removed


# --- verify ----------


def verify_archive(config: StackConfig, archive: Path) -> archiver.ReadResult:
    """Check every checksum of ``archive`` against its manifest; refuse other projects' archives."""
    try:
        result = archiver.read(archive, expect_project=config.project)
    except archiver.ArchiveError as error:
        raise BackupError(f"{archive}: refused: {error}") from None
    store.record_verified(archive, {"volume": result.header.get("volume")})
    return result


def restore_test(
    config: StackConfig, archive: Path, image: str | None = None, progress: Progress = _quiet
) -> None:
    """Restore ``archive`` into a scratch volume, check it there, remove the scratch volume."""
    with _scratch_volume(config, "restore-test") as scratch:
        _extract_into(config, archive, scratch, image or helper_image())
        progress(f"restored into scratch volume {scratch} and checked it")


@contextmanager
def _scratch_volume(config: StackConfig, purpose: str) -> Iterator[str]:
    name = f"{config.project}_{purpose}-{store.stamp(dt.datetime.now(dt.UTC)).lower()}"
    client = docker_client()
    labels = {
        "aiwf.project": config.project,
        "aiwf.role": HELPER_ROLE,
        "aiwf.pid": str(os.getpid()),
    }
    with engine_errors(f"creating volume {name}"):
        volume = client.volumes.create(name, labels=labels)
    try:
        yield name
    finally:
        with engine_errors(f"removing volume {name}"):
            volume.remove(force=True)


def _extract_into(
    config: StackConfig,
    archive: Path,
    volume: str,
    image: str,
    work: Path | None = None,
) -> None:
    """Extract ``archive`` into ``volume``, checking every checksum and the tree written.

    With ``work`` (a host folder) the archive's manifest is left there as ``manifest.json``, and
    the copy is flushed to disk before this returns: it is about to replace live data.
    """
    mounts = {
        volume: {"bind": "/staging", "mode": "rw"},
        str(archive.parent.resolve()): {"bind": "/archive", "mode": "ro"},
    }
    arguments = ["extract", f"/archive/{archive.name}", "--project", config.project]
    arguments += ["--into", "/staging"]
    if work is not None:
        mounts[str(work)] = {"bind": "/work", "mode": "rw"}
        arguments += ["--manifest-out", "/work/manifest.json", "--durable"]
    run_helper(config, arguments, mounts, image)


def exchange_root(config: StackConfig, staging: str, target: str) -> Path | None:
    """The folder holding both volumes' folders when they can trade places in one rename.

    That is so for two volumes of the engine's ``local`` driver without options (plain folders
    ``<root>/<name>/_data`` on one filesystem) that no running or paused container mounts.
    Otherwise None, and the swap copies.

    Example: ``/var/lib/docker/volumes`` for ``ai-workflow_plane-orchestrator-data``.
    """
    client = docker_client()
    with engine_errors(f"inspecting volumes {staging} and {target}"):
        details = [client.api.inspect_volume(name) for name in (staging, target)]
        users = client.api.containers(all=True, filters={"volume": target})
    if any(user.get("State") in ("running", "paused", "restarting") for user in users):
        return None
    roots = set()
    for detail in details:
        mountpoint = Path(str(detail.get("Mountpoint") or ""))
        if detail.get("Driver") != "local" or detail.get("Options") or mountpoint.name != "_data":
            return None
        roots.add(mountpoint.parent.parent)
    return roots.pop() if len(roots) == 1 else None


# --- restore ----------


@dataclass
class RestorePlan:
    archive: Path
    volume: str
    docker_volume: str
    service: str
    service_running: bool
    volume_exists: bool
    #: How the archive was checked while planning: in full, or (for an archive whose
    #: verification record is current) its header, the staging extraction checking every byte.
    checked: str

    def steps(self) -> list[str]:
        lines = [f"{self.checked} {self.archive.name} (volume {self.volume})"]
        if not self.volume_exists:
            lines.append(f"create volume {self.docker_volume}")
        lines.append("create a staging volume, extract the archive into it checking every checksum")
        if self.service_running:
            lines.append(f"stop {self.service}")
        lines.append(f"swap the staging copy into {self.docker_volume} (old content kept until ok)")
        if self.service_running:
            lines.append(f"start {self.service}")
        lines.append("remove the staging volume")
        return lines


def plan_restore(config: StackConfig, archive: Path, volume: str | None) -> RestorePlan:
    """Check the archive and plan the swap; a bad or foreign archive is refused here.

    An archive without a current verification record is verified in full. One with a record
    (verified since its last change) has its header checked: the staging extraction checks every
    checksum again before the live volume is touched, so a second full pass would add nothing.
    """
    if not archive.is_file():
        raise UsageError(f"{archive}: no such archive")
    if volume is not None:
        _check_volumes([volume])
    if store.verification_state(archive) == "verified":
        try:
            header = archiver.read_header(archive, expect_project=config.project)
        except archiver.ArchiveError as error:
            raise BackupError(f"{archive}: refused: {error}") from None
        checked = "header checked of verified archive"
    else:
        header = verify_archive(config, archive).header
        checked = "verified every checksum of"
    target = volume or str(header["volume"])
    if target not in VOLUMES:
        raise BackupError(f"{archive}: holds volume {target!r}, which this stack does not have")
    service = VOLUMES[target]
    return RestorePlan(
        archive=archive.resolve(),
        volume=target,
        docker_volume=volume_name(config, target),
        service=service,
        service_running=_running_container(config, service) is not None,
        volume_exists=_existing_volume(config, target),
        checked=checked,
    )


def apply_restore(
    config: StackConfig, plan: RestorePlan, image: str | None = None, progress: Progress = _quiet
) -> None:
    """Carry out ``plan``: staging copy checked, service stopped, swap, service started."""
    image = image or helper_image()
    backup_dir = _backup_dir(config, None)
    backup_dir.mkdir(parents=True, exist_ok=True)
    recover_interrupted(config, backup_dir, progress)
    moment = store.stamp(dt.datetime.now(dt.UTC)).lower()
    work = backup_dir / f".restore-{moment}"
    work.mkdir(mode=0o700)
    with _scratch_volume(config, f"{plan.volume}-staging") as staging:
        try:
            if not plan.volume_exists:
                with engine_errors(f"creating volume {plan.docker_volume}"):
                    docker_client().volumes.create(
                        plan.docker_volume, labels={"aiwf.project": config.project}
                    )
            root = exchange_root(config, staging, plan.docker_volume)
            if root is not None:  # nothing runs on the volume: one helper does it all
                swapped = _extract_and_exchange(config, plan, staging, root, moment, image)
                progress(f"extracted into {staging}, checked it and swapped it in ({swapped})")
                return
            _extract_into(config, plan.archive, staging, image, work)
            progress(f"extracted into {staging} and checked it")
            with quiesced(config, backup_dir, plan.service, "stop", progress):
                swapped = _swap(config, staging, plan.docker_volume, work, moment, image)
                progress(f"swapped the restored content into {plan.docker_volume} ({swapped})")
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _extract_and_exchange(
    config: StackConfig, plan: RestorePlan, staging: str, root: Path, moment: str, image: str
) -> str:
    """Extract into ``staging``, check it, flush it, trade it with the live volume's folder."""
    mounts = {
        str(root): {"bind": "/volumes", "mode": "rw"},
        str(plan.archive.parent): {"bind": "/archive", "mode": "ro"},
    }
    arguments = ["extract", f"/archive/{plan.archive.name}", "--project", config.project]
    arguments += ["--into", f"/volumes/{staging}/_data", "--durable", "--stamp", moment]
    arguments += ["--swap-into", f"/volumes/{plan.docker_volume}/_data"]
    return str(run_helper(config, arguments, mounts, image)["method"])


def _swap(
    config: StackConfig, staging: str, target: str, work: Path, moment: str, image: str
) -> str:
    """Put the verified staging copy in ``target``'s place; ``exchange`` or ``copy``.

    When the two volumes are folders side by side (:func:`exchange_root`), the helper sees their
    common folder and trades them in one atomic rename: the live volume then holds the verified
    tree, the staging volume the old content, which goes when the staging volume is removed.
    """
    root = exchange_root(config, staging, target)
    if root is not None:
        mounts = {str(root): {"bind": "/volumes", "mode": "rw"}}
        paths = ["--staging", f"/volumes/{staging}/_data", "--target", f"/volumes/{target}/_data"]
        paths.append("--exchange")
    else:
        mounts = {
            staging: {"bind": "/staging", "mode": "ro"},
            target: {"bind": "/target", "mode": "rw"},
        }
        paths = ["--staging", "/staging", "--target", "/target"]
    mounts[str(work)] = {"bind": "/work", "mode": "ro"}
    manifest = ["--manifest", "/work/manifest.json", "--stamp", moment]
    return str(run_helper(config, ["swap", *paths, *manifest], mounts, image)["method"])
