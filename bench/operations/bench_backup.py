"""Backup and restore of a 1 GiB volume: ``aiwf`` against the original guide's recipe.

Data: 600 MB of text-like files (log lines from a 2,000-word vocabulary, 1 MB each) and 400 MB of
random bytes (10 MB files), in one Docker volume. Both sides run in the same local base image on
the same engine:

* guide, backup:  ``docker run --rm -v VOL:/data -v DIR:/backup IMAGE tar czf /backup/x.tar.gz -C /data .``
* guide, restore: ``docker run --rm -v VOL2:/data -v DIR:/backup IMAGE tar xzf /backup/x.tar.gz -C /data``
* aiwf, backup:   plan + apply (helper container, tar | zstd -T0 -3, manifest with sha256 of every
  file, then a full verification pass on the host, rename, verification record)
* aiwf, restore:  plan (full verification) + apply (extract into a staging volume and check it,
  swap into the volume with ``cp -a`` and check again)

Run: ``.venv/bin/python bench/operations/bench_backup.py [--runs 3]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from aiwf.backup import operations
from aiwf.config import validate
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


def timed(action: object) -> float:
    start = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - start


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
            results["guide backup"].append(
                timed(
                    lambda: subprocess.run(
                        ["docker", "run", "--rm", "-v", f"{source}:/data", "-v",
                         f"{guide_dir}:/backup", image, "tar", "czf", "/backup/x.tar.gz",
                         "-C", "/data", "."],
                        check=True,
                    )
                )
            )
            sizes["guide"] = guide_archive.stat().st_size
            results["guide restore"].append(
                timed(
                    lambda: subprocess.run(
                        ["docker", "run", "--rm", "-v", f"{scratch}:/data", "-v",
                         f"{guide_dir}:/backup", image, "tar", "xzf", "/backup/x.tar.gz",
                         "-C", "/data"],
                        check=True,
                    )
                )
            )
            made: list[Path] = []
            results["aiwf backup"].append(
                timed(
                    lambda: made.extend(
                        operations.apply_backup(
                            config,
                            operations.plan_backup(config, [VOLUME], None, prune=False),
                            image=image,
                        )
                    )
                )
            )
            sizes["aiwf"] = made[0].stat().st_size
            results["aiwf restore"].append(
                timed(
                    lambda: operations.apply_restore(
                        config, operations.plan_restore(config, made[0], None), image=image
                    )
                )
            )
            made[0].unlink()
        print(f"{'step':<14} {'median s':>9} {'runs':>30}")
        for name, values in results.items():
            shown = ", ".join(f"{value:.2f}" for value in values)
            print(f"{name:<14} {statistics.median(values):>9.2f} {shown:>30}")
        for step in ("backup", "restore"):
            ratio = statistics.median(results[f"guide {step}"]) / statistics.median(
                results[f"aiwf {step}"]
            )
            print(f"{step}: aiwf is {ratio:.2f}x the guide's speed (guide time / aiwf time)")
        print(f"archive size: guide {sizes['guide'] / 1e6:.0f} MB, aiwf {sizes['aiwf'] / 1e6:.0f} MB")
    finally:
        for name in (source, scratch):
            client.volumes.get(name).remove(force=True)
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
