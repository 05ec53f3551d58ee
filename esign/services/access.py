"""Who may see which document.

Everyone sees only documents of their own unit. Chairs, clerks, auditors and
admins see the whole unit's; officers and advisers see what they drafted and
what they have a step on. A document one may not see does not exist for
them: the answer is "not found", never "forbidden".
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from esign.errors import NotFound
from esign.models import Document, StepRecord, User

UNIT_WIDE_ROLES = frozenset({"chair", "clerk", "auditor", "admin"})


def visible_clause(actor: User) -> ColumnElement[bool]:
    same_unit = Document.unit_id == actor.unit_id
    if actor.roles & UNIT_WIDE_ROLES:
        return same_unit
    # the documents one held a step on, for oneself or on someone's behalf: two index-only reads
    held = select(StepRecord.document_id).where(StepRecord.assignee_id == actor.id)
    on_behalf = select(StepRecord.document_id).where(StepRecord.principal_id == actor.id)
    return same_unit & or_(Document.created_by_id == actor.id, Document.id.in_(held), Document.id.in_(on_behalf))


def get_visible(session: Session, actor: User, document_id: int) -> Document:
    document = session.scalar(select(Document).where(Document.id == document_id, visible_clause(actor)))
    if document is None:
        raise NotFound("This document does not exist or is not yours to see")
    return document
