"""The ``esign`` command: set-up, administration, export and the server."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from esign.errors import EsignError


class _State:
    def __init__(self, config: str | None) -> None:
        self.config = config
        self._settings = None
        self._ctx = None

    @property
    def settings(self):  # type: ignore[no-untyped-def]
        if self._settings is None:
            from esign.config import load_settings

            self._settings = load_settings(self.config)
        return self._settings

    @property
    def ctx(self):  # type: ignore[no-untyped-def]
        if self._ctx is None:
            from esign.services.context import Context

            self._ctx = Context.create(self.settings)
        return self._ctx


    def audit_database(self, out_dir: Path, *, jobs: int | None = None, progress=None):  # type: ignore[no-untyped-def]
        from esign.services.verification import audit_database

        return audit_database(self.ctx, out_dir, jobs=jobs, progress=progress)


pass_state = click.make_pass_decorator(_State)


class _Group(click.Group):
    """Turns esign's errors into one readable line and exit status 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except EsignError as e:
            click.echo(f"esign: {e}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.option("--config", envvar="ESIGN_CONFIG", default=None, help="Path of config.toml.")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens.")
@click.pass_context
def main(click_ctx: click.Context, config: str | None, verbose: bool) -> None:
    """esign: signing workflow for ward and commune People's Committees."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    click_ctx.obj = _State(config)


# --- database ------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@pass_state
def db_upgrade(state: _State) -> None:
    """Create or migrate the schema to the newest version (safe to repeat)."""
    from esign.services.migrate import upgrade

    upgrade(state.settings)
    click.echo("database is up to date")


# --- users and certificates ----------------------------------------------------------------


@main.group("units")
def units_group() -> None:
    """Wards and communes."""


@units_group.command("create")
@click.argument("code")
@click.argument("name")
@click.option("--parent", default="", help='Parent agency, e.g. "ỦY BAN NHÂN DÂN QUẬN 1".')
@click.option("--place", default="", help="Place in the date line.")
@pass_state
def units_create(state: _State, code: str, name: str, parent: str, place: str) -> None:
    """Create a unit (idempotent)."""
    from esign.services import users

    with state.ctx.db.session() as session:
        unit = users.create_unit(session, code, name, parent_name=parent, place=place)
        click.echo(f"unit {unit.code}: {unit.name}")


@main.group("users")
def users_group() -> None:
    """Users and their roles."""


@users_group.command("create")
@click.argument("username")
@click.option("--name", "full_name", required=True, help="Full name, as printed under the signature.")
@click.option("--unit", "unit_code", required=True, help="Unit code.")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["officer", "adviser", "chair", "clerk", "auditor", "admin"]))
@click.option("--title", default="", help="Job title printed in the signature block.")
@click.option("--email", default="")
@click.password_option(envvar="ESIGN_NEW_PASSWORD", help="Password (asked when not given).")
@pass_state
def users_create(state: _State, username: str, full_name: str, unit_code: str, roles: tuple[str, ...],
                 title: str, email: str, password: str) -> None:
    """Create a user."""
    from sqlalchemy import select

    from esign.errors import NotFound
    from esign.models import Unit
    from esign.services import users

    with state.ctx.db.session() as session:
        unit = session.scalar(select(Unit).where(Unit.code == unit_code))
        if unit is None:
            raise NotFound("There is no unit %(code)s", code=unit_code)
        user = users.create_user(session, None, unit=unit, username=username, full_name=full_name,
                                 password=password, roles=list(roles), title=title, email=email)
        click.echo(f"user {user.username} ({', '.join(sorted(user.roles))})")


@users_group.command("roles")
@click.argument("username")
@click.argument("roles", nargs=-1, required=True,
                type=click.Choice(["officer", "adviser", "chair", "clerk", "auditor", "admin"]))
@pass_state
def users_roles(state: _State, username: str, roles: tuple[str, ...]) -> None:
    """Replace a user's roles."""
    from esign.services import users

    with state.ctx.db.session() as session:
        users.set_roles(session, None, users.get_user(session, username), list(roles))
    click.echo(f"{username}: {', '.join(roles)}")


@users_group.command("list")
@pass_state
def users_list(state: _State) -> None:
    """List users with their unit, roles and certificates."""
    from sqlalchemy import select

    from esign.models import User

    with state.ctx.db.session() as session:
        for user in session.scalars(select(User).order_by(User.unit_id, User.username)):
            certs = ", ".join(f"{c.device}:{c.backend}/{c.credential}" for c in user.certificates if c.active)
            click.echo(f"{user.username:20} {user.unit.code:10} {','.join(sorted(user.roles)):22} "
                       f"{user.full_name} [{certs}]")


