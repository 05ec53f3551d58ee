"""Reminders before and after a step's due time, sent once; escalation of an overdue step.

Frozen time around Tết Bính Ngọ (holidays Sat 14/2 – Sun 22/2/2026). Runs on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import email
import email.policy
import json
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy.exc
from sqlalchemy import select

from esign.errors import Forbidden, WorkflowError
from esign.models import AuditEvent, Notification, SentReminder, StepRecord, User
from esign.services import reminders
from esign.services.context import Context
from esign.services.demo import EXAMPLE_MEMO

from .conftest import open_memo

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def at(text: str) -> datetime:
    """A local time in Vietnam, "2026-02-12 10:00"."""
    return datetime.fromisoformat(text).replace(tzinfo=VN)


def _user(ctx: Context, role: str) -> User:
    with ctx.db.session() as session:
        return next(u for u in session.scalars(select(User).order_by(User.id)) if role in u.roles)


class FailingMailer(reminders.Mailer):
    def send(self, message: EmailMessage) -> None:
        raise OSError("connection refused")


@pytest.fixture
def memo(ward: Context):  # type: ignore[no-untyped-def]
    """A memo drafted on Thursday 12/2/2026 at 10:00, the last working week before Tết."""
    ward.clock = lambda: at("2026-02-12 10:00")
    document_id, step_id = open_memo(ward, EXAMPLE_MEMO.title)
    with ward.db.session() as session:
        return document_id, session.get(StepRecord, step_id)


def settings(tmp_path: Path) -> reminders.ReminderSettings:
    return reminders.ReminderSettings(smtp=reminders.SmtpSettings(sink_dir=tmp_path / "mail"))


def test_the_draft_step_falls_due_after_tet_in_working_days(memo) -> None:  # type: ignore[no-untyped-def]
    _, step = memo
    # two working days from Thu 10:00: Thu to Fri, then nine days of Tết and a weekend
    assert step.due_at == at("2026-02-23 10:00")


@pytest.mark.parametrize(("assigned", "due"), [
    ("2026-03-06 10:00", "2026-03-10 10:00"),  # Friday: the weekend does not count
    ("2026-02-12 10:00", "2026-02-23 10:00"),  # Thursday before Tết: nine days off
    ("2026-02-14 09:00", "2026-02-24 17:00"),  # assigned during Tết: whole days from Monday 23/2
    ("2025-12-31 15:00", "2026-01-05 15:00"),  # New Year's Day, then a weekend
    ("2026-04-24 16:00", "2026-04-29 16:00"),  # before Giỗ Tổ (Mon 27/4 assumed) and 30/4
])
def test_open_step_counts_working_days_with_frozen_time(ward: Context, assigned: str, due: str) -> None:
    ward.clock = lambda: at(assigned)
    _, step_id = open_memo(ward)
    with ward.db.session() as session:
        assert session.get(StepRecord, step_id).due_at == at(due)


def test_no_reminder_while_more_than_half_a_day_is_left(ward: Context, memo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ward.clock = lambda: at("2026-02-13 10:00")  # 5 h on Friday + 2,5 h on Monday 23/2 left
    run = reminders.send_reminders(ward, settings=settings(tmp_path))
    assert (run.due_soon, run.overdue, run.notifications) == (0, 0, 0)


def test_due_soon_is_sent_once_across_tet(ward: Context, memo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ward.clock = lambda: at("2026-02-13 16:00")  # ten days before the due time, but 3,5 working hours
    first = reminders.send_reminders(ward, settings=settings(tmp_path))
    assert (first.due_soon, first.overdue, first.notifications, first.emails_sent) == (1, 0, 1, 1)
    again = reminders.send_reminders(ward, settings=settings(tmp_path))
    assert (again.due_soon, again.overdue, again.notifications, again.emails_sent) == (0, 0, 0, 0)
    ward.clock = lambda: at("2026-02-23 08:00")  # after Tết, still before the due time
    assert reminders.send_reminders(ward, settings=settings(tmp_path)).notifications == 0
    mails = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(mails) == 1
    message = email.message_from_bytes(mails[0].read_bytes(), policy=email.policy.default)
    assert message["To"] == "an@ubnd.invalid"
    body = message.get_payload(decode=True).decode()
    assert "10:00 23/02/2026" in body and EXAMPLE_MEMO.title in body
    officer = _user(ward, "officer")
    rows = reminders.notifications_of(ward, officer)
    assert [(n.kind, n.data["state"]) for n in rows] == [("due_soon", "draft")]
    assert reminders.unread_count(ward, officer) == 1
    assert reminders.mark_read(ward, officer) == 1
    assert reminders.unread_count(ward, officer) == 0


def test_overdue_goes_to_the_assignee_and_the_chair_once(ward: Context, memo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ward.clock = lambda: at("2026-02-23 10:01")
    first = reminders.send_reminders(ward, settings=settings(tmp_path))
    # the overdue step gets the overdue message only, not a late "due soon"
    assert (first.due_soon, first.overdue, first.notifications, first.emails_sent) == (0, 1, 2, 1)
    for hour in ("11:00", "16:00"):
        ward.clock = lambda hour=hour: at(f"2026-02-23 {hour}")
        run = reminders.send_reminders(ward, settings=settings(tmp_path))
        assert (run.overdue, run.notifications, run.emails_sent) == (0, 0, 0)
    message = email.message_from_bytes(next((tmp_path / "mail").glob("*.eml")).read_bytes(), policy=email.policy.default)
    assert message["To"].replace(" ", "") == "an@ubnd.invalid,trieu@ubnd.invalid"
    assert message["Subject"].startswith("[esign] Quá hạn")
    with ward.db.session() as session:
        assert session.scalar(select(SentReminder.kind)) == "overdue"
        assert {n.user_id for n in session.scalars(select(Notification))} == {
            _user(ward, "officer").id, _user(ward, "chair").id}


def test_a_second_claim_of_the_same_event_inserts_nothing(ward: Context, memo) -> None:  # type: ignore[no-untyped-def]
    _, step = memo
    now = ward.now()
    with ward.db.session() as session:
        assert reminders._claim(session, [step.id], "overdue", now) == [step.id]
    with ward.db.session() as session:
        assert reminders._claim(session, [step.id], "overdue", now) == []
        assert reminders._claim(session, [step.id], "due_soon", now) == [step.id]
    with pytest.raises(sqlalchemy.exc.IntegrityError), ward.db.session() as session:
        session.add(SentReminder(step_id=step.id, kind="overdue", sent_at=now))
        session.flush()


def test_a_failed_email_is_retried_without_a_second_notification(ward: Context, memo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ward.clock = lambda: at("2026-02-24 09:00")
    failing = FailingMailer(settings(tmp_path).smtp)
    first = reminders.send_reminders(ward, settings=settings(tmp_path), mailer=failing)
    assert (first.overdue, first.notifications, first.emails_sent, first.email_failures) == (1, 2, 0, 1)
    second = reminders.send_reminders(ward, settings=settings(tmp_path))
    assert (second.overdue, second.notifications, second.emails_sent, second.email_failures) == (0, 0, 1, 0)
    third = reminders.send_reminders(ward, settings=settings(tmp_path))
    assert (third.emails_sent, third.email_failures) == (0, 0)
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1
    with ward.db.session() as session:
        row = session.scalar(select(SentReminder))
        assert row.email_attempts == 2 and row.emailed_at is not None and row.email_error == ""


def test_the_chair_escalates_an_overdue_step_to_herself(ward: Context, memo) -> None:  # type: ignore[no-untyped-def]
    document_id, step = memo
    chair, officer = _user(ward, "chair"), _user(ward, "officer")
    ward.clock = lambda: at("2026-02-23 11:00")
    new_id = reminders.escalate(ward, chair, step.id, comment="Quá hạn sau Tết")
    with ward.db.session() as session:
        old, new = session.get(StepRecord, step.id), session.get(StepRecord, new_id)
        assert old.status == "reassigned" and old.completed_at == at("2026-02-23 11:00")
        assert (new.status, new.state, new.assignee_id, new.principal_id) == ("open", "draft", chair.id, officer.id)
        assert new.due_at == at("2026-02-25 11:00")  # two working days from the escalation
        event = session.scalar(select(AuditEvent).where(AuditEvent.kind == "step.escalated"))
        data = json.loads(event.data)
        assert (event.actor_id, event.document_id) == (chair.id, document_id)
        assert (data["previous"], data["assignee"], data["step"], data["new_step"]) == (
            "nguyenvana", "nguyenthiquynhtrieu", step.id, new_id)
        assert data["overdue_hours"] == 1.0
        assert session.scalar(select(Notification.kind).where(Notification.user_id == chair.id)) == "escalated"
    with pytest.raises(WorkflowError, match="no longer open"):
        reminders.escalate(ward, chair, step.id)


def test_escalation_is_refused_before_the_due_time_and_to_officers_without_authority(ward: Context, memo) -> None:  # type: ignore[no-untyped-def]
    _, step = memo
    chair, officer = _user(ward, "chair"), _user(ward, "officer")
    ward.clock = lambda: at("2026-02-23 09:00")
    with pytest.raises(WorkflowError, match="not overdue"):
        reminders.escalate(ward, chair, step.id)
    ward.clock = lambda: at("2026-02-23 11:00")
    with pytest.raises(Forbidden):
        reminders.escalate(ward, officer, step.id)
    with pytest.raises(WorkflowError, match="does not hold the role"):
        reminders.escalate(ward, chair, step.id, to="tranthibinh")
    with pytest.raises(WorkflowError, match="already with"):
        reminders.escalate(ward, chair, step.id, to="nguyenvana")


def test_settings_come_from_the_environment() -> None:
    got = reminders.ReminderSettings.from_env({"ESIGN_SMTP_HOST": "127.0.0.1", "ESIGN_SMTP_PORT": "1025",
                                                "ESIGN_SMTP_STARTTLS": "false",
                                                "ESIGN_REMINDERS_BEFORE_WORKING_HOURS": "8"})
    assert (got.smtp.host, got.smtp.port, got.smtp.starttls, got.before_working_hours) == ("127.0.0.1", 1025,
                                                                                            False, 8)
    assert reminders.ReminderSettings.from_env({}).smtp.host == ""
