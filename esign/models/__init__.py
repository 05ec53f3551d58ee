"""SQLAlchemy 2.x models: the stored state of esign, and nothing else.

No behaviour lives here beyond small derived properties; services own every
write (esign/services).
"""

from esign.models.base import Base, utcnow
from esign.models.idempotency import IdempotencyKey
from esign.models.notifications import Notification, SentReminder
from esign.models.push import PushSubscription
from esign.models.tables import (
    ROLES,
    AuditEvent,
    AuditHead,
    Blob,
    Certificate,
    Comment,
    Delegation,
    Document,
    DocumentVersion,
    NumberSequence,
    Revision,
    SignatureRequest,
    StepRecord,
    Unit,
    User,
    UserRole,
    WorkflowInstance,
)

__all__ = [
    "ROLES",
    "AuditEvent",
    "AuditHead",
    "Base",
    "Blob",
    "Certificate",
    "Comment",
    "Delegation",
    "Document",
    "DocumentVersion",
    "IdempotencyKey",
    "Notification",
    "NumberSequence",
    "PushSubscription",
    "Revision",
    "SentReminder",
    "SignatureRequest",
    "StepRecord",
    "Unit",
    "User",
    "UserRole",
    "WorkflowInstance",
    "utcnow",
]
