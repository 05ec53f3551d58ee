"""The home page and the document page read the database a fixed number of times.

With 10 and then 210 documents (each with two signed revisions, open and finished steps,
audit events and a note), the number of SQL statements of a page is the same, and stays
within a small bound: no query per row, no query per signature or event. On SQLite and
PostgreSQL, for an officer (what they drafted), an adviser (their steps) and the chair
(the whole unit). The inbox also shows a page of each list, not every row.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from flask import Flask
from sqlalchemy import event, select

from esign.models import (
    Certificate,
    Comment,
    Document,
    DocumentVersion,
    Revision,
    StepRecord,
    User,
    WorkflowInstance,
)
from esign.services import audit, documents
from tests.web.conftest import login

#: statements of one page, everything included (sign-in, notifications in the header)
INBOX_MAX = 10
DOCUMENT_MAX = 16
TASK_ROW = re.compile(r'<li class="task')
LIST_ROW = re.compile(r'<td data-label="[^"]*"><a href="/documents/\d+">')


@contextmanager
def counting(engine) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    statements: list[str] = []

    def before(conn, cursor, statement, params, context, many):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def add_documents(ctx, count: int, template_id: int) -> list[int]:  # type: ignore[no-untyped-def]
    """``count`` documents waiting for the adviser: drafted and signed by the officer, with a
    second signed revision, a finished and an open step, audit events and a note each.
    They share the template's PDF (the pages are rendered once)."""
    now = ctx.now()
    ids = []
    with ctx.db.session() as s:
        officer = s.scalar(select(User).where(User.username == "nguyenvana"))
        adviser = s.scalar(select(User).where(User.username == "tranthibinh"))
        cert = s.scalar(select(Certificate.id).where(Certificate.user_id == officer.id))
        template = s.get(Document, template_id)
        head = documents.head_revision(s, documents.current_version(s, template))
        for i in range(count):
            doc = Document(unit_id=officer.unit_id, public_code=secrets.token_urlsafe(9)[:12],
                           title=f"Tờ trình thử số {i}", doc_type="TTr", source="uploaded",
                           created_by_id=officer.id, created_at=now, updated_at=now - timedelta(minutes=i))
            s.add(doc)
            s.flush()
            instance = WorkflowInstance(document_id=doc.id, definition_id=template.workflow.definition_id,
                                        definition_version=template.workflow.definition_version,
                                        state="advise", started_at=now)
            version = DocumentVersion(document_id=doc.id, number=1, created_by_id=officer.id, created_at=now)
            s.add_all([instance, version])
            s.flush()
            for index, (kind, field) in enumerate((("initial", None), ("signature", "drafter"),
                                                   ("timestamp", None))):
                s.add(Revision(version_id=version.id, index=index, sha256=head.sha256, size=head.size, kind=kind,
                               field=field, created_by_id=officer.id, certificate_id=cert if field else None,
                               created_at=now))
            held = {"instance_id": instance.id, "document_id": doc.id, "unit_id": doc.unit_id, "version_id": version.id}
            s.add(StepRecord(**held, state="draft", assignee_id=officer.id, status="done", action="submit",
                             assigned_at=now, completed_at=now))
            s.add(StepRecord(**held, state="advise", assignee_id=adviser.id, status="open", assigned_at=now,
                             due_at=now + timedelta(days=2 if i % 2 else -1)))
            s.add(Comment(document_id=doc.id, version_id=version.id, author_id=adviser.id, body=f"Ghi chú {i}",
                          created_at=now))
            audit.record(s, "step.submit", actor=officer, document=doc, state="draft", to="advise", comment="")
            audit.record(s, "document.viewed", actor=adviser, document=doc)
            ids.append(doc.id)
    return ids


def page_counts(app: Flask, clients: dict, doc_id: int) -> dict[str, int]:  # type: ignore[type-arg]
    engine = app.extensions["esign"].db.engine
    counts = {}
    for who, client in clients.items():
        for name, url in (("inbox", "/"), ("inbox page 2", "/?page=2"), ("document", f"/documents/{doc_id}")):
            client.get(url)  # warm: previews rendered, caches filled
            with counting(engine) as statements:
                response = client.get(url)
            assert response.status_code == 200, (who, url)
            counts[f"{who} {name}"] = len(statements)
    return counts


def test_pages_read_a_fixed_number_of_times(demo) -> None:  # type: ignore[no-untyped-def]
    from esign.web import create_app

    officer = demo_user(demo, "nguyenvana")
    template_id = documents.compose_document(demo, officer, documents.MemoInput(
        title="Mẫu", body="Nội dung thử.", recipients=("Lưu: VT.",)))
    first = add_documents(demo, 10, template_id)
    app = create_app(ctx=demo)
    clients = {}
    for username in ("nguyenvana", "tranthibinh", "nguyenthiquynhtrieu"):
        clients[username] = app.test_client()
        login(clients[username], username)

    few = page_counts(app, clients, first[0])
    add_documents(demo, 200, template_id)
    many = page_counts(app, clients, first[0])

    assert many == few, {k: (few[k], many[k]) for k in few if few[k] != many[k]}
    for name, n in many.items():
        assert n <= (DOCUMENT_MAX if "document" in name else INBOX_MAX), (name, n)

    # the inbox shows a page of each list, not all 211 documents
    page = clients["tranthibinh"].get("/").get_data(as_text=True)
    assert len(TASK_ROW.findall(page)) == 20
    assert len(LIST_ROW.findall(page)) == 25
    assert '<span class="count">210</span>' in page  # every open step is counted
    assert "tasks=2" in page and "page=2" in page
    chair = clients["nguyenthiquynhtrieu"].get("/?page=9").get_data(as_text=True)
    assert len(LIST_ROW.findall(chair)) == 211 - 8 * 25


def demo_user(ctx, username: str) -> User:  # type: ignore[no-untyped-def]
    with ctx.db.session() as s:
        user = s.scalar(select(User).where(User.username == username))
        _ = user.roles
        return user
