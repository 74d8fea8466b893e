"""The backup archive format and its one implementation: create, verify, extract, scan, swap.

This file uses the standard library only: it runs on the host (verification) and inside the
helper container (``python3 /aiwf/archiver.py create ...``), where the volume is mounted.

An archive is a POSIX (pax) tar stream, compressed with zstd or gzip::

    .aiwf-backup/header.json     first: format, project, volume, stack version, time
    data/...                     the volume's content (``data`` itself is the volume's root)
    .aiwf-backup/manifest.json   last: the header again, then every entry with type, size, mode,
                                 owner, mtime, sha256 (files) and target (links)

The header comes first so a foreign archive is refused at once; the manifest comes last because
the checksums are known only once every byte has been read, so one pass over the volume is enough.
Verification streams the archive once (:class:`TarReader`), hashes every member and compares
with the manifest; extraction writes the same stream and hashes each file as written.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

FORMAT = "aiwf-backup/1"
HEADER_NAME = ".aiwf-backup/header.json"
MANIFEST_NAME = ".aiwf-backup/manifest.json"
DATA = "data"
CHUNK = 1 << 20
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
#: Left in a volume during a swap: its previous content, removed once the new content checks out.
OLD_CONTENT_PREFIX = ".aiwf-previous-"

Entry = dict[str, Any]


class ArchiveError(Exception):
    """The archive (or a restored tree) does not match what it claims; the message says why."""


# --- entries: one description of a file, for archives and for trees on disk ----------


def _entry(relative: str, info: os.stat_result, hardlinks: dict[tuple[int, int], str]) -> Entry:
    entry: Entry = {
        "path": relative,
        "mode": stat.S_IMODE(info.st_mode),
        "uid": info.st_uid,
        "gid": info.st_gid,
        "mtime": int(info.st_mtime),
    }
    if stat.S_ISDIR(info.st_mode):
        entry["type"] = "dir"
    elif stat.S_ISLNK(info.st_mode):
        entry["type"] = "symlink"
    elif stat.S_ISREG(info.st_mode):
        key = (info.st_dev, info.st_ino)
        if info.st_nlink > 1 and key in hardlinks:
            entry["type"] = "hardlink"
            entry["target"] = hardlinks[key]
        else:
            if info.st_nlink > 1:
                hardlinks[key] = relative
            entry["type"] = "file"
            entry["size"] = info.st_size
    elif stat.S_ISFIFO(info.st_mode):
        entry["type"] = "fifo"
    else:
        entry["type"] = "other"  # sockets and devices are not backed up
    return entry


def walk(root: Path) -> Iterator[tuple[Path, Entry]]:
    """Every entry under ``root`` (``root`` itself as ``.``), sorted, without following links."""
    hardlinks: dict[tuple[int, int], str] = {}
    yield root, _entry(".", os.lstat(root), hardlinks)
    pending = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as scan:
            children = sorted(scan, key=lambda item: item.name)
        subdirectories = []
        for child in children:
            relative = f"{prefix}{child.name}"
            entry = _entry(relative, child.stat(follow_symlinks=False), hardlinks)
            if entry["type"] == "symlink":
                entry["target"] = os.readlink(child.path)
            yield Path(child.path), entry
            if entry["type"] == "dir":
                subdirectories.append((Path(child.path), f"{relative}/"))
        pending.extend(reversed(subdirectories))


def _comparable(entry: Entry, content: bool = True) -> Entry:
    """What must survive a round trip (directory mtimes change when children are written)."""
    dropped = ("mtime",) if content else ("mtime", "sha256")
    kept = {key: value for key, value in entry.items() if key not in dropped}
    if entry.get("type") == "file":
        kept["mtime"] = entry.get("mtime")
    return kept


def compare(expected: list[Entry], actual: list[Entry], where: str, content: bool = True) -> None:
    """Raise :class:`ArchiveError` naming the first differences between two entry lists.

    ``content=False`` compares everything but the checksums (for a tree whose bytes were hashed
    as they were written).
    """
    wanted = {entry["path"]: _comparable(entry, content) for entry in expected}
    found = {entry["path"]: _comparable(entry, content) for entry in actual}
    problems = []
    for path in sorted(wanted.keys() - found.keys())[:3]:
        problems.append(f"{path}: missing")
    for path in sorted(found.keys() - wanted.keys())[:3]:
        problems.append(f"{path}: not in the manifest")
    for path in sorted(wanted.keys() & found.keys()):
        if wanted[path] != found[path]:
            fields = sorted(
                key
                for key in wanted[path].keys() | found[path].keys()
                if wanted[path].get(key) != found[path].get(key)
            )
            problems.append(f"{path}: {', '.join(fields)} differ")
        if len(problems) >= 5:
            break
    if problems:
        raise ArchiveError(f"{where} does not match its manifest: " + "; ".join(problems))


def hash_file(path: Path, flush: bool = False) -> str:
    """sha256 of the file's content; with ``flush``, its data is on disk before this returns."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as stream:
        while block := stream.read(CHUNK):
            digest.update(block)
        if flush:
            os.fdatasync(stream.fileno())
    return digest.hexdigest()


