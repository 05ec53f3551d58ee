"""What changed in an officer's work since a page last looked: the live updates of open pages.

A page polls :func:`live_status` with the cursor it was given; the answer
holds the counts for the navigation badges and the new items (steps newly
assigned to the officer, reminder notifications) after the cursor. Only the
officer's own steps and notifications are read, through the indexes
``ix_step_records_open``, ``ix_step_records_assignee`` and
``ix_notifications_user_read``; an unchanged state costs one query of index
look-ups and is answered as "not modified".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import func, select

from esign.models import Document, DocumentVersion, Notification, StepRecord, User, WorkflowInstance
from esign.services.context import Context
from esign.services.meeting import approvals_waiting
from esign.services.push import work_kind

#: new items returned by one answer at most (the page shows the first and the count)
MAX_NEW = 20


@dataclass(frozen=True)
class LiveItem:
    #: assigned | returned | due_soon | overdue | escalated
    kind: str
    document_id: int
    title: str


@dataclass(frozen=True)
class LiveStatus:
    #: "<last step id>.<last notification id>" of the officer: the next request's ``since``
    cursor: str
    #: open steps assigned to the officer (the inbox's "needs my action")
    inbox: int
    #: unread notifications (the bell)
    unread: int
    #: approvals waiting for the officer (the meeting link; not part of the cursor)
    approvals: int = 0
    new: list[LiveItem] = field(default_factory=list)

    @property
    def etag(self) -> str:
        """The answer's entity tag (unquoted): the same until something of the officer's work changes."""
        return f"{self.cursor}.{self.inbox}.{self.unread}"


def parse_cursor(text: str | None) -> tuple[int, int] | None:
    """(step id, notification id) of a cursor, or None for a missing or malformed one."""
    if not text:
        return None
    parts = text.split(".")
    if len(parts) != 2 or not all(p.isdigit() and len(p) < 19 for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def live_status(ctx: Context, actor: User, since: str | None = None) -> LiveStatus:
    """The officer's counts and cursor, and what arrived after ``since`` (nothing when it is absent)."""
    mine = StepRecord.assignee_id == actor.id
    open_ = (mine, StepRecord.status == "open", StepRecord.unit_id == actor.unit_id)
    inbox = select(func.count()).select_from(StepRecord).where(*open_).scalar_subquery()
    approvals = approvals_waiting(ctx, actor).scalar_subquery()
    last_step = select(func.max(StepRecord.id)).where(mine).scalar_subquery()
    unread = select(func.count(Notification.id)).where(
        Notification.user_id == actor.id, Notification.read_at.is_(None)).scalar_subquery()
    last_notification = select(func.max(Notification.id)).where(Notification.user_id == actor.id).scalar_subquery()
    with ctx.db.session() as session:
        row = session.execute(select(inbox, last_step, unread, last_notification, approvals)).one()
        open_count, step_id, unread_count, notification_id, approval_count = (value or 0 for value in row)
        cursor = f"{step_id}.{notification_id}"
        after = parse_cursor(since)
        new: list[LiveItem] = []
        if after is not None and (step_id > after[0] or notification_id > after[1]):
            new = _new_items(ctx, session, actor, after)
    return LiveStatus(cursor=cursor, inbox=open_count, unread=unread_count, approvals=approval_count, new=new)


def _new_items(ctx: Context, session, actor: User, after: tuple[int, int]) -> list[LiveItem]:  # type: ignore[no-untyped-def]
    items: list[LiveItem] = []
    steps = session.execute(
        select(Document.id, Document.title, StepRecord.state, DocumentVersion.number,
               WorkflowInstance.definition_id, WorkflowInstance.definition_version)
        .select_from(StepRecord)
        .join(WorkflowInstance, WorkflowInstance.id == StepRecord.instance_id)
        .join(Document, Document.id == WorkflowInstance.document_id)
        .join(DocumentVersion, DocumentVersion.id == StepRecord.version_id)
        .where(StepRecord.assignee_id == actor.id, StepRecord.id > after[0], StepRecord.status == "open",
               Document.unit_id == actor.unit_id)
        .order_by(StepRecord.id.desc()).limit(MAX_NEW)
    ).all()
    seen: set[int] = set()
    for document_id, title, state, number, definition_id, definition_version in steps:
        kind = work_kind(ctx, state, number, definition_id, definition_version)
        if kind is not None and document_id not in seen:
            items.append(LiveItem(kind, document_id, title))
            seen.add(document_id)
    notifications = session.execute(
        select(Notification.kind, Notification.document_id, Notification.data)
        .where(Notification.user_id == actor.id, Notification.id > after[1], Notification.read_at.is_(None))
        .order_by(Notification.id.desc()).limit(MAX_NEW)
    ).all()
    for kind, document_id, data in notifications:
        if document_id is None or document_id in seen:
            continue
        title = str(json.loads(data or "{}").get("title", ""))
        items.append(LiveItem(kind, document_id, title))
        seen.add(document_id)
    return items[:MAX_NEW]


__all__ = ["LiveItem", "LiveStatus", "live_status", "parse_cursor"]
