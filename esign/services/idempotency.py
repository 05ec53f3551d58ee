"""Idempotency keys of composing, uploading and the plain actions.

``claim`` stores the key in the caller's transaction, before its effect: a
second request with the same key either finds the committed row (``previous``)
or, when both run at once, waits on the key's unique index and fails there,
after which ``document_of`` finds the first request's result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from esign.errors import Conflict
from esign.models import IdempotencyKey
from esign.services.context import Context

T = TypeVar("T")

MAX_KEY = 80


def _check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY:
        raise Conflict("This request key is not valid; reload the page and try again")


def previous(session: Session, user_id: int, kind: str, key: str, *, action: str = "",
             document_id: int | None = None) -> IdempotencyKey | None:
    """The stored use of ``key``, if any; a key of another person or request is refused."""
    _check_key(key)
    row = session.get(IdempotencyKey, key, populate_existing=True)
    if row is None:
        return None
    if (row.user_id != user_id or row.kind != kind or row.action != action
            or (document_id is not None and row.document_id != document_id)):
        raise Conflict("This request key belongs to another request")
    return row


def claim(session: Session, user_id: int, kind: str, key: str, *, action: str = "",
          document_id: int | None = None) -> IdempotencyKey:
    """Store ``key`` in this transaction (flushed at once: a concurrent twin waits here)."""
    _check_key(key)
    row = IdempotencyKey(key=key, user_id=user_id, kind=kind, action=action, document_id=document_id)
    session.add(row)
    session.flush()
    return row


def document_of(ctx: Context, user_id: int, kind: str, key: str) -> int | None:
    """The document a committed request with ``key`` created; None when there is none."""
    with ctx.db.session() as session:
        row = previous(session, user_id, kind, key)
        return row.document_id if row is not None else None


def once(ctx: Context, user_id: int, kind: str, key: str | None, create: Callable[[Session], int]) -> int:
    """Run ``create`` (which makes a document and returns its id) at most once per key."""
    if key:
        done = document_of(ctx, user_id, kind, key)
        if done is not None:
            return done
    try:
        with ctx.db.session() as session:
            row = claim(session, user_id, kind, key) if key else None
            document_id = create(session)
            if row is not None:
                row.document_id = document_id
            return document_id
    except IntegrityError:
        # a twin with the same key committed first: its document is the answer
        done = document_of(ctx, user_id, kind, key) if key else None
        if done is None:
            raise
        return done