def scan(root: Path, content: bool = True) -> list[Entry]:
    """The entries of a tree on disk (files hashed unless ``content`` is False)."""
    entries = []
    for path, entry in walk(root):
        if content and entry["type"] == "file":
            entry["sha256"] = hash_file(path)
        entries.append(entry)
    return entries


# --- create ----------


class _HashingReader:
    """Reads a file for tarfile, hashing what it hands out; pads with zeros if the file shrank."""

    def __init__(self, stream: IO[bytes], size: int) -> None:
        self.stream = stream
        self.remaining = size
        self.digest = hashlib.sha256()
        self.shrank = False

    def read(self, size: int = -1) -> bytes:
        wanted = self.remaining if size < 0 else min(size, self.remaining)
        block = self.stream.read(wanted)
        if len(block) < wanted:
            self.shrank = True
            block += b"\0" * (wanted - len(block))
        self.remaining -= len(block)
        self.digest.update(block)
        return block


def _tarinfo(entry: Entry) -> tarfile.TarInfo:
    name = DATA if entry["path"] == "." else f"{DATA}/{entry['path']}"
    info = tarfile.TarInfo(name)
    info.mode = entry["mode"]
    info.uid, info.gid = entry["uid"], entry["gid"]
    info.uname = info.gname = ""
    info.mtime = entry["mtime"]
    kind = entry["type"]
    if kind == "dir":
        info.type = tarfile.DIRTYPE
    elif kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, entry["target"]
    elif kind == "hardlink":
        info.type, info.linkname = tarfile.LNKTYPE, f"{DATA}/{entry['target']}"
    elif kind == "fifo":
        info.type = tarfile.FIFOTYPE
    else:
        info.type, info.size = tarfile.REGTYPE, entry["size"]
    return info


def _json_member(name: str, value: Any) -> tuple[tarfile.TarInfo, bytes]:
    data = json.dumps(value, sort_keys=True).encode()
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, int(value.get("created_unix", 0))
    return info, data


def _compressor(path: Path, compression: str, level: int) -> subprocess.Popen[bytes]:
    if compression == "zstd":
        command = ["zstd", "-q", "-T0", f"-{level}", "-f", "-o", str(path)]
        return subprocess.Popen(command, stdin=subprocess.PIPE)
    output = open(path, "wb")  # noqa: SIM115 - handed to the child, closed right after
    try:
        return subprocess.Popen(
            ["gzip", "-c", f"-{min(level, 9)}"], stdin=subprocess.PIPE, stdout=output
        )
    finally:
        output.close()


def create(source: Path, out: Path, compression: str, level: int, header: dict[str, Any]) -> Entry:
    """Archive ``source`` into ``out``; return a summary (entries, bytes, files that shrank)."""
    header = {**header, "format": FORMAT, "compression": compression}
    process = _compressor(out, compression, level)
    assert process.stdin is not None
    entries: list[Entry] = []
    skipped: list[str] = []
    changed: list[str] = []
    total = 0
    try:
        with tarfile.open(
            fileobj=process.stdin,
            mode="w|",
            format=tarfile.PAX_FORMAT,
            bufsize=CHUNK,
        ) as tar:
            tar.copybufsize = CHUNK  # type: ignore[attr-defined]
            tar.addfile(*_member_stream(*_json_member(HEADER_NAME, header)))
            for path, entry in walk(source):
                if entry["type"] == "other":
                    skipped.append(entry["path"])
                    continue
                info = _tarinfo(entry)
                if entry["type"] == "file":
                    try:
                        stream = open(path, "rb")  # noqa: SIM115 - closed below
                    except FileNotFoundError:  # removed since the walk saw it (a rotated log)
                        skipped.append(entry["path"])
                        continue
                    with stream:
                        reader = _HashingReader(stream, entry["size"])
                        tar.addfile(info, reader)  # type: ignore[arg-type]
                    entry["sha256"] = reader.digest.hexdigest()
                    total += entry["size"]
                    if reader.shrank:
                        changed.append(entry["path"])
                else:
                    tar.addfile(info)
                entries.append(entry)
            manifest = {**header, "entries": entries, "skipped": skipped, "changed": changed}
            tar.addfile(*_member_stream(*_json_member(MANIFEST_NAME, manifest)))
    finally:
        process.stdin.close()
        returncode = process.wait()
    if returncode != 0:
        raise ArchiveError(f"{compression} exited with status {returncode}")
    with open(out, "rb") as written:
        os.fsync(written.fileno())
    return {"entries": len(entries), "bytes": total, "skipped": skipped, "changed": changed}


