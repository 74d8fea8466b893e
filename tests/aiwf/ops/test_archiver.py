"""The archive format on the host: names that need pax headers, and archives built to attack.

The archiver reads tar streams with its own reader (:class:`archiver.TarReader`); these tests feed
it what :mod:`tarfile` writes, including what aiwf itself never writes.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from aiwf.backup import archiver

HEADER = {"project": "p", "volume": "v", "created": "2026-11-25T00:00:00+00:00"}


def _make_tree(root: Path) -> None:
    root.mkdir()
    deep = root.joinpath(*["a-long-folder-name-for-pax"] * 12)
    deep.mkdir(parents=True)
    (deep / ("f" * 200)).write_bytes(os.urandom(3000))
    (root / "café-日本.txt").write_text("not ASCII")
    os.close(os.open(os.path.join(os.fsencode(root), b"undecodable-\xff"), os.O_CREAT, 0o640))
    (root / "to-deep").symlink_to(os.path.relpath(deep, root))
    (root / "empty").mkdir(mode=0o700)


def test_names_that_need_pax_headers_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "source"
    _make_tree(source)
    archive = tmp_path / "a.tar.zst"
    archiver.create(source, archive, "zstd", 3, {**HEADER, "created_unix": 0})

    restored = tmp_path / "restored"
    restored.mkdir()
    result = archiver.read(archive, expect_project="p", expect_volume="v", extract_to=restored)

    assert len(result.manifest["entries"]) == len(archiver.scan(source))
    archiver.compare(archiver.scan(source), archiver.scan(restored), "the restored tree")
    assert os.path.exists(os.path.join(os.fsencode(restored), b"undecodable-\xff"))


def _compressed(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    archive = tmp_path / "crafted.tar.zst"
    subprocess.run(["zstd", "-q", "-o", str(archive)], input=buffer.getvalue(), check=True)
    return archive


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _header_member() -> tuple[tarfile.TarInfo, bytes]:
    header = {**HEADER, "format": archiver.FORMAT}
    return _file(archiver.HEADER_NAME, json.dumps(header).encode())


def test_a_member_behind_a_symlink_is_refused_before_it_is_written(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tarfile.TarInfo("data")
    root.type = tarfile.DIRTYPE
    link = tarfile.TarInfo("data/escape")
    link.type, link.linkname = tarfile.SYMTYPE, str(outside)
    archive = _compressed(
        tmp_path,
        [_header_member(), (root, None), (link, None), _file("data/escape/planted", b"x")],
    )
    into = tmp_path / "into"
    into.mkdir()

    with pytest.raises(archiver.ArchiveError, match="behind a symlink"):
        archiver.read(archive, extract_to=into)
    assert list(outside.iterdir()) == []


def test_a_damaged_tar_header_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "file").write_bytes(b"content")
    archive = tmp_path / "a.tar.zst"
    archiver.create(source, archive, "zstd", 3, {**HEADER, "created_unix": 0})
    plain = bytearray(subprocess.run(["zstd", "-dcq", str(archive)], capture_output=True).stdout)
    position = plain.index(b"data/file")
    plain[position] ^= 0x20  # the name changes, the header's checksum does not
    subprocess.run(["zstd", "-qf", "-o", str(archive)], input=bytes(plain), check=True)

    with pytest.raises(archiver.ArchiveError, match="checksum"):
        archiver.read(archive)


def test_a_member_outside_the_data_folder_is_refused(tmp_path: Path) -> None:
    archive = _compressed(tmp_path, [_header_member(), _file("../etc/passwd", b"root::0:0")])
    into = tmp_path / "into"
    into.mkdir()

    with pytest.raises(archiver.ArchiveError, match="unexpected member"):
        archiver.read(archive, extract_to=into)
    assert list(into.iterdir()) == []


def test_a_manifest_without_entries_is_refused(tmp_path: Path) -> None:
    manifest = {**HEADER, "format": archiver.FORMAT}
    archive = _compressed(
        tmp_path, [_header_member(), _file(archiver.MANIFEST_NAME, json.dumps(manifest).encode())]
    )

    with pytest.raises(archiver.ArchiveError, match="lists no entries"):
        archiver.read(archive)
