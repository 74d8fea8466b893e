"""Backup and restore of a 1 GiB volume: ``aiwf`` against the original guide's recipe.

Data: 600 MB of text-like files (log lines from a 2,000-word vocabulary, 1 MB each) and 400 MB of
random bytes (10 MB files), in one Docker volume. Both sides run in the same local base image on
the same engine:

* guide, backup:  ``docker run --rm -v VOL:/data -v DIR:/backup IMAGE
  tar czf /backup/x.tar.gz -C /data .``
* guide, restore: ``docker run --rm -v VOL2:/data -v DIR:/backup IMAGE
  tar xzf /backup/x.tar.gz -C /data``
* aiwf, backup:   plan + apply (helper container, tar | zstd -T0 -3, manifest with sha256 of every
  file, then a full verification pass on the host, rename, verification record)
* aiwf, restore:  plan (header check of the verified archive) + apply (extract into a staging
  volume hashing every file, flush it, check the tree, exchange the two volumes' folders)

Run: ``.venv/bin/python bench/operations/bench_backup.py [--runs 3]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from aiwf.backup import operations
from aiwf.config import StackConfig, validate
from aiwf.engine.base_images import ensure_base_image
from aiwf.engine.docker_client import connect
from aiwf.stack import volume_name

FILL = r"""
import os, random
random.seed(1)
words = ["".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(random.randint(2, 10)))
         for _ in range(2000)]
os.makedirs("/data/text", exist_ok=True)
os.makedirs("/data/blobs", exist_ok=True)
for index in range(600):
    lines = []
    size = 0
    while size < 1_000_000:
        line = f"2026-11-25T03:{index % 60:02d}:{len(lines) % 60:02d} INFO " + " ".join(
            random.choices(words, k=12)) + "\n"
        lines.append(line)
        size += len(line)
    with open(f"/data/text/{index // 100}-{index}.log", "w") as out:
        out.write("".join(lines))
for index in range(40):
    with open(f"/data/blobs/blob-{index}.bin", "wb") as out:
        out.write(os.urandom(10_000_000))
"""

VOLUME = "plane-orchestrator-data"


def timed(action: Callable[..., object], *arguments: object) -> tuple[float, object]:
    start = time.perf_counter()
    value = action(*arguments)
    return time.perf_counter() - start, value


def guide_tar(image: str, volume: str, folder: Path, tar_arguments: list[str]) -> None:
    """The original guide's recipe: tar in a throwaway container, archive in a host folder."""
    command = ["docker", "run", "--rm", "-v", f"{volume}:/data", "-v", f"{folder}:/backup"]
    subprocess.run([*command, image, "tar", *tar_arguments], check=True)


def aiwf_backup(config: StackConfig, image: str) -> Path:
    plan = operations.plan_backup(config, [VOLUME], None, prune=False)
    return operations.apply_backup(config, plan, image=image)[0]


def aiwf_restore(config: StackConfig, image: str, archive: Path) -> None:
    operations.apply_restore(config, operations.plan_restore(config, archive, None), image=image)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()

    client = connect()
    image = ensure_base_image(client, "python")
    project = f"aiwfbench-{uuid.uuid4().hex[:6]}"
    work = Path(tempfile.mkdtemp(prefix="aiwf-bench-", dir="/var/tmp"))
    config = validate(
        {
            "project": project,
            "paths": {"data_dir": str(work / "data"), "backup_dir": str(work / "backups")},
            "backup": {"policy": {VOLUME: "none"}},
        }
    )
    source = volume_name(config, VOLUME)
    scratch = f"{project}_guide-restore"
    client.volumes.create(source)
    client.volumes.create(scratch)
    try:
        client.containers.run(
            image, ["python3", "-c", FILL], volumes={source: {"bind": "/data"}}, remove=True
        )
        guide_dir = work / "guide"
        guide_dir.mkdir()
        results: dict[str, list[float]] = {
            "guide backup": [],
            "aiwf backup": [],
            "guide restore": [],
            "aiwf restore": [],
        }
        sizes: dict[str, int] = {}
        for _ in range(arguments.runs):
            guide_archive = guide_dir / "x.tar.gz"
            guide_archive.unlink(missing_ok=True)
            backup = ["czf", "/backup/x.tar.gz", "-C", "/data", "."]
            results["guide backup"].append(timed(guide_tar, image, source, guide_dir, backup)[0])
            sizes["guide"] = guide_archive.stat().st_size
            restore = ["xzf", "/backup/x.tar.gz", "-C", "/data"]
            results["guide restore"].append(timed(guide_tar, image, scratch, guide_dir, restore)[0])
            seconds, archive = timed(aiwf_backup, config, image)
            assert isinstance(archive, Path)
            results["aiwf backup"].append(seconds)
            sizes["aiwf"] = archive.stat().st_size
            results["aiwf restore"].append(timed(aiwf_restore, config, image, archive)[0])
            archive.unlink()
        print(f"{'step':<14} {'median s':>9} {'runs':>30}")
        for name, values in results.items():
            shown = ", ".join(f"{value:.2f}" for value in values)
            print(f"{name:<14} {statistics.median(values):>9.2f} {shown:>30}")
        for step in ("backup", "restore"):
            ratio = statistics.median(results[f"guide {step}"]) / statistics.median(
                results[f"aiwf {step}"]
            )
            print(f"{step}: aiwf is {ratio:.2f}x the guide's speed (guide time / aiwf time)")
        guide_mb, aiwf_mb = sizes["guide"] / 1e6, sizes["aiwf"] / 1e6
        print(f"archive size: guide {guide_mb:.0f} MB, aiwf {aiwf_mb:.0f} MB")
    finally:
        for name in (source, scratch):
            client.volumes.get(name).remove(force=True)
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