def _member_stream(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, IO[bytes]]:
    import io

    return info, io.BytesIO(data)


# --- read: verify and extract share one streaming pass ----------


def _decompressor(path: Path) -> subprocess.Popen[bytes]:
    try:
        with open(path, "rb") as stream:
            magic = stream.read(4)
    except FileNotFoundError:
        raise ArchiveError(f"{path}: no such file") from None
    if magic.startswith(ZSTD_MAGIC):
        command = ["zstd", "-dcq", str(path)]
    elif magic.startswith(GZIP_MAGIC):
        command = ["gzip", "-dc", str(path)]
    else:
        raise ArchiveError(f"{path}: not a zstd or gzip archive")
    try:
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pipesize=CHUNK
        )
    except FileNotFoundError:
        raise ArchiveError(
            f"{command[0]} is not installed; apt-get install -y {command[0]}"
        ) from None


BLOCK = 512
#: ustar type flags -> the manifest's entry types (``x`` and ``g`` are pax headers).
_TYPES = {b"0": "file", b"\0": "file", b"1": "hardlink", b"2": "symlink", b"5": "dir", b"6": "fifo"}


@dataclass
class Member:
    """One tar member as :class:`TarReader` reads it; its content follows in the stream."""

    name: str
    type: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    linkname: str


def _number(field: bytes) -> int:
    """A numeric header field: octal text, or base-256 when its first byte has the high bit."""
    if field[:1] and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


class TarReader:
    """Reads an uncompressed tar stream front to back: pax and ustar, the subset aiwf writes.

    :mod:`tarfile`'s stream mode copies every block several times on its way through; this
    reader hands out views of one reused buffer, so verifying or extracting an archive costs
    little more than decompressing and hashing it::

        reader = TarReader(process.stdout)
        for member in reader.members():
            for block in reader.content(member):  # read it, or it is skipped
                digest.update(block)
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.buffer = bytearray(CHUNK)
        self.view = memoryview(self.buffer)
        self.unread = 0  # content bytes (with padding) of the current member not read yet

    def _fill(self, size: int) -> memoryview:
        """Exactly ``size`` (at most :data:`CHUNK`) bytes, or :class:`EOFError`."""
        view = self.view[:size]
        done = 0
        while done < size:
            count = self.stream.readinto(view[done:])  # type: ignore[attr-defined]
            if not count:
                raise EOFError("unexpected end of the tar stream")
            done += count
        return view

    def _skip(self, size: int) -> None:
        while size:
            step = min(size, CHUNK)
            self._fill(step)
            size -= step

    def content(self, member: Member) -> Iterator[memoryview]:
        """The member's bytes in blocks of up to :data:`CHUNK` (valid until the next block)."""
        remaining = member.size
        while remaining:
            step = min(remaining, CHUNK)
            yield self._fill(step)
            remaining -= step
            self.unread -= step
        self._skip(self.unread)
        self.unread = 0

    def _pax(self, size: int) -> dict[str, str]:
        """The records of a pax extended header: ``<length> <key>=<value>\\n`` each."""
        data = bytearray()
        remaining = size
        while remaining:
            step = min(remaining, CHUNK)
            data += self._fill(step)
            remaining -= step
        self._skip(-size % BLOCK)
        records: dict[str, str] = {}
        position = 0
        while position < len(data):
            space = data.index(b" ", position)
            length = int(data[position:space])
            key, _, value = bytes(data[space + 1 : position + length - 1]).partition(b"=")
            records[key.decode()] = value.decode("utf-8", "surrogateescape")
            position += length
        return records

    def members(self) -> Iterator[Member]:
        """Every member, pax headers applied; stops at the end-of-archive blocks."""
        extended: dict[str, str] = {}
        while True:
            self._skip(self.unread)
            self.unread = 0
            header = bytes(self._fill(BLOCK))
            if header == bytes(BLOCK):
                return
            stored = _number(header[148:156])
            summed = sum(header[:148]) + 8 * 32 + sum(header[156:])
            if stored != summed:
                raise ArchiveError("a tar header's checksum does not match (damaged archive)")
            flag = header[156:157]
            size = _number(header[124:136])
            if flag in (b"x", b"g"):
                records = self._pax(size)
                if flag == b"x":
                    extended.update(records)
                continue
            if flag not in _TYPES:
                raise ArchiveError(f"unsupported tar member type {flag!r}")
            name = _text(header[0:100])
            prefix = _text(header[345:500]) if header[257:262] == b"ustar" else ""
            if prefix:
                name = f"{prefix}/{name}"
            member = Member(
                name=extended.get("path", name).rstrip("/") or "/",
                type=_TYPES[flag],
                mode=_number(header[100:108]) & 0o7777,
                uid=int(extended.get("uid", _number(header[108:116]))),
                gid=int(extended.get("gid", _number(header[116:124]))),
                size=int(extended.get("size", size)) if _TYPES[flag] == "file" else 0,
                mtime=int(float(extended.get("mtime", _number(header[136:148])))),
                linkname=extended.get("linkpath", _text(header[157:257])),
            )
            extended = {}
            self.unread = member.size + (-member.size % BLOCK)
            yield member


