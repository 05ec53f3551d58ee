"""The append-only, hash-chained audit trail.

Each event's hash covers the previous event's hash and the event's canonical
JSON, so changing or removing any event breaks every hash after it. Appending
takes the lock on the single ``audit_head`` row, which orders events across
concurrent transactions; the database refuses UPDATE and DELETE on the table.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from esign.models import AuditEvent, AuditHead, Document, User, utcnow

GENESIS = "0" * 64


def canonical(payload: dict[str, object]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def event_hash(prev_hash: str, seq: int, at: datetime, actor_id: int | None, document_id: int | None,
               kind: str, data: str) -> str:
    body = canonical(
        {"seq": seq, "at": at.isoformat(), "actor": actor_id, "document": document_id, "kind": kind, "data": data}
    )
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


def record(
    session: Session,
    kind: str,
    *,
    actor: User | None = None,
    document: Document | None = None,
    unit_id: int | None = None,
    at: datetime | None = None,
    **data: object,
) -> AuditEvent:
    """Append one event in the caller's transaction."""
    # Bumping the head row takes its lock (SQLite: the write lock) before reading it.
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq))
    head = session.get(AuditHead, 1, populate_existing=True)
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
        session.flush()
    at = at or utcnow()
    seq = head.seq + 1
    body = canonical(data)
    actor_id = actor.id if actor else None
    document_id = document.id if document else None
    digest = event_hash(head.hash, seq, at, actor_id, document_id, kind, body)
    event = AuditEvent(
        seq=seq,
        at=at,
        actor_id=actor_id,
        unit_id=unit_id if unit_id is not None else (document.unit_id if document else (actor.unit_id if actor else None)),
        document_id=document_id,
        kind=kind,
        data=body,
        prev_hash=head.hash,
        hash=digest,
    )
    session.add(event)
    head.seq, head.hash = seq, digest
    session.flush()
    return event


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    message: str


def check_chain(session: Session, batch: int = 5000) -> list[ChainProblem]:
    """Recompute every hash; return what is broken (empty: the chain is intact)."""
    problems: list[ChainProblem] = []
    prev_hash, expected_seq = GENESIS, 1
    last_seq = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last_seq).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            break
        for event in rows:
            if event.seq != expected_seq:
                problems.append(ChainProblem(event.seq, f"events {expected_seq}–{event.seq - 1} are missing"))
            if event.prev_hash != prev_hash:
                problems.append(ChainProblem(event.seq, "does not follow the previous event's hash"))
            digest = event_hash(event.prev_hash, event.seq, event.at, event.actor_id, event.document_id,
                                event.kind, event.data)
            if digest != event.hash:
                problems.append(ChainProblem(event.seq, "its content does not match its hash"))
            prev_hash, expected_seq, last_seq = event.hash, event.seq + 1, event.seq
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != last_seq or head.hash != prev_hash):
        problems.append(ChainProblem(last_seq, "the chain's head does not name its last event"))
    return problems
