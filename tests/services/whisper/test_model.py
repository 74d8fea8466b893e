"""The embedded model: assembly from the pinned wheels, verification, and load errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from whisper_service.core.config import Settings
from whisper_service.engine import Engine, ModelLoadError
from whisper_service.model import PINNED_FILES, EmbeddedModelError, assemble, verify_model_dir


def test_assembled_model_matches_every_pinned_file(model_dir: Path) -> None:
    verify_model_dir(model_dir, full=True)
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(f.name for f in PINNED_FILES)


def test_a_flipped_byte_is_caught_by_sha256(model_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(model_dir, tmp_path / "copy"))
    with (copy / "config.json").open("r+b") as handle:
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0xFF]))
    verify_model_dir(copy, full=False)  # same size: only the digest can tell
    with pytest.raises(EmbeddedModelError, match=r"config\.json: sha256 .*expected"):
        verify_model_dir(copy, full=True)


def test_assemble_replaces_a_truncated_model(model_dir: Path, tmp_path: Path) -> None:
    broken = Path(shutil.copytree(model_dir, tmp_path / "model"))
    (broken / "model.bin").write_bytes(b"\0" * 10)
    with pytest.raises(EmbeddedModelError, match=r"model\.bin: size 10 bytes, expected 145217607"):
        verify_model_dir(broken, full=False)
    assert assemble(broken) == broken.resolve()
    verify_model_dir(broken, full=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model.")]


def test_assemble_command_line(tmp_path: Path) -> None:
    out = tmp_path / "cli-model"
    done = subprocess.run(
        [sys.executable, "-m", "whisper_service.model", "assemble", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out.resolve())
    checked = subprocess.run(
        [sys.executable, "-m", "whisper_service.model", "verify", "--dir", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_missing_model_dir_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    engine = Engine(Settings(model_dir=missing))
    with pytest.raises(ModelLoadError, match=f"{missing} does not exist"):
        engine.load()
    assert not missing.exists()  # nothing was fetched or created


def test_unloadable_model_dir_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus-model"
    bogus.mkdir()
    (bogus / "model.bin").write_bytes(b"not a model")
    (bogus / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=f"{bogus} does not load"):
        Engine(Settings(model_dir=bogus)).load()


def test_service_refuses_to_start_without_its_model(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "large-v3"
    done = subprocess.run(
        [sys.executable, "-m", "whisper_service"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WHISPER_MODEL_DIR": str(missing)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: model directory {missing} does not exist; set WHISPER_MODEL_DIR to a "
        "CTranslate2 Whisper model directory (or unset it for the embedded model)"
    )


def test_bad_setting_is_named(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "whisper_service"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "WHISPER_COMPUTE_TYPE": "int3"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "WHISPER_COMPUTE_TYPE" in done.stderr
    assert "'int3'" in done.stderr