@dataclass
class ReadResult:
    header: dict[str, Any]
    manifest: dict[str, Any]


def _safe_relative(name: str) -> str:
    if name == DATA:
        return "."
    if not name.startswith(f"{DATA}/"):
        raise ArchiveError(f"unexpected member {name!r}")
    relative = name[len(DATA) + 1 :]
    parts = relative.split("/")
    if relative.startswith("/") or ".." in parts or "" in parts:
        raise ArchiveError(f"unsafe member path {name!r}")
    return relative


def _member_entry(member: Member, relative: str) -> Entry:
    entry: Entry = {
        "path": relative,
        "type": member.type,
        "mode": member.mode,
        "uid": member.uid,
        "gid": member.gid,
        "mtime": member.mtime,
    }
    if member.type == "symlink":
        entry["target"] = member.linkname
    elif member.type == "hardlink":
        entry["target"] = _safe_relative(member.linkname)
    elif member.type == "file":
        entry["size"] = member.size
    return entry


def _inside_link(relative: str, links: set[str]) -> bool:
    """True when a folder on the way to ``relative`` is a symlink the archive made."""
    parts = relative.split("/")
    return any("/".join(parts[:depth]) in links for depth in range(1, len(parts)))


def read(
    archive: Path,
    expect_project: str | None = None,
    expect_volume: str | None = None,
    extract_to: Path | None = None,
    durable: bool = False,
) -> ReadResult:
    """Stream ``archive`` once: check the header, hash every member, compare with the manifest.

    With ``extract_to`` (an empty directory) the content is also written there, owners numeric;
    with ``durable`` too, each file's data is flushed to disk as it is checked, while the next
    ones are written. Raises :class:`ArchiveError` with the reason: corrupt, truncated, foreign,
    tampered.
    """
    process = _decompressor(archive)
    assert process.stdout is not None and process.stderr is not None
    header: dict[str, Any] | None = None
    manifest: dict[str, Any] | None = None
    found: list[Entry] = []
    directories: list[tuple[Path, Entry]] = []
    links: set[str] = set()
    # Extracting, each file is hashed as written back from the page cache, by other threads
    # while the next one is written: what the disk holds is what gets checked.
    hashing = ThreadPoolExecutor(os.cpu_count() or 2) if extract_to is not None else None
    hashed: list[tuple[Entry, Future[str]]] = []
    try:
        try:
            reader = TarReader(process.stdout)
            for member in reader.members():
                if header is None:
                    header = _read_header(reader, member, expect_project, expect_volume)
                    continue
                if manifest is not None:
                    raise ArchiveError(f"member {member.name!r} after the manifest")
                if member.name == MANIFEST_NAME:
                    manifest = _read_json(reader, member)
                    continue
                entry = _member_entry(member, _safe_relative(member.name))
                if _inside_link(entry["path"], links):
                    raise ArchiveError(f"member {member.name!r} lies behind a symlink")
                if entry["type"] != "file":
                    if entry["type"] == "symlink":
                        links.add(entry["path"])
                    if extract_to is not None:
                        _materialise(extract_to, entry, directories)
                elif extract_to is None or hashing is None:
                    entry["sha256"] = _hash_content(reader, member)
                else:
                    written = _write_content(reader, member, extract_to, entry)
                    hashed.append((entry, hashing.submit(hash_file, written, durable)))
                found.append(entry)
            while process.stdout.read(CHUNK):  # the zero padding after the end of the tar
                pass
        except (EOFError, OSError, ValueError) as error:
            raise ArchiveError(
                f"{archive.name}: damaged or truncated ({_decompressor_problem(process) or error})"
            ) from None
        for entry, digest in hashed:
            entry["sha256"] = digest.result()
    finally:
        if hashing is not None:
            hashing.shutdown(cancel_futures=True)
        process.stdout.close()
        if sys.exc_info()[0] is not None:
            process.kill()
        returncode = process.wait()
        process.stderr.close()
    if returncode != 0:
        detail = _decompressor_problem(process) or f"exit status {returncode}"
        raise ArchiveError(f"{archive.name}: damaged or truncated ({detail})")
    if header is None:
        raise ArchiveError(f"{archive.name}: empty archive")
    if manifest is None:
        raise ArchiveError(f"{archive.name}: truncated, no manifest at its end")
    if not isinstance(manifest.get("entries"), list):
        raise ArchiveError(f"{archive.name}: its manifest lists no entries")
    for key in ("project", "volume", "created"):
        if manifest.get(key) != header.get(key):
            raise ArchiveError(f"{archive.name}: manifest and header disagree on {key}")
    compare(manifest["entries"], found, archive.name)
    if extract_to is not None:
        for path, entry in reversed(directories):
            _apply_attributes(path, entry)
    return ReadResult(header=header, manifest=manifest)


