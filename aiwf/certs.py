"""TLS certificates for nginx: self-signed with ``cryptography``, Let's Encrypt with certbot.

nginx reads ``fullchain.pem`` and ``privkey.pem`` (mode 0600) from ``config.paths.certs_dir``,
mounted at ``/etc/nginx/certs``. Whatever the source of a certificate, it ends up as those two
files, written atomically, and nginx is told to reload.

Let's Encrypt uses certbot's webroot flow through the running nginx: certbot writes the challenge
into ``<data_dir>/acme-webroot`` (mounted into nginx at ``/var/www/acme``, served on port 80 under
``/.well-known/acme-challenge/``). certbot keeps its own state under ``<data_dir>/letsencrypt``.

Example::

    created = ensure_self_signed(config)   # on first ``up``: True when a certificate was made
    status = read_certificate(config.paths.certs_dir / CERT_FILE)
    print(status.days_left, status.names)
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aiwf.errors import CertificateError, UsageError
from aiwf.files import aiwf_command

if TYPE_CHECKING:
    from aiwf.config import StackConfig

CERT_FILE = "fullchain.pem"
KEY_FILE = "privkey.pem"
#: Where certbot writes challenge files on the host; nginx serves it at /var/www/acme.
ACME_WEBROOT = "acme-webroot"
ACME_WEBROOT_IN_CONTAINER = "/var/www/acme"
SELF_SIGNED_DAYS = 825


def certificate_names(config: StackConfig) -> list[str]:
    """The names a certificate of this stack covers: its domains, then localhost and 127.0.0.1."""
    names = list(dict.fromkeys([*config.domains, "localhost", "127.0.0.1"]))
    return names


def create_self_signed(certs_dir: Path, names: Sequence[str], days: int = SELF_SIGNED_DAYS) -> None:
    """An ECDSA P-256 key and a certificate for ``names`` (DNS names or IP addresses).

    The first name is the subject's common name; every name is a subjectAltName.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not names:
        raise UsageError("a certificate needs at least one name")
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ai-workflow self-signed"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    install_certificate(certs_dir, certificate.public_bytes(serialization.Encoding.PEM), key_pem)


def install_certificate(certs_dir: Path, chain_pem: bytes, key_pem: bytes) -> None:
    """Put a chain and its key where nginx reads them: key first (0600), then the chain."""
    from aiwf.files import write_atomic

    write_atomic(certs_dir / KEY_FILE, key_pem, mode=0o600)
    write_atomic(certs_dir / CERT_FILE, chain_pem, mode=0o644)


def ensure_self_signed(config: StackConfig) -> bool:
    """Create a self-signed certificate when the certs dir has none; True when one was made.

    Called by ``aiwf up`` before nginx starts, whatever ``tls.mode`` is, so nginx always has a
    certificate to start with (Let's Encrypt needs nginx running to answer its challenge).
    """
    certs_dir = _certs_dir(config)
    if (certs_dir / CERT_FILE).is_file() and (certs_dir / KEY_FILE).is_file():
        return False
    create_self_signed(certs_dir, certificate_names(config))
    return True


def _certs_dir(config: StackConfig) -> Path:
    certs_dir = config.paths.certs_dir
    assert certs_dir is not None  # filled by HostPaths
    return certs_dir


@dataclass(frozen=True)
class CertificateStatus:
    """What ``aiwf certs status`` and the health sweep report about one certificate."""

    path: Path
    subject: str
    issuer: str
    names: tuple[str, ...]
    not_after: dt.datetime
    key_type: str

    @property
    def days_left(self) -> float:
        return (self.not_after - dt.datetime.now(dt.UTC)).total_seconds() / 86400

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer

    def missing_names(self, wanted: Sequence[str]) -> list[str]:
        """Names of ``wanted`` the certificate does not cover (wildcards cover one label)."""
        return [name for name in wanted if not any(_covers(own, name) for own in self.names)]


