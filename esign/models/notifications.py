"""Notifications shown in the app, and the reminders already sent for a step."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from esign.models.base import Base, utcnow
from esign.models.tables import StepRecord, WorkflowInstance

#: the events a step reminds of: soon due, overdue, handed over after it was overdue
REMINDER_KINDS = ("due_soon", "overdue", "escalated")


class Notification(Base):
    """One message to one person in the app (the bell), about a step of a document."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_read", "user_id", "read_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: due_soon | overdue | escalated
    kind: Mapped[str] = mapped_column(String(16))
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    step_id: Mapped[int | None] = mapped_column(ForeignKey("step_records.id"))
    #: what the message needs to be written in the reader's language, as JSON
    data: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


class SentReminder(Base):
    """A reminder event that has been sent: the unique (step, kind) makes sending it twice fail.

    The e-mail goes out after the row is committed (an outbox): ``emailed_at``
    stays empty until the mail server took it, so a later run can retry it.
    """

    __tablename__ = "sent_reminders"
    __table_args__ = (UniqueConstraint("step_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("step_records.id"))
    kind: Mapped[str] = mapped_column(String(16))
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: comma-separated addresses the e-mail goes to ("" when no one has an address)
    email_to: Mapped[str] = mapped_column(Text, default="")
    emailed_at: Mapped[datetime | None]
    email_attempts: Mapped[int] = mapped_column(Integer, default=0)
    email_error: Mapped[str] = mapped_column(Text, default="")


# Indexes the reminder scan and the unit report read by (kept here, next to the
# code that needs them, so esign/models/tables.py stays as the foundation wrote it).
Index("ix_step_records_status_due", StepRecord.status, StepRecord.due_at)
Index("ix_step_records_completed_at", StepRecord.completed_at)
Index("ix_workflow_instances_ended_at", WorkflowInstance.ended_at)