def read_header(archive: Path, expect_project: str | None = None) -> dict[str, Any]:
    """Only the header (the archive's first member): format, project, volume. Fast."""
    process = _decompressor(archive)
    assert process.stdout is not None and process.stderr is not None
    try:
        reader = TarReader(process.stdout)
        member = next(reader.members(), None)
        if member is None:
            raise ArchiveError(f"{archive.name}: empty archive")
        return _read_header(reader, member, expect_project, None)
    except (EOFError, OSError, ValueError) as error:
        raise ArchiveError(f"{archive.name}: damaged ({error})") from None
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
        process.stderr.close()


def _decompressor_problem(process: subprocess.Popen[bytes]) -> str:
    """The decompressor's complaint (bad checksum, truncated input), once it has stopped."""
    assert process.stderr is not None
    if process.stderr.closed:
        return getattr(process, "aiwf_problem", "")
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return ""
    lines = process.stderr.read().decode(errors="replace").strip().splitlines()
    problem = lines[-1] if lines else ""
    process.aiwf_problem = problem  # type: ignore[attr-defined]
    return problem


#: A header or manifest larger than this is not one of ours.
JSON_LIMIT = 1 << 30


def _read_json(reader: TarReader, member: Member) -> dict[str, Any]:
    if member.type != "file":
        raise ArchiveError(f"{member.name}: not a file")
    if member.size > JSON_LIMIT:
        raise ArchiveError(f"{member.name}: {member.size} bytes, too large")
    data = bytearray()
    for block in reader.content(member):
        data += block
    try:
        value = json.loads(data)
    except ValueError as error:
        raise ArchiveError(f"{member.name}: not JSON ({error})") from None
    if not isinstance(value, dict):
        raise ArchiveError(f"{member.name}: not a JSON object")
    return value


def _read_header(
    reader: TarReader,
    member: Member,
    expect_project: str | None,
    expect_volume: str | None,
) -> dict[str, Any]:
    if member.name != HEADER_NAME:
        raise ArchiveError("not an aiwf backup: it does not start with its header")
    header = _read_json(reader, member)
    if header.get("format") != FORMAT:
        raise ArchiveError(f"unknown backup format {header.get('format')!r}, expected {FORMAT}")
    if expect_project is not None and header.get("project") != expect_project:
        raise ArchiveError(
            f"archive belongs to project {header.get('project')!r}, not {expect_project!r}"
        )
    if expect_volume is not None and header.get("volume") != expect_volume:
        raise ArchiveError(f"archive holds volume {header.get('volume')!r}, not {expect_volume!r}")
    return header


