"""Backup and restore against a real Docker engine: round trip, refusals, interruption, swap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aiwf.backup import operations, store
from aiwf.config import StackConfig
from aiwf.errors import BackupError
from aiwf.stack import volume_name

from .conftest import listing, make_settings, run_in_volume, shell_in_volume, write_inventory

pytestmark = pytest.mark.engine

VOLUME = "plane-orchestrator-data"

#: 50 directories x 5 subdirectories x 20 files = 5,000 files of varied modes and owners, empty
#: directories, symlinks (relative, absolute, dangling, to a directory), a hard link, a 50 MB file.
FILL_TREE = r"""
import os, random
random.seed(7)
root = "/data"
modes = [0o600, 0o644, 0o755, 0o640, 0o4755, 0o444]
owners = [(0, 0), (1000, 1000), (33, 33), (65534, 65534)]
for d in range(50):
    for s in range(5):
        folder = f"{root}/d{d:02d}/s{s}"
        os.makedirs(folder)
        for f in range(20):
            path = f"{folder}/f{f}.txt"
            with open(path, "wb") as out:
                out.write(random.randbytes(random.randint(0, 4000)))
            os.chown(path, *random.choice(owners))
            os.chmod(path, random.choice(modes))
os.makedirs(f"{root}/empty/a/b")
os.mkdir(f"{root}/sticky", 0o1777)
os.chmod(f"{root}/sticky", 0o1777)
os.chown(f"{root}/empty/a", 1000, 1000)
os.symlink("d00/s0/f0.txt", f"{root}/link-relative")
os.symlink("/etc/hostname", f"{root}/link-absolute")
os.symlink("nowhere/at/all", f"{root}/link-dangling")
os.symlink("d01", f"{root}/link-directory")
os.link(f"{root}/d00/s0/f1.txt", f"{root}/hard-link")
with open(f"{root}/big.bin", "wb") as out:
    for _ in range(50):
        out.write(os.urandom(1 << 20))
