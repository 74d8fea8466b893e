"""Local base images for hosts that cannot pull from a registry.

The service Dockerfiles default to official images (``python:3.12-slim``, ``nginx:stable``). Where
no registry answers, :func:`ensure_base_image` builds one Debian bookworm image from the host's own
apt mirror with ``debootstrap`` and imports it through docker-py. The image holds everything every
service needs (python3 + venv, tmux, curl, ca-certificates, nginx, zstd, tar, procps, and the
sandbox's toolchain: git, build-essential, ssh, jq, ripgrep, ...), so one image serves them all.
It is tagged by a hash of its recipe and kept by the engine, so it is built once per recipe::

    tag = ensure_base_image(connect())   # 'aiwf-base:bookworm-3f1c0a9e2b7d'
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiwf.engine.docker_client import engine_errors
from aiwf.errors import EngineError

if TYPE_CHECKING:
    import docker

BASE_REPOSITORY = "aiwf-base"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: Every kind of base image the Dockerfiles ask for is served by the one recipe.
KINDS: tuple[str, ...] = ("python", "nginx")
#: Serialises concurrent builds of the same base image on one host.
BUILD_LOCK = Path(tempfile.gettempdir()) / "aiwf-base-image.lock"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BaseRecipe:
    """What goes into a base image; its hash names the image, so any change builds a new one."""

    suite: str = "bookworm"
    variant: str = "minbase"
    packages: tuple[str, ...] = (
        "python3",
        "python3-venv",
        "tmux",
        "curl",
        "ca-certificates",
        "nginx",
        "zstd",
        "tar",
        "procps",
        # The sandbox's toolchain: what a coding agent reaches for in a repository.
        "git",
        "build-essential",
        "openssh-client",
        "less",
        "jq",
        "ripgrep",
        "patch",
        "unzip",
        "xz-utils",
        "file",
    )
    changes: tuple[str, ...] = (
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["/bin/bash"]',
    )
    #: Bumped when the way the rootfs is prepared changes.
    revision: int = 1

    def digest(self) -> str:
        encoded = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()

    def tag(self) -> str:
        """``aiwf-base:bookworm-<first 12 hex digits of the recipe hash>``."""
        return f"{BASE_REPOSITORY}:{self.suite}-{self.digest()[:12]}"


RECIPE = BaseRecipe()


def base_image_tag(kind: str = "python") -> str:
    """The tag the local base image of ``kind`` has (or will have once built)."""
    _check_kind(kind)
    return RECIPE.tag()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise EngineError(f"unknown base image kind '{kind}'; known: {', '.join(KINDS)}")


def host_mirror(
    sources: tuple[Path, ...] = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d")),
    suite: str = RECIPE.suite,
) -> str:
    """The Debian mirror this host's apt uses for ``suite`` (not its security archive).

    Reads one-line ``deb URI SUITE ...`` entries and deb822 ``.sources`` stanzas; falls back to
    ``deb.debian.org``.
    """
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files.extend(sorted(source.glob("*.list")) + sorted(source.glob("*.sources")))
        elif source.is_file():
            files.append(source)
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        found = (
            _mirror_in_deb822(text, suite)
            if path.suffix == ".sources"
            else _mirror_in_one_line(text, suite)
        )
        if found:
            return found
    return DEFAULT_MIRROR


def _mirror_in_one_line(text: str, suite: str) -> str | None:
    for line in text.splitlines():
        fields = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
        if len(fields) >= 3 and fields[0] == "deb" and fields[2] == suite:
            return fields[1].rstrip("/")
    return None


def _mirror_in_deb822(text: str, suite: str) -> str | None:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no" or "deb" not in fields.get("types", ""):
            continue
        if suite in fields.get("suites", "").split():
            uris = fields.get("uris", "").split()
            if uris:
                return uris[0].rstrip("/")
    return None


def find_base_image(client: docker.DockerClient, kind: str = "python") -> str | None:
    """The local base image's tag when the engine has it, else ``None``."""
    import docker.errors

    tag = base_image_tag(kind)
    with engine_errors(f"look up {tag}"):
        try:
            client.images.get(tag)
        except docker.errors.ImageNotFound:
            return None
    return tag


