"""Keys of state-changing requests without a signature request of their own.

A form that composes or uploads a document, or returns, rejects or reassigns
one, carries a random key; the first request stores it in the same
transaction as its effect, and a second request with the same key (a double
click, a resent form) finds it and answers with the first one's result.
Signed steps keep their key on :class:`~esign.models.SignatureRequest`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from esign.models.base import Base, utcnow

#: what a key was used for
IDEMPOTENT_KINDS = ("compose", "upload", "act")


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: compose | upload | act
    kind: Mapped[str] = mapped_column(String(16))
    #: the action for kind "act" (return, reject, reassign)
    action: Mapped[str] = mapped_column(String(32), default="")
    #: the document created or acted on
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