os.makedirs(f"{root}/" + "/".join(["a-rather-long-folder-name"] * 8))
open(f"{root}/" + "x" * 200, "w").write("a name longer than ustar's 100 bytes")
open(f"{root}/caf\u00e9-\u65e5\u672c.md", "w").write("not ASCII")
os.chmod(root, 0o750)
"""


def _create_volume(client: Any, config: StackConfig, name: str = VOLUME) -> str:
    full = volume_name(config, name)
    client.volumes.create(full)
    return full


def _backup(config: StackConfig, image: str, volume: str = VOLUME) -> Path:
    plan = operations.plan_backup(config, [volume], None)
    made = operations.apply_backup(config, plan, image=image)
    assert len(made) == 1
    return made[0]


def test_round_trip_restores_identical_tree(
    docker_client: Any, base_image: str, stack: StackConfig
) -> None:
    full = _create_volume(docker_client, stack)
    run_in_volume(docker_client, base_image, full, FILL_TREE)
    before = listing(docker_client, base_image, full)
    assert before.count(".txt|f|") == 5000

    archive = _backup(stack, base_image)
    assert store.verification_state(archive) == "verified"
    operations.restore_test(stack, archive, image=base_image)
    shell_in_volume(docker_client, base_image, full, "rm -rf /data/* && chmod 700 /data")
    assert listing(docker_client, base_image, full) != before

    plan = operations.plan_restore(stack, archive, None)
    assert plan.volume == VOLUME
    said: list[str] = []
    operations.apply_restore(stack, plan, image=base_image, progress=said.append)

    assert any(line.endswith("(exchange)") for line in said), said
    after = listing(docker_client, base_image, full)
    assert after == before
    assert "./link-dangling|l|777|0|0|nowhere/at/all" in after
    assert "./sticky|d|1777|" in after
    leftovers = [v.name for v in docker_client.volumes.list() if v.name.startswith(stack.project)]
    assert leftovers == [full]  # the staging volume is gone


def _corrupt_copies(archive: Path) -> dict[str, Path]:
    data = archive.read_bytes()
    flipped = archive.with_name("flipped-" + archive.name)
    middle = len(data) // 2
    flipped.write_bytes(data[:middle] + bytes([data[middle] ^ 0x40]) + data[middle + 1 :])
    truncated = archive.with_name("truncated-" + archive.name)
    truncated.write_bytes(data[: len(data) * 2 // 3])
    return {"flipped": flipped, "truncated": truncated}


def test_corrupt_truncated_and_foreign_archives_are_refused(
    docker_client: Any, base_image: str, project_factory: Any
) -> None:
    mine: StackConfig = project_factory("mine")
    theirs: StackConfig = project_factory("theirs")
    full = _create_volume(docker_client, mine)
    run_in_volume(
        docker_client,
        base_image,
        full,
        "import os\nfor i in range(200): open(f'/data/f{i}', 'wb').write(os.urandom(5000))",
    )
    archive = _backup(mine, base_image)
    foreign_volume = _create_volume(docker_client, theirs)
    run_in_volume(docker_client, base_image, foreign_volume, "open('/data/x','w').write('x')")
    foreign = _backup(theirs, base_image)
    # Under this project's own name pattern: only the header can tell it is foreign.
    disguised = archive.with_name(archive.name.replace("_2", "_1", 1))
    disguised.write_bytes(foreign.read_bytes())

    shell_in_volume(docker_client, base_image, full, "echo changed > /data/f0")
    current = listing(docker_client, base_image, full)
    reasons = {}
    for label, bad in [*_corrupt_copies(archive).items(), ("foreign", disguised)]:
        with pytest.raises(BackupError) as refused:
            plan = operations.plan_restore(mine, bad, None)
            operations.apply_restore(mine, plan, image=base_image)
        reasons[label] = str(refused.value)
        assert listing(docker_client, base_image, full) == current, label
    # A verified archive damaged in place, its size and mtime kept: the plan only reads its
    # header, the staging extraction finds the damage before the volume is touched.
    info = archive.stat()
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    os.utime(archive, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert store.verification_state(archive) == "verified"
    plan = operations.plan_restore(mine, archive, None)
    with pytest.raises(BackupError) as late:
        operations.apply_restore(mine, plan, image=base_image)
    assert "damaged" in str(late.value) or "checksum" in str(late.value)
    assert listing(docker_client, base_image, full) == current
    volumes = [v.name for v in docker_client.volumes.list() if v.name.startswith(mine.project)]
    assert volumes == [full]
    assert "damaged" in reasons["flipped"] or "differ" in reasons["flipped"]
    assert "truncated" in reasons["truncated"]
    assert f"belongs to project '{theirs.project}'" in reasons["foreign"]


def _service_container(client: Any, config: StackConfig, image: str, volume: str) -> Any:
    return client.containers.run(
        image,
        ["sleep", "infinity"],
        name=config.container_name("orchestrator"),
        labels={"aiwf.project": config.project, "aiwf.service": "orchestrator"},
        volumes={volume: {"bind": "/app/data", "mode": "rw"}},
        detach=True,
        network_mode="none",
    )


def test_restore_while_the_service_runs(
    docker_client: Any, base_image: str, stack: StackConfig
) -> None:
    full = _create_volume(docker_client, stack)
    service = _service_container(docker_client, stack, base_image, full)
    service.exec_run(["sh", "-c", "echo first > /app/data/state.json; mkdir /app/data/sub"])
    archive = _backup(stack, base_image)
    service.exec_run(["sh", "-c", "echo second > /app/data/state.json; touch /app/data/new"])

    plan = operations.plan_restore(stack, archive, None)
    assert plan.service_running
    assert any(step.startswith("stop orchestrator") for step in plan.steps())
    said: list[str] = []
    operations.apply_restore(stack, plan, image=base_image, progress=said.append)
    assert [line.split()[0] for line in said if line.startswith(("stopped", "swapped"))] == [
        "stopped",
        "swapped",
    ]
    assert any(line.endswith("(exchange)") for line in said), said

    service.reload()
    assert service.status == "running"
    code, output = service.exec_run(["sh", "-c", "cat /app/data/state.json; ls -A /app/data"])
    assert code == 0
    assert output.decode().split() == ["first", "state.json", "sub"]


@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused"])
def test_restore_copies_when_another_container_mounts_the_volume(
    docker_client: Any, base_image: str, stack: StackConfig, paused: bool
) -> None:
    """A running container that is not the service keeps its mount: the swap must not trade
    the volume's folder away under it, so the content is copied in (and it sees the result)."""
    full = _create_volume(docker_client, stack)
    shell_in_volume(docker_client, base_image, full, "echo kept > /data/a && mkdir /data/d")
    archive = _backup(stack, base_image)
    shell_in_volume(docker_client, base_image, full, "echo changed > /data/a && touch /data/b")
    reader = docker_client.containers.run(
        base_image,
        ["sleep", "infinity"],
        labels={"aiwf.project": stack.project},
        volumes={full: {"bind": "/data", "mode": "ro"}},
        detach=True,
        network_mode="none",
    )
    try:
        if paused:
            reader.pause()
        said: list[str] = []
        plan = operations.plan_restore(stack, archive, None)
        operations.apply_restore(stack, plan, image=base_image, progress=said.append)
        assert any(line.endswith("(copy)") for line in said), said
        if paused:
            reader.unpause()
        code, output = reader.exec_run(["sh", "-c", "cat /data/a; ls -A /data"])
        assert code == 0
        assert output.decode().split() == ["kept", "a", "d"]
    finally:
        reader.remove(force=True)