def _hash_content(reader: TarReader, member: Member) -> str:
    digest = hashlib.sha256()
    for block in reader.content(member):
        digest.update(block)
    return digest.hexdigest()


def _write_content(reader: TarReader, member: Member, root: Path, entry: Entry) -> Path:
    """Write a file member under ``root`` (never through a link), with its owner, mode, mtime."""
    target: Path = root / entry["path"]
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        for block in reader.content(member):
            while block:
                block = block[os.write(descriptor, block) :]
        os.fchown(descriptor, entry["uid"], entry["gid"])
        os.fchmod(descriptor, entry["mode"])
        os.utime(descriptor, (entry["mtime"], entry["mtime"]))
    finally:
        os.close(descriptor)
    return target


def _materialise(root: Path, entry: Entry, directories: list[tuple[Path, Entry]]) -> None:
    target = root / entry["path"]
    kind = entry["type"]
    if kind == "dir":
        if entry["path"] != ".":
            target.mkdir(mode=0o700)
        directories.append((target, entry))
        return
    if kind == "symlink":
        os.symlink(entry["target"], target)
        os.lchown(target, entry["uid"], entry["gid"])
        os.utime(target, (entry["mtime"], entry["mtime"]), follow_symlinks=False)
    elif kind == "hardlink":
        os.link(root / entry["target"], target, follow_symlinks=False)
    elif kind == "fifo":
        os.mkfifo(target, 0o600)
        _apply_attributes(target, entry)


def _apply_attributes(path: Path, entry: Entry) -> None:
    os.chown(path, entry["uid"], entry["gid"])
    os.chmod(path, entry["mode"])
    os.utime(path, (entry["mtime"], entry["mtime"]))


# --- swap: replace a volume's content with a verified staging copy ----------

RENAME_EXCHANGE = 2
AT_FDCWD = -100


def exchange(first: Path, second: Path) -> bool:
    """Swap two directories of one filesystem in one atomic step (``renameat2`` with
    ``RENAME_EXCHANGE``); False when the kernel or the filesystem cannot, and nothing moved."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    done = renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE)
    if done == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.ENOTSUP, errno.EBUSY):
        return False
    raise OSError(error, os.strerror(error), str(first))


def swap(
    staging: Path, target: Path, manifest: dict[str, Any], stamp: str, by_exchange: bool = False
) -> str:
    """Make ``target`` hold exactly what ``staging`` holds, keeping the old content until it does.

    ``by_exchange`` (both are volume roots of one filesystem, seen through one mount): the two
    folders trade places in one atomic rename, so ``target`` holds the verified tree and
    ``staging`` the old content, to be dropped with the staging volume. Otherwise, or when the
    filesystem cannot exchange, the old content is moved aside inside ``target`` (a rename), the
    staging tree is copied in with ``cp -a`` and checked against the manifest; on any failure the
    copy is removed and the old content moved back. Returns how: ``exchange`` or ``copy``.
    """
    if by_exchange:
        verified = os.lstat(staging).st_ino
        if exchange(staging, target):
            if os.lstat(target).st_ino != verified:
                raise ArchiveError(f"{target} is not the verified copy after the exchange")
            _flush_folder(target.parent)
            _flush_folder(staging.parent)
            return "exchange"
    _copy_swap(staging, target, manifest, stamp)
    return "copy"


def _copy_swap(staging: Path, target: Path, manifest: dict[str, Any], stamp: str) -> None:
    old = target / f"{OLD_CONTENT_PREFIX}{stamp}"
    previous = [name for name in os.listdir(target) if not name.startswith(OLD_CONTENT_PREFIX)]
    root_info = os.lstat(target)
    old.mkdir(mode=0o700)
    for name in previous:
        os.rename(target / name, old / name)
    try:
        subprocess.run(["cp", "-a", "--", f"{staging}/.", f"{target}/"], check=True)
        _apply_attributes(target, manifest["entries"][0])
        restored = [
            entry for entry in scan(target) if not entry["path"].startswith(OLD_CONTENT_PREFIX)
        ]
        compare(manifest["entries"], restored, "the restored volume")
    except BaseException:
        for name in os.listdir(target):
            if name != old.name:
                _remove(target / name)
        for name in os.listdir(old):
            os.rename(old / name, target / name)
        old.rmdir()
        os.chown(target, root_info.st_uid, root_info.st_gid)
        os.chmod(target, stat.S_IMODE(root_info.st_mode))
        raise
    shutil.rmtree(old)
    for name in os.listdir(target):  # content left by an earlier interrupted swap
        if name.startswith(OLD_CONTENT_PREFIX):
            _remove(target / name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


# --- command line (inside the helper container) ----------


def _flush_folder(path: Path) -> None:
    """Put a folder's entries on disk (``fsync`` of the folder itself)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _extract_command(arguments: argparse.Namespace) -> dict[str, Any]:
    """Extract, check the tree written; then flush it and swap it in when asked."""
    into: Path = arguments.into
    outcome = read(arguments.archive, arguments.project, arguments.volume, into, arguments.durable)
    # Every file was hashed as written; the tree on disk is now checked for type, size, mode,
    # owner and link target (nothing missing, nothing extra).
    compare(outcome.manifest["entries"], scan(into, False), "the restored copy", content=False)
    if arguments.manifest_out is not None:
        arguments.manifest_out.write_text(json.dumps(outcome.manifest))
    if arguments.durable:  # every file was flushed as it was checked; now the folders
        for entry in outcome.manifest["entries"]:
            if entry["type"] == "dir":
                _flush_folder(into / entry["path"])
    result = {"header": outcome.header, "entries": len(outcome.manifest["entries"])}
    if arguments.swap_into is not None:
        method = swap(into, arguments.swap_into, outcome.manifest, arguments.stamp, True)
        result |= {"swapped": str(arguments.swap_into), "method": method}
    return result


