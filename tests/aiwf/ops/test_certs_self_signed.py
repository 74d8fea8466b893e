"""Self-signed certificates: names, curve, key mode, and the status command's threshold."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from aiwf import certs
from aiwf.cli.main import _register_commands, app
from aiwf.config import validate


def _config(tmp_path: Path, **extra: object) -> object:
    data = {
        "project": "certs-test",
        "domains": ["ai.example.com", "www.example.com"],
        "paths": {"data_dir": str(tmp_path / "data"), "certs_dir": str(tmp_path / "certs")},
        **extra,
    }
    return validate(data)


def test_self_signed_has_names_curve_and_private_key(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert certs.ensure_self_signed(config) is True  # type: ignore[arg-type]
    assert certs.ensure_self_signed(config) is False  # type: ignore[arg-type]

    key_path = tmp_path / "certs" / "privkey.pem"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    certificate = x509.load_pem_x509_certificate(
        (tmp_path / "certs" / "fullchain.pem").read_bytes()
    )
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {
        "ai.example.com",
        "www.example.com",
        "localhost",
    }
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    public_key = certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"

    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key().public_numbers() == public_key.public_numbers()

    status = certs.read_certificate(tmp_path / "certs" / "fullchain.pem")
    assert status.self_signed
    assert status.missing_names(["ai.example.com", "other.example.com"]) == ["other.example.com"]
    assert 824 < status.days_left < 826
    assert status.not_after > dt.datetime.now(dt.UTC)


def _inventory(tmp_path: Path) -> Path:
    inventory = tmp_path / "inventory.py"
    settings = {
        "project": "certs-cli",
        "domains": ["ai.example.com"],
        "paths": {"data_dir": f"{tmp_path}/data", "certs_dir": f"{tmp_path}/certs"},
    }
    inventory.write_text(f"hosts = [('@local', {{'aiwf': {settings!r}}})]\n")
    return inventory


def test_status_exit_status_follows_threshold(tmp_path: Path) -> None:
    _register_commands()
    inventory = _inventory(tmp_path)
    certs.create_self_signed(tmp_path / "certs", ["ai.example.com"], days=5)
    runner = CliRunner()
    result = runner.invoke(app, ["-i", str(inventory), "certs", "status", "--json"])
    assert result.exit_code != 0
    assert "4.9" in str(result.exception) or "5.0" in str(result.exception)
    ok = runner.invoke(app, ["-i", str(inventory), "certs", "status", "--min-days", "3"])
    assert ok.exit_code == 0, ok.output
    assert "ai.example.com" in ok.output