def _wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_killed_backup_leaves_no_archive_and_the_service_running(
    docker_client: Any, base_image: str, stack: StackConfig, tmp_path: Path, signum: int
) -> None:
    full = _create_volume(docker_client, stack)
    # A large sparse file keeps the backup busy long enough to be killed in the middle.
    shell_in_volume(
        docker_client, base_image, full, "truncate -s 3G /data/sparse && echo x >/data/a"
    )
    service = _service_container(docker_client, stack, base_image, full)
    root = Path(str(stack.paths.data_dir)).parent
    inventory = write_inventory(tmp_path, make_settings(root, stack.project))
    backup_dir = stack.paths.backup_dir
    assert backup_dir is not None
    aiwf = [sys.executable, "-c", "from aiwf.cli.main import main; main()", "-i", str(inventory)]
    process = subprocess.Popen([*aiwf, "backup", VOLUME], env=dict(os.environ))

    def paused_with_partial() -> bool:
        service.reload()
        partials = list(backup_dir.glob(".*.partial")) if backup_dir.is_dir() else []
        return service.status == "paused" and bool(partials)

    _wait_for(paused_with_partial)
    process.send_signal(signum)
    process.wait(timeout=60)
    assert process.returncode != 0

    if signum == signal.SIGKILL:
        # Nothing could run in the killed process: the next run repairs what it left.
        rerun = subprocess.run([*aiwf, "backup", VOLUME], capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
        assert "left quiesced by an interrupted run" in rerun.stdout
        assert len(store.list_archives(backup_dir, stack.project)) == 1
    else:
        assert store.list_archives(backup_dir, stack.project) == []
        assert not list(backup_dir.glob(".*.partial"))
    service.reload()
    assert service.status == "running"
    helpers = docker_client.containers.list(
        all=True, filters={"label": [f"aiwf.project={stack.project}", "aiwf.role=backup-helper"]}
    )
    assert helpers == []


def test_volumes_left_by_an_interrupted_restore_are_removed_by_the_next_run(
    docker_client: Any, stack: StackConfig, tmp_path: Path
) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    labels = {"aiwf.project": stack.project, "aiwf.role": operations.HELPER_ROLE}
    left = docker_client.volumes.create(
        f"{stack.project}_x-staging-left", labels={**labels, "aiwf.pid": str(gone.pid)}
    )
    running = docker_client.volumes.create(
        f"{stack.project}_x-staging-running", labels={**labels, "aiwf.pid": str(os.getpid())}
    )
    said: list[str] = []

    operations.recover_interrupted(stack, tmp_path, said.append)

    names = {volume.name for volume in docker_client.volumes.list()}
    assert left.name not in names
    assert running.name in names
    assert said == [f"removed volume {left.name} of an interrupted run"]
    running.remove(force=True)