def _covers(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower(), name.lower()
    if pattern.startswith("*."):
        head, _, rest = name.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == name


def read_certificate(path: Path) -> CertificateStatus:
    """Parse the first certificate of a PEM file (the leaf of a chain)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CertificateError(
            f"{path}: no certificate; create one with 'aiwf certs self-signed'"
        ) from None
    except OSError as error:
        raise CertificateError(f"{path}: cannot be read: {error.strerror}") from None
    try:
        certificate = x509.load_pem_x509_certificates(data)[0]
    except ValueError as error:
        raise CertificateError(f"{path}: not a PEM certificate: {error}") from None
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(
            [*san.get_values_for_type(x509.DNSName)]
            + [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        )
    except x509.ExtensionNotFound:
        names = ()
    public_key = certificate.public_key()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        key_type = f"ECDSA {public_key.curve.name}"
    elif isinstance(public_key, rsa.RSAPublicKey):
        key_type = f"RSA {public_key.key_size}"
    else:
        key_type = type(public_key).__name__
    return CertificateStatus(
        path=path,
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        names=names,
        not_after=certificate.not_valid_after_utc,
        key_type=key_type,
    )


def certificate_status(config: StackConfig) -> CertificateStatus:
    """The certificate nginx serves for this stack."""
    return read_certificate(_certs_dir(config) / CERT_FILE)


# --- Let's Encrypt (any ACME server) through certbot --------------------------------------------


@dataclass(frozen=True)
class AcmeOptions:
    """How to reach the ACME server; ``server`` wins over ``staging``."""

    email: str
    staging: bool = False
    server: str | None = None
    #: Only for test servers (pebble) whose TLS certificate no CA vouches for.
    no_verify_ssl: bool = False


class Certbot:
    """certbot with its config, work and logs dirs under ``<data_dir>/letsencrypt``.

    The lineage is named after the project, so ``renew`` and the deploy hook find it again.
    """

    def __init__(self, config: StackConfig, executable: str | None = None) -> None:
        self.config = config
        self.executable = executable or shutil.which("certbot") or "certbot"
        self.state_dir = config.paths.data_dir / "letsencrypt"
        self.webroot = config.paths.data_dir / ACME_WEBROOT

    @property
    def lineage(self) -> Path:
        return self.state_dir / "config" / "live" / self.config.project

    def _dirs(self) -> list[str]:
        return [
            "--config-dir",
            str(self.state_dir / "config"),
            "--work-dir",
            str(self.state_dir / "work"),
            "--logs-dir",
            str(self.state_dir / "logs"),
        ]

    @staticmethod
    def _acme(options: AcmeOptions) -> list[str]:
        args = []
        if options.server:
            args += ["--server", options.server]
        elif options.staging:
            args.append("--staging")
        if options.no_verify_ssl:
            args.append("--no-verify-ssl")
        return args

    def issue_command(self, options: AcmeOptions) -> list[str]:
        """``certbot certonly --webroot`` for every domain of the stack (not localhost)."""
        domains = [name for name in self.config.domains if name != "localhost"]
        if not domains:
            raise UsageError(
                "domains: only 'localhost' is configured; Let's Encrypt needs real names"
            )
        command = [
            self.executable,
            "certonly",
            "--non-interactive",
            "--agree-tos",
            "--email",
            options.email,
            "--webroot",
            "--webroot-path",
            str(self.webroot),
            "--cert-name",
            self.config.project,
            "--keep-until-expiring",
            "--expand",
            *self._dirs(),
            *self._acme(options),
        ]
        for domain in domains:
            command += ["-d", domain]
        return command

    def renew_command(
        self, options: AcmeOptions, deploy_hook: str, force: bool, now: bool = False
    ) -> list[str]:
        """``certbot renew`` of the project's lineage.

        Run unattended, certbot first sleeps a random while (spreading load on the CA);
        ``now`` skips that, for a renewal started by hand.
        """
        command = [
            self.executable,
            "renew",
            "--non-interactive",
            "--cert-name",
            self.config.project,
            "--deploy-hook",
            deploy_hook,
            *self._dirs(),
            *self._acme(options),
        ]
        if force:
            command.append("--force-renewal")
        if now:
            command.append("--no-random-sleep-on-renew")
        return command

    def run(self, command: Sequence[str]) -> str:
        """Run certbot; on failure raise with the end of its output (which names the cause)."""
        self.webroot.mkdir(parents=True, exist_ok=True)
        environment = dict(os.environ)
        try:
            result = subprocess.run(
                list(command), capture_output=True, text=True, env=environment, check=False
            )
        except FileNotFoundError:
            raise CertificateError(
                f"{command[0]}: certbot is not installed (apt-get install -y certbot)"
            ) from None
        if result.returncode != 0:
            tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-4:])
            raise CertificateError(f"certbot failed (exit {result.returncode}): {tail}")
        return result.stdout + result.stderr

    def install_lineage(self, lineage: Path | None = None) -> None:
        """Copy the lineage's current chain and key into the certs dir nginx reads.

        Copies, not symlinks: the certs dir is mounted alone into the nginx container, where a
        link into certbot's directories would not resolve.
        """
        source = lineage or self.lineage
        try:
            chain = (source / CERT_FILE).read_bytes()
            key = (source / KEY_FILE).read_bytes()
        except OSError as error:
            raise CertificateError(f"{source}: no issued certificate: {error.strerror}") from None
        install_certificate(_certs_dir(self.config), chain, key)


def deploy_hook_command(inventory: Path | None, host: str | None) -> str:
    """The shell command certbot runs after a renewal: ``aiwf certs deploy-hook``.

    It names this same ``aiwf`` and the same inventory, so the hook installs the certificate into
    the same stack that asked for the renewal.
    """
    return aiwf_command(inventory, host, "certs", "deploy-hook")


def reload_nginx(config: StackConfig) -> bool:
    """``nginx -s reload`` in the stack's nginx container; False when it is not running."""
    from aiwf.engine.docker_client import connect, engine_errors

    name = config.container_name("nginx")
    with engine_errors(f"reloading nginx in {name}"):
        client = connect()
        containers = client.containers.list(filters={"name": f"^/{name}$"})
        if not containers:
            return False
        exit_code, output = containers[0].exec_run(["nginx", "-s", "reload"])
    if exit_code != 0:
        text = output.decode(errors="replace").strip()
        raise CertificateError(f"nginx in {name} refused to reload: {text}")
    return True
