"""The audit trail is append-only and hash-chained; revisions are immutable."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy.exc
from sqlalchemy import select, text

from esign.errors import IntegrityError
from esign.models import AuditEvent, DocumentVersion
from esign.services import audit, documents
from esign.services.context import Context


def test_events_chain_and_check_clean(ctx: Context) -> None:
    with ctx.db.session() as session:
        for i in range(5):
            audit.record(session, "test.event", n=i, note="ghi chú")
    with ctx.db.session() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        assert [e.seq for e in events] == [1, 2, 3, 4, 5]
        assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))
        assert audit.check_chain(session) == []


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET data = '{}' WHERE seq = 2",
    "DELETE FROM audit_events WHERE seq = 2",
])
def test_the_database_refuses_to_change_history(ctx: Context, statement: str) -> None:
    with ctx.db.session() as session:
        for i in range(3):
            audit.record(session, "test.event", n=i)
    with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"), ctx.db.session() as session:
        session.execute(text(statement))


def test_a_forged_event_breaks_the_chain(ctx: Context) -> None:
    with ctx.db.session() as session:
        for i in range(3):
            audit.record(session, "test.event", n=i)
    with ctx.db.session() as session:
        # an insert that bypasses the service: right position, made-up hash
        session.add(AuditEvent(seq=4, at=ctx.now(), kind="test.forged", data="{}", prev_hash="0" * 64,
                               hash="f" * 64))
    with ctx.db.session() as session:
        problems = audit.check_chain(session)
    assert {p.seq for p in problems} == {4}


def test_a_revision_that_does_not_extend_the_head_is_refused(demo: Context) -> None:
    from esign.models import User

    ctx = demo
    with ctx.db.session() as session:
        officer = next(u for u in session.scalars(select(User)) if "officer" in u.roles)
    document_id = documents.compose_document(ctx, officer, documents.MemoInput(title="Thử", body="Nội dung"))
    with ctx.db.session() as session:
        version = session.scalar(select(DocumentVersion).where(DocumentVersion.document_id == document_id))
        head = ctx.blobs.read(version.revisions[0].sha256)
        with pytest.raises(IntegrityError, match="does not extend"):
            documents.append_revision(session, ctx, version, b"%PDF-1.7 forged" + head[20:], kind="signature",
                                      actor=officer)
        # an extension is accepted
        documents.append_revision(session, ctx, version, head + b"\n% appended\n", kind="signature",
                                  actor=officer)


def test_sign_in_is_refused_after_five_wrong_passwords(demo: Context) -> None:
    from datetime import timedelta

    from esign.errors import TooManyAttempts
    from esign.services import users
    from esign.services.demo import DEMO_PASSWORD

    ctx = demo
    now = ctx.now()
    with ctx.db.session() as session:
        for _ in range(users.MAX_FAILURES):
            assert users.authenticate(session, "tranthibinh", "wrong guess", now=now) is None
    with ctx.db.session() as session, pytest.raises(TooManyAttempts):
        users.authenticate(session, "tranthibinh", DEMO_PASSWORD, now=now + timedelta(minutes=1))
    with ctx.db.session() as session:
        # other accounts are not affected, and the window passes
        assert users.authenticate(session, "lequangcuong", DEMO_PASSWORD, now=now) is not None
        later = now + users.LOCKOUT_WINDOW + timedelta(minutes=1)
        assert users.authenticate(session, "tranthibinh", DEMO_PASSWORD, now=later) is not None
    with ctx.db.session() as session:
        assert audit.check_chain(session) == []
