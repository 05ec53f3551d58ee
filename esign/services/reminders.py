"""Deadlines in motion: reminders before a step is due and when it is overdue, and escalation.

A reminder is an *event* of one step: ``due_soon`` (less than
``before_working_hours`` of working time left) or ``overdue`` (the due time
has passed). Each event is sent once: claiming it inserts a row into
``sent_reminders`` whose unique (step, kind) makes a second claim, by a later
run or by a concurrent worker, insert nothing. The claim, the in-app
notifications and the e-mail's addresses commit together; the e-mail goes out
after the commit (an outbox), and ``emailed_at`` records that the mail server
took it, so a failed delivery is retried by the next run and a delivered one
never is.

Runs: ``esign remind`` (once, or ``--every`` seconds), or scheduled jobs on RQ
(``esign remind --schedule``: an RQ cron scheduler enqueues
:func:`reminder_job` on the ``esign-reminders`` queue; ``rq worker
esign-reminders`` runs it).

E-mail: SMTP when ``ESIGN_SMTP_HOST`` is set, otherwise the development sink
writes each message as an ``.eml`` file under ``var/mail``.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from esign.errors import ConfigError, DefinitionError, Forbidden, NotFound, WorkflowError
from esign.models import (
    Comment,
    Document,
    DocumentVersion,
    Notification,
    SentReminder,
    StepRecord,
    User,
    UserRole,
    WorkflowInstance,
)
from esign.services import audit
from esign.services.context import Context

log = logging.getLogger(__name__)

#: claims per transaction: a first run over a large backlog stays in small transactions
BATCH = 500
#: delivery attempts of one e-mail before it is left for a person to look at
MAX_EMAIL_ATTEMPTS = 5
#: who may escalate an overdue step (the same people who may reassign one)
ESCALATING_ROLES = frozenset({"chair", "admin"})


# --- settings (to move into esign/config.py as [smtp] and [reminders]) -----------------------


def _env_bool(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class SmtpSettings:
    """The mail server; an empty host selects the development sink (``.eml`` files)."""

    host: str = ""
    port: int = 587
    starttls: bool = True
    username: str = ""
    #: name of the environment variable holding the SMTP password
    password_env: str = "ESIGN_SMTP_PASSWORD"
    sender: str = "esign <esign@localhost>"
    #: folder of the development sink, relative to the settings' root
    sink_dir: Path = Path("var/mail")
    timeout: int = 20


@dataclass(frozen=True)
class ReminderSettings:
    #: remind when less than this much working time is left before the due time
    before_working_hours: int = 4
    #: RQ's Redis; empty: no task queue, run ``esign remind`` periodically
    redis_url: str = ""
    queue: str = "esign-reminders"
    interval_seconds: int = 300
    smtp: SmtpSettings = field(default_factory=SmtpSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReminderSettings:
        """Defaults overridden by ``ESIGN_SMTP_*`` and ``ESIGN_REMINDERS_*`` variables."""
        env = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            return env.get(name) or default

        try:
            smtp = SmtpSettings(
                host=get("ESIGN_SMTP_HOST", ""),
                port=int(get("ESIGN_SMTP_PORT", "587")),
                starttls=_env_bool(get("ESIGN_SMTP_STARTTLS", "true")),
                username=get("ESIGN_SMTP_USERNAME", ""),
                password_env=get("ESIGN_SMTP_PASSWORD_ENV", "ESIGN_SMTP_PASSWORD"),
                sender=get("ESIGN_SMTP_SENDER", SmtpSettings.sender),
                sink_dir=Path(get("ESIGN_SMTP_SINK_DIR", "var/mail")),
            )
            return cls(
                before_working_hours=int(get("ESIGN_REMINDERS_BEFORE_WORKING_HOURS", "4")),
                redis_url=get("ESIGN_REMINDERS_REDIS_URL", ""),
                queue=get("ESIGN_REMINDERS_QUEUE", "esign-reminders"),
                interval_seconds=int(get("ESIGN_REMINDERS_INTERVAL_SECONDS", "300")),
                smtp=smtp,
            )
        except ValueError as e:
            raise ConfigError("A reminder or SMTP setting in the environment is not a number: %(reason)s",
                              reason=str(e)) from e


# --- e-mail ------------------------------------------------------------------------------------


class Mailer:
    """Sends one message: by SMTP, or into the development sink folder."""

    def __init__(self, smtp: SmtpSettings, root: Path = Path(".")) -> None:
        self.smtp = smtp
        self.sink = smtp.sink_dir if smtp.sink_dir.is_absolute() else root / smtp.sink_dir

    @property
    def is_sink(self) -> bool:
        return not self.smtp.host

    def send(self, message: EmailMessage) -> None:
        if "From" not in message:
            message["From"] = self.smtp.sender
        if self.is_sink:
            self.sink.mkdir(parents=True, exist_ok=True)
            name = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
            tmp = self.sink / (name + ".tmp")
            tmp.write_bytes(message.as_bytes())
            tmp.replace(self.sink / name)
            return
        password = os.environ.get(self.smtp.password_env, "")
        with smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=self.smtp.timeout) as client:
            if self.smtp.starttls:
                client.starttls(context=ssl.create_default_context())
            if self.smtp.username:
                client.login(self.smtp.username, password)
            client.send_message(message)


# --- the reminder run --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReminderRun:
    """What one run did."""

    due_soon: int = 0
    overdue: int = 0
    notifications: int = 0
    emails_sent: int = 0
    email_failures: int = 0

    def __str__(self) -> str:
        return (f"{self.due_soon} due soon, {self.overdue} overdue, {self.notifications} notifications, "
                f"{self.emails_sent} e-mails sent, {self.email_failures} e-mail failures")


def _open_steps_to_remind(session: Session, kind: str, low: datetime | None, high: datetime,
                          limit: int) -> list[int]:
    """Open steps whose due time is in (low, high] and that have no ``kind`` reminder yet."""
    already = exists(select(SentReminder.id).where(SentReminder.step_id == StepRecord.id,
                                                   SentReminder.kind == kind))
    query = select(StepRecord.id).where(StepRecord.status == "open", StepRecord.due_at <= high, ~already)
    if low is not None:
        query = query.where(StepRecord.due_at > low)
    return list(session.scalars(query.order_by(StepRecord.due_at, StepRecord.id).limit(limit)))


def _claim(session: Session, step_ids: list[int], kind: str, now: datetime) -> list[int]:
    """Insert the (step, kind) rows; returns the steps this call claimed (a race loses silently)."""
    if not step_ids:
        return []
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    rows = [{"step_id": s, "kind": kind, "sent_at": now, "email_to": "", "email_attempts": 0,
             "email_error": ""} for s in step_ids]
    statement = (insert(SentReminder).values(rows).on_conflict_do_nothing(index_elements=["step_id", "kind"])
                 .returning(SentReminder.step_id))
    return list(session.scalars(statement))


def _chairs_by_unit(session: Session, unit_ids: Iterable[int]) -> dict[int, list[User]]:
    chairs: dict[int, list[User]] = {}
    for user in session.scalars(select(User).join(UserRole, UserRole.user_id == User.id).where(
            User.unit_id.in_(set(unit_ids)), User.active, UserRole.role == "chair").order_by(User.id)):
        chairs.setdefault(user.unit_id, []).append(user)
    return chairs


def _notify(session: Session, ctx: Context, steps: list[int], kind: str, now: datetime) -> int:
    """Notifications for claimed steps, and the e-mail addresses on their sent_reminders rows."""
    rows = session.execute(
        select(StepRecord, Document, WorkflowInstance)
        .join(WorkflowInstance, WorkflowInstance.id == StepRecord.instance_id)
        .join(Document, Document.id == WorkflowInstance.document_id)
        .where(StepRecord.id.in_(steps))
    ).all()
    users = {u.id: u for u in session.scalars(select(User).where(
        User.id.in_({r[0].assignee_id for r in rows})))}
    chairs = _chairs_by_unit(session, {r[1].unit_id for r in rows}) if kind == "overdue" else {}
    count = 0
    for step, document, instance in rows:
        assignee = users[step.assignee_id]
        people = [assignee] + [c for c in chairs.get(document.unit_id, []) if c.id != assignee.id]
        data = _message_data(ctx, step, document, instance, assignee)
        for person in people:
            session.add(Notification(user_id=person.id, kind=kind, document_id=document.id, step_id=step.id,
                                     data=json.dumps(data, ensure_ascii=False), created_at=now))
            count += 1
        addresses = ",".join(dict.fromkeys(p.email for p in people if p.active and p.email))
        session.execute(update(SentReminder).where(SentReminder.step_id == step.id, SentReminder.kind == kind)
                        .values(email_to=addresses))
    return count


def _message_data(ctx: Context, step: StepRecord, document: Document, instance: WorkflowInstance,
                  assignee: User) -> dict[str, object]:
    try:
        state_name = dict(ctx.workflows.get(instance.definition_id, instance.definition_version)
                          .states[step.state].name)
    except (DefinitionError, KeyError):  # a definition no longer loaded: the state id says enough
        state_name = {"vi": step.state, "en": step.state}
    return {"title": document.title, "state": step.state, "state_name": state_name,
            "due_at": step.due_at.isoformat() if step.due_at else None, "assignee": assignee.full_name}


def send_reminders(ctx: Context, *, settings: ReminderSettings | None = None, mailer: Mailer | None = None,
                   ) -> ReminderRun:
    """Claim and send every reminder that is due now; safe to run at any time, any number of times."""
    settings = settings or ReminderSettings.from_env()
    mailer = mailer or Mailer(settings.smtp, ctx.settings.root)
    now = ctx.now()
    soon = ctx.calendar.add_working_hours(now, settings.before_working_hours)
    counts = {"due_soon": 0, "overdue": 0}
    notifications = 0
    # overdue first: a step that went past its due time unnoticed gets the overdue message only
    for kind, low, high in (("overdue", None, now), ("due_soon", now, soon)):
        while True:
            with ctx.db.session() as session:
                candidates = _open_steps_to_remind(session, kind, low, high, BATCH)
                claimed = _claim(session, candidates, kind, now)
                notifications += _notify(session, ctx, claimed, kind, now) if claimed else 0
            counts[kind] += len(claimed)
            if len(candidates) < BATCH:
                break
    sent, failed = deliver_emails(ctx, mailer)
    return ReminderRun(counts["due_soon"], counts["overdue"], notifications, sent, failed)


def deliver_emails(ctx: Context, mailer: Mailer) -> tuple[int, int]:
    """Send the e-mails of claimed reminders not yet taken by the mail server."""
    sent = failed = 0
    with ctx.db.session() as session:
        pending = session.execute(
            select(SentReminder, StepRecord, Document, WorkflowInstance)
            .join(StepRecord, StepRecord.id == SentReminder.step_id)
            .join(WorkflowInstance, WorkflowInstance.id == StepRecord.instance_id)
            .join(Document, Document.id == WorkflowInstance.document_id)
            .where(SentReminder.emailed_at.is_(None), SentReminder.email_to != "",
                   SentReminder.email_attempts < MAX_EMAIL_ATTEMPTS)
            .order_by(SentReminder.id)
        ).all()
        messages = [(r.id, _email(ctx, r, step, document, instance))
                    for r, step, document, instance in pending]
    for reminder_id, message in messages:
        error = ""
        try:
            mailer.send(message)
        except (OSError, smtplib.SMTPException) as e:
            error = f"{type(e).__name__}: {e}"
            log.warning("reminder %s: e-mail not sent: %s", reminder_id, error)
        with ctx.db.session() as session:
            values: dict[str, object] = {"email_attempts": SentReminder.email_attempts + 1, "email_error": error}
            if not error:
                values["emailed_at"] = ctx.now()
            session.execute(update(SentReminder).where(SentReminder.id == reminder_id).values(**values))
        if error:
            failed += 1
        else:
            sent += 1
    return sent, failed


SUBJECTS = {
    "due_soon": "[esign] Sắp đến hạn xử lý: {title}",
    "overdue": "[esign] Quá hạn xử lý: {title}",
}
BODIES = {
    "due_soon": "Văn bản «{title}» đang chờ {assignee} xử lý ở bước {state}, hạn {due}.\n",
    "overdue": "Văn bản «{title}» đã quá hạn xử lý ở bước {state} (người xử lý: {assignee}, hạn {due}).\n",
}


def _email(ctx: Context, reminder: SentReminder, step: StepRecord, document: Document,
           instance: WorkflowInstance) -> EmailMessage:
    assignee = step.assignee
    data = _message_data(ctx, step, document, instance, assignee)
    local = ZoneInfo(ctx.settings.app.timezone)
    due = step.due_at.astimezone(local).strftime("%H:%M %d/%m/%Y") if step.due_at else ""
    fields = {"title": document.title, "assignee": assignee.full_name,
              "state": data["state_name"].get("vi", step.state),  # type: ignore[union-attr]
              "due": due}
    message = EmailMessage()
    message["To"] = reminder.email_to
    message["Subject"] = SUBJECTS[reminder.kind].format(**fields)
    message["Date"] = format_datetime(reminder.sent_at.astimezone(local))
    message["Message-ID"] = make_msgid(idstring=f"reminder-{reminder.id}", domain="esign.invalid")
    link = f"{ctx.settings.app.base_url.rstrip('/')}/documents/{document.id}"
    message.set_content(BODIES[reminder.kind].format(**fields) + f"\n{link}\n\n-- \nesign — Ký số văn bản\n")
    return message


# --- the task queue ----------------------------------------------------------------------------


def reminder_job(config_path: str | None = None) -> str:
    """The RQ job: one reminder run against the database of ``config_path`` (or $ESIGN_CONFIG)."""
    from esign.config import load_settings

    ctx = Context.create(load_settings(config_path), backends={})
    try:
        return str(send_reminders(ctx))
    finally:
        ctx.close()


def reminder_scheduler(settings: ReminderSettings, config_path: str | None = None):  # type: ignore[no-untyped-def]
    """An RQ cron scheduler that enqueues :func:`reminder_job` every ``interval_seconds``."""
    from redis import Redis
    from redis.exceptions import RedisError
    from rq.cron import CronScheduler

    try:
        connection = Redis.from_url(settings.redis_url)
        connection.ping()
    except (RedisError, ValueError) as e:
        raise ConfigError("Cannot reach the job queue at %(url)s", url=settings.redis_url) from e
    scheduler = CronScheduler(connection=connection, name=f"esign-reminders-{uuid.uuid4().hex[:6]}")
    scheduler.register(reminder_job, settings.queue, kwargs={"config_path": config_path},
                       interval=settings.interval_seconds, name="esign-reminders")
    return scheduler


# --- escalation --------------------------------------------------------------------------------


def escalate(ctx: Context, actor: User, step_id: int, *, to: str | None = None, comment: str = "") -> int:
    """Hand an overdue step to the unit's chair (or to ``to``); returns the new step's id.

    The old step becomes ``reassigned``, a new one opens through
    :func:`esign.services.routing.open_step` (with a new due time), the audit
    trail records ``step.escalated`` and the new assignee is notified. A chair
    who does not hold the step's role takes it over on behalf of the person it
    was assigned to.
    """
    from esign.services.documents import lock_document
    from esign.services.routing import definition_of, open_step, unit_members

    with ctx.db.session() as session:
        found = session.execute(select(StepRecord.id, WorkflowInstance.document_id).join(
            WorkflowInstance, WorkflowInstance.id == StepRecord.instance_id).where(StepRecord.id == step_id)).first()
        if found is None:
            raise NotFound("There is no such step")
        document = lock_document(session, found.document_id)
        actor = session.get(User, actor.id)
        if actor is None or document.unit_id != actor.unit_id:
            raise NotFound("There is no such step")
        if not actor.roles & ESCALATING_ROLES:
            raise Forbidden("Only the chair or an administrator may escalate an overdue step")
        step = session.get(StepRecord, step_id, populate_existing=True)
        instance = document.workflow
        now = ctx.now()
        if step is None or step.status != "open" or step.state != instance.state:
            raise WorkflowError("This step is no longer open")
        if step.due_at is None or step.due_at > now:
            raise WorkflowError("This step is not overdue; reassign it from the document page instead")
        definition = definition_of(ctx, instance)
        role = definition.states[step.state].role
        if to:
            target = session.scalar(select(User).where(User.username == to, User.unit_id == document.unit_id))
            if target is None or not target.active:
                raise WorkflowError("%(name)s is not an active member of this unit", name=to)
        else:
            chairs = unit_members(session, document.unit_id, "chair")
            if not chairs:
                raise WorkflowError("This unit has no chair to escalate to")
            target = chairs[0]
        if target.id == step.assignee_id:
            raise WorkflowError("The step is already with %(name)s", name=target.full_name)
        principal = None
        if role and role not in target.roles:
            if "chair" not in target.roles:
                raise WorkflowError(
                    "%(name)s does not hold the role %(role)s; choose the chair or someone who holds it",
                    name=target.full_name, role=role)
            # the chair acts for the step in the place of the officer it was assigned to
            principal = session.get(User, step.principal_id or step.assignee_id)
        previous = session.get(User, step.assignee_id)
        version = session.get(DocumentVersion, step.version_id)
        assert previous is not None and version is not None
        step.status, step.completed_at, step.action = "reassigned", now, "reassign"
        new = open_step(session, ctx, instance, version, definition, step.state, target, principal=principal)
        document.updated_at = now
        if comment.strip():
            session.add(Comment(document_id=document.id, version_id=version.id, author_id=actor.id,
                                action="escalate", body=comment.strip(), created_at=now))
        audit.record(session, "step.escalated", actor=actor, document=document, state=step.state,
                     step=step.id, new_step=new.id, previous=previous.username, assignee=target.username,
                     due_at=step.due_at.isoformat(), new_due_at=new.due_at.isoformat() if new.due_at else None,
                     overdue_hours=round((now - step.due_at).total_seconds() / 3600, 1), comment=comment.strip())
        data = _message_data(ctx, new, document, instance, target)
        data["previous"] = previous.full_name
        session.add(Notification(user_id=target.id, kind="escalated", document_id=document.id, step_id=new.id,
                                 data=json.dumps(data, ensure_ascii=False), created_at=now))
        return new.id


# --- notifications (read side) -----------------------------------------------------------------


@dataclass(frozen=True)
class NotificationRow:
    id: int
    kind: str
    document_id: int | None
    data: dict[str, object]
    created_at: datetime
    read: bool


def notifications_of(ctx: Context, actor: User, *, limit: int = 100) -> list[NotificationRow]:
    with ctx.db.session() as session:
        rows = session.scalars(select(Notification).where(Notification.user_id == actor.id)
                               .order_by(Notification.id.desc()).limit(limit))
        return [NotificationRow(n.id, n.kind, n.document_id, json.loads(n.data or "{}"), n.created_at,
                                n.read_at is not None) for n in rows]


def unread_count(ctx: Context, actor: User) -> int:
    from sqlalchemy import func

    with ctx.db.session() as session:
        return session.scalar(select(func.count(Notification.id)).where(
            Notification.user_id == actor.id, Notification.read_at.is_(None))) or 0


def mark_read(ctx: Context, actor: User) -> int:
    """Mark every notification of ``actor`` read; returns how many were unread."""
    with ctx.db.session() as session:
        result = session.execute(update(Notification).where(
            Notification.user_id == actor.id, Notification.read_at.is_(None)).values(read_at=ctx.now()))
        return result.rowcount or 0


__all__ = [
    "Mailer",
    "ReminderRun",
    "ReminderSettings",
    "SmtpSettings",
    "deliver_emails",
    "escalate",
    "mark_read",
    "notifications_of",
    "reminder_job",
    "reminder_scheduler",
    "send_reminders",
    "unread_count",
]