def main(argv: list[str] | None = None) -> int:
    """``create``, ``verify``, ``extract`` and ``swap``; one JSON line on stdout either way."""
    parser = argparse.ArgumentParser(prog="archiver")
    commands = parser.add_subparsers(dest="command", required=True)
    create_command = commands.add_parser("create")
    create_command.add_argument("--source", type=Path, required=True)
    create_command.add_argument("--out", type=Path, required=True)
    create_command.add_argument("--compression", choices=("zstd", "gzip"), default="zstd")
    create_command.add_argument("--level", type=int, default=3)
    create_command.add_argument("--header", required=True, help="JSON object")
    for name in ("verify", "extract"):
        command = commands.add_parser(name)
        command.add_argument("archive", type=Path)
        command.add_argument("--project")
        command.add_argument("--volume")
        if name == "extract":
            command.add_argument("--into", type=Path, required=True)
            command.add_argument("--manifest-out", type=Path, help="Write the manifest here.")
            command.add_argument(
                "--durable", action="store_true", help="Flush the copy to disk before answering."
            )
            command.add_argument(
                "--swap-into",
                type=Path,
                help="Then trade the checked copy with this folder of the same mount (a volume "
                "nothing runs on).",
            )
            command.add_argument("--stamp", default="swap", help="Names the swap's leftovers.")
    swap_command = commands.add_parser("swap")
    swap_command.add_argument("--staging", type=Path, required=True)
    swap_command.add_argument("--target", type=Path, required=True)
    swap_command.add_argument("--manifest", type=Path, required=True)
    swap_command.add_argument("--stamp", required=True)
    swap_command.add_argument(
        "--exchange", action="store_true", help="Trade the two folders in one atomic rename."
    )
    arguments = parser.parse_args(argv)
    try:
        if arguments.command == "create":
            result: Any = create(
                arguments.source,
                arguments.out,
                arguments.compression,
                arguments.level,
                json.loads(arguments.header),
            )
        elif arguments.command == "verify":
            outcome = read(arguments.archive, arguments.project, arguments.volume)
            result = {"header": outcome.header, "entries": len(outcome.manifest["entries"])}
        elif arguments.command == "extract":
            result = _extract_command(arguments)
        else:
            manifest = json.loads(arguments.manifest.read_text())
            method = swap(
                arguments.staging, arguments.target, manifest, arguments.stamp, arguments.exchange
            )
            result = {"swapped": str(arguments.target), "method": method}
    except ArchiveError as error:
        print(json.dumps({"ok": False, "error": str(error)}), flush=True)
        return 1
    print(json.dumps({"ok": True, "result": result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