def ensure_base_image(
    client: docker.DockerClient, kind: str = "python", progress: Progress | None = None
) -> str:
    """The tag of the local base image of ``kind``, building and importing it when missing.

    Needs root, ``debootstrap`` and the host's Debian mirror. Concurrent callers on one host wait
    for each other; the second finds the image the first built.
    """
    found = find_base_image(client, kind)
    if found:
        return found
    with _build_lock():
        found = find_base_image(client, kind)
        if found:
            return found
        tag = base_image_tag(kind)
        _build_and_import(client, tag, progress or (lambda _line: None))
        return tag


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    with open(BUILD_LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def debootstrap_command(rootfs: Path, mirror: str, recipe: BaseRecipe = RECIPE) -> list[str]:
    """The debootstrap call that fills ``rootfs`` (returned, not run)."""
    return [
        "debootstrap",
        f"--variant={recipe.variant}",
        f"--include={','.join(recipe.packages)}",
        recipe.suite,
        str(rootfs),
        mirror,
    ]


def _build_and_import(client: docker.DockerClient, tag: str, progress: Progress) -> None:
    if os.geteuid() != 0:
        raise EngineError(f"building the base image {tag} needs root (debootstrap); run as root")
    if not shutil.which("debootstrap"):
        raise EngineError(
            f"building the base image {tag} needs debootstrap: apt-get install -y debootstrap"
        )
    work = Path(tempfile.mkdtemp(prefix="aiwf-base-", dir="/var/tmp"))
    rootfs = work / "rootfs"
    try:
        mirror = host_mirror()
        progress(f"debootstrap {RECIPE.suite} from {mirror}")
        _run_streaming(debootstrap_command(rootfs, mirror), progress, f"debootstrap for {tag}")
        _slim(rootfs)
        archive = work / "rootfs.tar"
        progress("packing the root filesystem")
        _run_streaming(
            [
                "tar",
                "--numeric-owner",
                "--xattrs",
                "--exclude=./proc/*",
                "--exclude=./sys/*",
                "--exclude=./dev/*",
                "-C",
                str(rootfs),
                "-cf",
                str(archive),
                ".",
            ],
            progress,
            f"packing {rootfs}",
        )
        progress(f"importing {tag}")
        repository, _, version = tag.partition(":")
        changes = [*RECIPE.changes, f"LABEL aiwf.base.recipe={RECIPE.digest()}"]
        with engine_errors(f"import {tag}"):
            client.api.import_image_from_file(
                str(archive), repository=repository, tag=version, changes=changes
            )
        progress(f"built {tag}")
    finally:
        _remove_rootfs(work)


def _slim(rootfs: Path) -> None:
    """Drop what only the build needed: downloaded packages and apt lists."""
    for folder in ("var/cache/apt/archives", "var/lib/apt/lists"):
        target = rootfs / folder
        if target.is_dir():
            for entry in target.iterdir():
                if entry.is_file() and entry.name != "lock":
                    entry.unlink()


def _run_streaming(command: list[str], progress: Progress, what: str) -> None:
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env={**os.environ, "LC_ALL": "C"},
    ) as process:
        assert process.stdout is not None
        last: list[str] = []
        for line in process.stdout:
            line = line.rstrip()
            if line:
                progress(line)
                last = [*last[-9:], line]
        status = process.wait()
    if status != 0:
        detail = "\n  ".join(last)
        raise EngineError(f"{what} failed (exit status {status}):\n  {detail}")


def _mounts_under(folder: Path) -> list[str]:
    prefix = str(folder.resolve()) + "/"
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1].replace("\\040", " ") for line in lines if len(line.split()) > 1]
    return [point for point in points if point.startswith(prefix)]


def _remove_rootfs(work: Path) -> None:
    """Unmount whatever a failed debootstrap left mounted, then delete the work folder."""
    for point in sorted(_mounts_under(work), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    remaining = _mounts_under(work)
    if remaining:
        raise EngineError(
            f"{work} still has mounts ({', '.join(remaining)}); unmount them and delete it"
        )
    shutil.rmtree(work, ignore_errors=True)
