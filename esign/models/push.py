"""Web Push subscriptions: the browsers (phones) an officer asked to be told of new work on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from esign.models.base import Base, utcnow


class PushSubscription(Base):
    """One browser's push subscription (RFC 8030 endpoint, RFC 8291 keys) for one officer.

    The endpoint is unique: a phone that signs in as another officer and
    subscribes again moves its subscription to that officer.
    """

    __tablename__ = "push_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    #: the push service's address for this browser (a capability: never shown or logged whole)
    endpoint: Mapped[str] = mapped_column(Text, unique=True)
    #: the browser's P-256 public key, base64url (uncompressed point)
    p256dh: Mapped[str] = mapped_column(String(128))
    #: the browser's 16-byte authentication secret, base64url
    auth: Mapped[str] = mapped_column(String(64))
    #: what the officer sees to tell their devices apart ("Chrome on Android")
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sent_at: Mapped[datetime | None]
    #: deliveries that failed in a row (reset by a success)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(200), default="")
