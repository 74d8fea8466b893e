"""``aiwf certs``: self-signed and Let's Encrypt certificates for nginx, their status, renewal."""

from __future__ import annotations

from typing import Annotated

import typer

from aiwf.certs import AcmeOptions
from aiwf.cli.context import AppContext
from aiwf.errors import CertificateError

certs_app = typer.Typer(help="TLS certificates nginx serves.", no_args_is_help=True)


@certs_app.command("self-signed")
def self_signed(
    ctx: typer.Context,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing certificate.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")] = False,
) -> None:
    """ECDSA P-256 certificate for the domains, localhost and 127.0.0.1 (key mode 0600)."""
    from aiwf import certs

    app = AppContext.of(ctx)
    config = app.config
    certs_dir = config.paths.certs_dir
    names = certs.certificate_names(config)
    exists = certs_dir is not None and (certs_dir / certs.CERT_FILE).exists()
    if exists and not force:
        app.console.print(f"{certs_dir}: a certificate exists; --force replaces it")
        return
    if dry_run:
        app.console.print(f"would write {certs_dir}/{{fullchain,privkey}}.pem for {names}")
        return
    assert certs_dir is not None
    certs.create_self_signed(certs_dir, names)
    app.console.print(f"wrote {certs_dir / certs.CERT_FILE} for {', '.join(names)}")
    if certs.reload_nginx(config):
        app.console.print("nginx reloaded")


def _acme_options(
    ctx: typer.Context, email: str | None, staging: bool, server: str | None, no_verify: bool
) -> tuple[AppContext, AcmeOptions]:
    app = AppContext.of(ctx)
    tls = app.config.tls
    address = email or tls.email
    if not address:
        raise CertificateError("no ACME account email: give --email or set tls.email")
    options = AcmeOptions(
        email=address,
        staging=staging or tls.staging,
        server=server or tls.acme_server,
        no_verify_ssl=no_verify,
    )
    return app, options


EmailOption = Annotated[str | None, typer.Option("--email", help="ACME account email.")]
StagingOption = Annotated[bool, typer.Option("--staging", help="Let's Encrypt staging server.")]
ServerOption = Annotated[
    str | None, typer.Option("--server", help="ACME directory URL of any ACME server.")
]
NoVerifyOption = Annotated[
    bool,
    typer.Option("--no-verify-ssl", help="Do not check the ACME server's TLS (test servers)."),
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print the plan only.")]


@certs_app.command("letsencrypt")
def letsencrypt(
    ctx: typer.Context,
    email: EmailOption = None,
    staging: StagingOption = False,
    server: ServerOption = None,
    no_verify_ssl: NoVerifyOption = False,
    dry_run: DryRunOption = False,
) -> None:
    """Issue a certificate with certbot's webroot flow through the running nginx, then reload."""
    from aiwf.certs import Certbot, reload_nginx

    app, options = _acme_options(ctx, email, staging, server, no_verify_ssl)
    certbot = Certbot(app.config)
    command = certbot.issue_command(options)
    if dry_run:
        app.console.print("would run: " + " ".join(command))
        app.console.print(f"then copy {certbot.lineage} into {app.config.paths.certs_dir}")
        app.console.print("then reload nginx")
        return
    certbot.run(command)
    certbot.install_lineage()
    reloaded = reload_nginx(app.config)
    app.console.print(
        f"certificate installed in {app.config.paths.certs_dir}"
        + ("; nginx reloaded" if reloaded else "; nginx is not running")
    )


@certs_app.command("renew")
def renew(
    ctx: typer.Context,
    staging: StagingOption = False,
    server: ServerOption = None,
    no_verify_ssl: NoVerifyOption = False,
    force: Annotated[bool, typer.Option("--force", help="Renew even if not due.")] = False,
    now: Annotated[
        bool, typer.Option("--now", help="No random delay first (certbot adds one unattended).")
    ] = False,
    dry_run: DryRunOption = False,
) -> None:
    """``certbot renew``; its deploy hook installs the new certificate and reloads nginx."""
    from aiwf.certs import Certbot, deploy_hook_command

    app = AppContext.of(ctx)
    tls = app.config.tls
    options = AcmeOptions(
        email=tls.email or "",
        staging=staging or tls.staging,
        server=server or tls.acme_server,
        no_verify_ssl=no_verify_ssl,
    )
    certbot = Certbot(app.config)
    hook = deploy_hook_command(app.inventory, app.host)
    command = certbot.renew_command(options, hook, force, now)
    if dry_run:
        app.console.print("would run: " + " ".join(command))
        return
    output = certbot.run(command)
    renewed = "No renewals were attempted" not in output
    app.console.print("renewed" if renewed else "not due for renewal")


@certs_app.command("deploy-hook", hidden=True)
def deploy_hook(ctx: typer.Context) -> None:
    """certbot's deploy hook: copy the renewed lineage into the certs dir, reload nginx."""
    import os
    from pathlib import Path

    from aiwf.certs import Certbot, reload_nginx

    app = AppContext.of(ctx)
    lineage = os.environ.get("RENEWED_LINEAGE")
    Certbot(app.config).install_lineage(Path(lineage) if lineage else None)
    reload_nginx(app.config)


@certs_app.command("status")
def status(
    ctx: typer.Context,
    min_days: Annotated[
        int | None,
        typer.Option(
            "--min-days", help="Exit 1 below this many days left (default tls.warn_days)."
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Issuer, names, expiry and days left of the certificate nginx serves."""
    from aiwf.certs import certificate_names, certificate_status

    app = AppContext.of(ctx)
    config = app.config
    current = certificate_status(config)
    threshold = min_days if min_days is not None else config.tls.warn_days
    missing = current.missing_names(certificate_names(config))
    if json_output:
        app.print_json(
            {
                "path": str(current.path),
                "issuer": current.issuer,
                "subject": current.subject,
                "names": list(current.names),
                "not_after": current.not_after.isoformat(),
                "days_left": round(current.days_left, 2),
                "key": current.key_type,
                "missing_names": missing,
            }
        )
    else:
        colour = "green" if current.days_left >= threshold else "red"
        app.console.print(f"certificate  {current.path}")
        app.console.print(f"issuer       {current.issuer}")
        app.console.print(f"names        {', '.join(current.names)}")
        app.console.print(f"key          {current.key_type}")
        app.console.print(f"not after    {current.not_after:%Y-%m-%d %H:%M} UTC")
        app.console.print(f"days left    [{colour}]{current.days_left:.1f}[/{colour}]")
        if missing:
            app.console.print(f"[red]not covered: {', '.join(missing)}[/red]")
    if current.days_left < threshold:
        raise CertificateError(
            f"{current.path}: {current.days_left:.1f} days left, below {threshold}; "
            "renew with 'aiwf certs renew' or 'aiwf certs self-signed --force'"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(certs_app, name="certs")