@main.group("certs")
def certs_group() -> None:
    """Certificates bound to officers and units."""


@certs_group.command("bind")
@click.argument("owner")
@click.option("--device", type=click.Choice(["token", "mobile", "seal"]), required=True)
@click.option("--backend", required=True, help="softkey, pkcs11, agent or csc.")
@click.option("--credential", required=True, help="The backend's name for the key.")
@click.option("--pem", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Certificate (and chain) for a device the server cannot read.")
@pass_state
def certs_bind(state: _State, owner: str, device: str, backend: str, credential: str, pem: Path | None) -> None:
    """Bind a certificate to a user (OWNER = username) or, for the seal, to a unit (OWNER = unit code)."""
    from sqlalchemy import select

    from esign.errors import NotFound
    from esign.models import Unit
    from esign.services import users
    from esign.signing.backend import CertificateBundle

    bundle = None
    if pem is not None:
        certs = users.parse_certificates(pem.read_bytes())
        bundle = CertificateBundle(cert=certs[0], chain=tuple(certs[1:]))
    with state.ctx.db.session() as session:
        if device == "seal":
            target = session.scalar(select(Unit).where(Unit.code == owner))
            if target is None:
                raise NotFound("There is no unit %(code)s", code=owner)
        else:
            target = users.get_user(session, owner)
        row = users.bind_certificate(session, state.ctx, None, owner=target, device=device, backend=backend,
                                     credential=credential, bundle=bundle)
        click.echo(f"bound {row.subject} ({row.fingerprint[:16]}…) as {device}")


@certs_group.command("available")
@pass_state
def certs_available(state: _State) -> None:
    """Credentials the server's own backends hold."""
    from esign.services import users

    for choice in users.available_credentials(state.ctx):
        click.echo(f"{choice.backend}/{choice.credential}: {choice.subject}")


@main.group("delegations")
def delegations_group() -> None:
    """Standing delegations (KT., TL., TUQ., Q., TM.)."""


@delegations_group.command("add")
@click.argument("principal")
@click.argument("delegate")
@click.option("--role", required=True, type=click.Choice(["adviser", "chair", "clerk"]))
@click.option("--form", "authority", required=True, help="KT., TL., TUQ., Q. or TM.")
@click.option("--days", type=int, default=7, show_default=True, help="How long it lasts from now.")
@pass_state
def delegations_add(state: _State, principal: str, delegate: str, role: str, authority: str, days: int) -> None:
    """PRINCIPAL hands ROLE to DELEGATE, who signs with the authority form."""
    from datetime import timedelta

    from esign.services import delegations, users

    now = state.ctx.now()
    with state.ctx.db.session() as session:
        row = delegations.create_delegation(
            session, None, principal=users.get_user(session, principal), delegate=users.get_user(session, delegate),
            role=role, authority=authority, valid_from=now, valid_until=now + timedelta(days=days))
        click.echo(f"{delegate} acts as {role} for {principal} ({row.authority}) until {row.valid_until:%d/%m/%Y}")


# --- documents -----------------------------------------------------------------------------


@main.command("documents")
@pass_state
def documents_list(state: _State) -> None:
    """List documents with their ids and states."""
    from esign.services import documents

    rows = documents.all_documents(state.ctx)
    if not rows:
        click.echo("no documents")
    for row in rows:
        click.echo(f"{row.id:6}  {row.state:10} {row.number or '-':16} {row.title}")


@main.command("export")
@click.argument("document_id", type=int)
@click.argument("file", type=click.Path(dir_okay=False, writable=True, path_type=Path))
@pass_state
def export(state: _State, document_id: int, file: Path) -> None:
    """Write a document's current PDF to FILE."""
    from esign.services import documents

    data = documents.export_pdf(state.ctx, document_id)
    file.write_bytes(data)
    click.echo(f"wrote {file} ({len(data):,} bytes)")


# --- integrity ------------------------------------------------------------------------------


@main.command("fsck")
@click.option("--no-signatures", is_flag=True, help="Skip verifying every document (faster).")
@pass_state
def fsck(state: _State, no_signatures: bool) -> None:
    """Check every stored revision, its hash, the prefix chain, signatures and the audit chain."""
    from esign.services.integrity import check_store

    report = check_store(state.ctx, verify_signatures=not no_signatures,
                         progress=lambda step: click.echo(f"checking {step}…", err=True))
    click.echo(f"{report.blobs} blobs, {report.revisions} revisions, {report.documents} documents verified, "
               f"{report.audit_events} audit events in {report.seconds:.1f} s")
    if report.unreferenced_blobs:
        click.echo(f"{report.unreferenced_blobs} unreferenced blob file(s) (left by interrupted writes; harmless)")
    for problem in report.problems:
        click.echo(f"PROBLEM: {problem}")
    if not report.ok:
        sys.exit(1)
    click.echo("no problems found")


@main.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_state
def backup_command(state: _State, file: Path) -> None:
    """Write the database and its blobs into FILE (tar.gz)."""
    from esign.services.integrity import backup

    counts = backup(state.ctx, file)
    click.echo(f"wrote {file}: " + ", ".join(f"{n} {name}" for name, n in counts.items() if n))


@main.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_state
def restore_command(state: _State, file: Path) -> None:
    """Load a backup into an empty, migrated database."""
    from esign.services.integrity import restore

    counts = restore(state.ctx, file)
    click.echo("restored " + ", ".join(f"{n} {name}" for name, n in counts.items() if n))


# --- demo and server -----------------------------------------------------------------------


@main.command("demo")
@click.option("--people", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Demo people (default: keys/people.toml).")
@pass_state
def demo(state: _State, people: Path | None) -> None:
    """Seed the demo ward once, with one memo taken through the whole chain."""
    from esign.services.demo import DEMO_PASSWORD, load_people, seed_demo

    people = people or state.settings.root / "keys" / "people.toml"
    created, example = seed_demo(state.ctx, people)
    click.echo("demo ward created" if created else "demo ward already present")
    click.echo(f"log in at {state.settings.app.base_url} with password {DEMO_PASSWORD!r} as:")
    for person in load_people(people):
        click.echo(f"  {person.username:20} {', '.join(person.roles):10} {person.full_name}")
    if example:
        click.echo(f"finished example memo: {state.settings.app.base_url}/documents/{example}")


@main.command("ltv-refresh")
@click.option("--days", type=int, default=90, show_default=True,
              help="Renew documents whose last timestamp certificate expires within this many days.")
@click.option("--dry-run", is_flag=True, help="Only list the documents that are due.")
@pass_state
def ltv_refresh(state: _State, days: int, dry_run: bool) -> None:
    """Add a new document timestamp to archived documents before their last one expires."""
    from esign.services.archive import refresh_ltv

    results = refresh_ltv(state.ctx, before_days=days, dry_run=dry_run)
    for r in results:
        extra = f" revision {r.revision_index}" if r.revision_index is not None else ""
        click.echo(f"document {r.document_id}: {r.outcome}{extra} (timestamp certificate expires "
                   f"{r.expires_at:%Y-%m-%d}){': ' + r.message if r.message else ''}")
    click.echo(f"{len(results)} document(s) {'due' if dry_run else 'processed'}")
    if any(r.outcome == "failed" for r in results):
        sys.exit(1)


@main.command("pki-services")
@click.option("--port", type=int, default=None, help="Default: [pki] services_port.")
@pass_state
def pki_services(state: _State, port: int | None) -> None:
    """Serve the development PKI's OCSP responders, CRLs and TSA on 127.0.0.1 (development only)."""
    from esign.signing.devservices import serve_forever, tsa_url

    if state.settings.is_production:
        raise click.UsageError("the development PKI services are not for production")
    port = port or state.settings.pki.services_port
    config = state.settings.pki.dev_dir / "certomancer.yml"
    click.echo(f"development PKI services on http://127.0.0.1:{port}/ (TSA: {tsa_url(port)})")
    serve_forever(config, port)


@main.command("serve")
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
@pass_state
def serve(state: _State, host: str | None, port: int | None) -> None:
    """Serve the app ([server] workers processes of [server] threads threads)."""
    from esign.server import serve as serve_app

    server = state.settings.server
    serve_app(state.settings, host or server.host, port or server.port,
              on_start=lambda url: click.echo(f"esign on {url} ({server.workers} × {server.threads} threads)"))


def _register_verification() -> None:
    from esign.verify.commands import audit_command, verify_command

    main.add_command(verify_command, "verify")
    main.add_command(audit_command, "audit")


_register_verification()


# --- reminders and reports -----------------------------------------------------------------


@main.command("remind")
@click.option("--every", type=int, default=None, metavar="SECONDS",
              help="Keep running, one reminder run every SECONDS (when no task queue is configured).")
@click.option("--schedule", is_flag=True,
              help="Run an RQ cron scheduler that enqueues a reminder job every interval "
                   "(ESIGN_REMINDERS_INTERVAL_SECONDS); `rq worker esign-reminders` runs the jobs.")
@click.option("--redis", "redis_url", default=None, help="The task queue's Redis (default: ESIGN_REMINDERS_REDIS_URL).")
@pass_state
def remind(state: _State, every: int | None, schedule: bool, redis_url: str | None) -> None:
    """Send the reminders that are due: before a step's due time and when it is overdue, each once."""
    import dataclasses
    import time

    from esign.services.reminders import ReminderSettings, reminder_scheduler, send_reminders

    settings = ReminderSettings.from_env()
    if redis_url:
        settings = dataclasses.replace(settings, redis_url=redis_url)
    if schedule:
        if not settings.redis_url:
            raise click.UsageError("--schedule needs a task queue: --redis or ESIGN_REMINDERS_REDIS_URL")
        config = str(Path(state.config).resolve()) if state.config else None
        scheduler = reminder_scheduler(settings, config)
        click.echo(f"enqueueing reminder jobs on {settings.queue!r} every {settings.interval_seconds} s")
        scheduler.start()
        return
    while True:
        click.echo(f"reminders: {send_reminders(state.ctx, settings=settings)}")
        if not every:
            return
        time.sleep(every)


@main.command("report")
@click.option("--unit", "unit_code", required=True, help="Unit code.")
@click.option("--from", "first", required=True, help="First day, dd/mm/yyyy.")
@click.option("--to", "last", required=True, help="Last day, dd/mm/yyyy.")
@click.option("--format", "fmt", type=click.Choice(["text", "csv", "pdf"]), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (csv and pdf; default: standard output for csv).")
@pass_state
def report_command(state: _State, unit_code: str, first: str, last: str, fmt: str, output: Path | None) -> None:
    """A unit's report for a period: handled, on time, late, open, overdue; as text, CSV or PDF."""
    from sqlalchemy import select

    from esign.models import Unit
    from esign.services import reports

    with state.ctx.db.session() as session:
        unit_id = session.scalar(select(Unit.id).where(Unit.code == unit_code))
    if unit_id is None:
        raise click.UsageError(f"no unit has the code {unit_code!r}")
    report = reports.build_report(state.ctx, unit_id, reports.parse_date(first), reports.parse_date(last))
    if fmt == "pdf":
        if output is None:
            raise click.UsageError("--format pdf needs --output")
        output.write_bytes(reports.report_pdf(report))
        click.echo(f"wrote {output}")
    elif fmt == "csv":
        text = reports.report_csv(report)
        if output is None:
            click.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")
            click.echo(f"wrote {output}")
    else:
        n = reports.vn_number
        click.echo(f"{report.unit_name}: {report.period.label()}")
        click.echo(f"  received {n(report.received)}, handled {n(report.handled)}, on time {n(report.on_time)}/"
                   f"{n(report.handled)} ({report.on_time_rate}), late {n(report.late)}")
        click.echo(f"  open {n(report.open)}, overdue {n(report.overdue)} "
                   f"(at {reports.vn_date(report.as_of, report.period.tz)})")
        for s in report.steps:
            click.echo(f"  {s.name.get('vi', s.state):12} {n(s.count):>8} steps, average "
                       f"{reports.vn_hours(s.avg_hours)}, waiting now {n(s.waiting)}")


# --- Web Push ----------------------------------------------------------------------------------


@main.command("push-keys")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the VAPID private key (default: [notifications] vapid_private_key_file).")
@pass_state
def push_keys(state: _State, out: Path | None) -> None:
    """Make the server's VAPID key for Web Push (once; an existing key is kept) and print its public key."""
    from esign.services.push import load_vapid_key, make_vapid_key, public_key_of, vapid_key_path

    settings = state.settings
    path = out or vapid_key_path(settings)
    made = make_vapid_key(path)
    if out is not None:
        settings = settings.replace(notifications={"vapid_private_key_file": str(path.resolve())})
    key = load_vapid_key(settings)
    click.echo(f"{'made' if made else 'kept'} {path}")
    click.echo(f"public key (applicationServerKey): {public_key_of(key)}")
