"""What the deploy builds locally and uploads: aiwf's wheel and the sources ``aiwf up`` builds from.

Both are reproducible: the same tree gives the same bytes (sorted entries, fixed timestamps and
owners), so pyinfra's checksum comparison uploads them only when something in them changed, and
a change in one service's folder changes only that service's archive::

    >>> wheel = build_wheel(project_root(), out_dir)
    >>> wheel.name
    'ai_workflow-0.1.0-py3-none-any.whl'
    >>> archives = source_archives(project_root(), ["orchestrator", "nginx"], out_dir)
    >>> sorted(archives)
    ['services-nginx', 'services-orchestrator', 'templates']
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import re
import tarfile
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from aiwf.errors import DeployError

#: The zip timestamp of every wheel entry (the earliest a zip can hold): reproducible wheels.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
#: Never shipped: caches, build output of Python tooling, local dependencies of the dashboard.
_SKIP_NAMES = {
    "__pycache__",
    "node_modules",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "build",
    ".venv",
    "wheels",
    "tests",
    "e2e",
}
_SKIP_SUFFIXES = (".pyc", ".egg-info")


def _shipped(path: Path) -> bool:
    return path.name not in _SKIP_NAMES and not path.name.endswith(_SKIP_SUFFIXES)


def _walk(root: Path) -> Iterator[Path]:
    """Files under ``root`` in a stable order, skipping caches and local dependencies."""
    for entry in sorted(root.iterdir(), key=lambda item: item.name):
        if not _shipped(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry)
        elif entry.is_file():
            yield entry


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- the wheel ---------------------------------------------------------------------------------


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _metadata(project: dict[str, object]) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
    ]
    if project.get("description"):
        lines.append(f"Summary: {project['description']}")
    if project.get("requires-python"):
        lines.append(f"Requires-Python: {project['requires-python']}")
    dependencies = project.get("dependencies") or []
    assert isinstance(dependencies, list)
    lines += [f"Requires-Dist: {requirement}" for requirement in dependencies]
    return "\n".join(lines) + "\n"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(root: Path, out_dir: Path) -> Path:
    """A pure-Python wheel of the ``aiwf`` package described by ``root/pyproject.toml``.

    Built without a build backend (no network, no build folders in the tree): the package files
    plus the standard ``.dist-info`` (METADATA, WHEEL, entry_points.txt, RECORD).
    """
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as error:
        raise DeployError(f"{root / 'pyproject.toml'}: cannot read [project]: {error}") from None
    name, version = _normalise(str(project["name"])), str(project["version"])
    dist_info = f"{name}-{version}.dist-info"
    entries: list[tuple[str, bytes]] = []
    package = root / "aiwf"
    for path in _walk(package):
        entries.append((path.relative_to(root).as_posix(), path.read_bytes()))
    scripts = project.get("scripts") or {}
    entry_points = "[console_scripts]\n" + "".join(
        f"{script} = {target}\n" for script, target in sorted(scripts.items())
    )
    entries += [
        (f"{dist_info}/METADATA", _metadata(project).encode()),
        (
            f"{dist_info}/WHEEL",
            b"Wheel-Version: 1.0\nGenerator: aiwf\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        ),
        (f"{dist_info}/entry_points.txt", entry_points.encode()),
        (f"{dist_info}/top_level.txt", b"aiwf\n"),
    ]
    record = [_record_line(entry, data) for entry, data in entries]
    record.append(f"{dist_info}/RECORD,,")
    entries.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for entry, data in entries:
            info = zipfile.ZipInfo(entry, date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return wheel


# --- the sources -------------------------------------------------------------------------------


def _tar_info(name: str, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def write_archive(folder: Path, archive: Path) -> Path:
    """``folder``'s shipped files as a gzipped tar whose bytes depend on their content alone."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for path in _walk(folder):
            data = path.read_bytes()
            mode = 0o755 if path.stat().st_mode & 0o100 else 0o644
            info = _tar_info(path.relative_to(folder).as_posix(), len(data), mode)
            tar.addfile(info, io.BytesIO(data))
    archive.parent.mkdir(parents=True, exist_ok=True)
    with (
        archive.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed,
    ):
        compressed.write(buffer.getvalue())
    return archive


def source_archives(root: Path, folders: Iterable[str], out_dir: Path) -> dict[str, Path]:
    """One archive for ``templates/`` and one per service folder: ``{"services-nginx": path}``.

    The key is also the folder's place on the host: ``templates`` or ``services/<folder>``.
    """
    archives = {"templates": write_archive(root / "templates", out_dir / "templates.tar.gz")}
    for folder in folders:
        source = root / "services" / folder
        if not source.is_dir():
            raise DeployError(f"{source}: service folder not found; is the checkout complete?")
        archives[f"services-{folder}"] = write_archive(
            source, out_dir / f"services-{folder}.tar.gz"
        )
    return archives


def archive_destination(key: str) -> str:
    """``services-nginx`` -> ``services/nginx``; ``templates`` -> ``templates``."""
    return key.replace("services-", "services/", 1) if key.startswith("services-") else key
