"""Idempotency keys on the state-changing requests without a signature request of their own:
composing, uploading, return, reject and reassign; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from esign.errors import Conflict, WorkflowError
from esign.models import Document, DocumentVersion, IdempotencyKey
from esign.services import documents, routing
from esign.services.context import Context
from esign.services.demo import EXAMPLE_MEMO
from tests.services.test_chain import person, state_of, submit


def count(ctx: Context, model: type, *where: object) -> int:
    with ctx.db.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def versions(ctx: Context, document_id: int) -> int:
    return count(ctx, DocumentVersion, DocumentVersion.document_id == document_id)


def original_pdf(ctx: Context) -> bytes:
    """A plain PDF to upload: the rendered memo without esign's first update."""
    from esign.signing import layout

    return layout.render_memo(documents._memo_content(ctx, _unit(ctx), EXAMPLE_MEMO, ("", "", "")))


def _unit(ctx: Context):  # type: ignore[no-untyped-def]
    from esign.models import Unit

    with ctx.db.session() as session:
        unit = session.scalar(select(Unit).limit(1))
        session.expunge(unit)
        return unit


def test_composing_twice_with_one_key_makes_one_document(demo: Context) -> None:
    officer = person(demo, "officer")
    first = documents.compose_document(demo, officer, EXAMPLE_MEMO, idempotency_key="compose-key-1")
    again = documents.compose_document(demo, officer, EXAMPLE_MEMO, idempotency_key="compose-key-1")
    other = documents.compose_document(demo, officer, EXAMPLE_MEMO, idempotency_key="compose-key-2")
    assert first == again != other
    assert count(demo, Document) == 2


def test_a_double_click_at_the_same_instant_composes_once(demo: Context) -> None:
    officer = person(demo, "officer")
    barrier = threading.Barrier(3)
    results: list[object] = []

    def click() -> None:
        barrier.wait()
        try:
            results.append(documents.compose_document(demo, officer, EXAMPLE_MEMO, idempotency_key="same-click"))
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            results.append(e)

    threads = [threading.Thread(target=click) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 3 and len(set(results)) == 1 and isinstance(results[0], int), results
    assert count(demo, Document) == 1
    assert count(demo, IdempotencyKey, IdempotencyKey.key == "same-click") == 1


def test_uploading_twice_with_one_key_makes_one_document(demo: Context) -> None:
    officer = person(demo, "officer")
    pdf = original_pdf(demo)
    first = documents.upload_document(demo, officer, title="Tờ trình tải lên", data=pdf, idempotency_key="up-1")
    again = documents.upload_document(demo, officer, title="Tờ trình tải lên", data=pdf, idempotency_key="up-1")
    assert first == again
    assert count(demo, Document) == 1


def test_a_key_of_another_person_or_request_is_refused(demo: Context) -> None:
    officer = person(demo, "officer")
    documents.compose_document(demo, officer, EXAMPLE_MEMO, idempotency_key="mine")
    with pytest.raises(Conflict):
        documents.upload_document(demo, officer, title="x", data=original_pdf(demo), idempotency_key="mine")
    document_id = submit(demo)
    adviser = person(demo, "adviser")
    with pytest.raises(Conflict):
        routing.perform_action(demo, adviser, document_id, "return", comment="Sửa lại", idempotency_key="mine")
    assert state_of(demo, document_id) == "advise"


def test_returning_twice_with_one_key_returns_once(demo: Context) -> None:
    document_id = submit(demo)
    adviser = person(demo, "adviser")
    for _ in range(2):
        routing.perform_action(demo, adviser, document_id, "return", comment="Bổ sung số liệu",
                               idempotency_key="return-1")
    assert state_of(demo, document_id) == "draft"
    assert versions(demo, document_id) == 2


def test_concurrent_returns_with_one_key_start_one_new_version(demo: Context) -> None:
    document_id = submit(demo)
    adviser = person(demo, "adviser")
    barrier = threading.Barrier(3)
    errors: list[Exception] = []

    def click() -> None:
        barrier.wait()
        try:
            routing.perform_action(demo, adviser, document_id, "return", comment="Bổ sung",
                                   idempotency_key="return-now")
        except Exception as e:  # noqa: BLE001 - asserted below
            errors.append(e)

    threads = [threading.Thread(target=click) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert versions(demo, document_id) == 2 and state_of(demo, document_id) == "draft"


def test_a_refused_action_keeps_its_key_free(demo: Context) -> None:
    document_id = submit(demo)
    chair = person(demo, "chair")
    with pytest.raises(WorkflowError):
        routing.perform_action(demo, chair, document_id, "reassign", comment="Bận", assignee="nobody",
                               idempotency_key="reassign-1")
    assert count(demo, IdempotencyKey) == 0
    routing.perform_action(demo, chair, document_id, "reassign", comment="Bận", idempotency_key="reassign-1",
                           assignee=person(demo, "adviser", 2).username)
    assert count(demo, IdempotencyKey) == 1


# --- the forms carry the key --------------------------------------------------------------------

from tests.web.conftest import app, csrf_token, login  # noqa: F401 - fixtures of the web tests


def test_a_return_form_sent_twice_returns_once(app, sqlite_demo: Context) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    import re as _re

    document_id = submit(sqlite_demo)
    client = app.test_client()
    login(client, person(sqlite_demo, "adviser").username)
    page = client.get(f"/documents/{document_id}").get_data(as_text=True)
    form = page[page.index(f'action="/documents/{document_id}/act'):]
    key = _re.search(r'name="idempotency_key" value="([^"]+)"', form).group(1)
    token = csrf_token(client, f"/documents/{document_id}")
    answers = [client.post(f"/documents/{document_id}/act", data={
        "csrf_token": token, "action": "return", "comment": "Bổ sung", "idempotency_key": key})
        for _ in range(2)]
    assert [a.status_code for a in answers] == [302, 302]
    assert versions(sqlite_demo, document_id) == 2 and state_of(sqlite_demo, document_id) == "draft"


def test_the_compose_form_sent_twice_makes_one_memo(app, sqlite_demo: Context) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    import re as _re

    client = app.test_client()
    login(client, person(sqlite_demo, "officer").username)
    page = client.get("/documents/new").get_data(as_text=True)
    key = _re.search(r'name="idempotency_key" type="hidden" value="([^"]+)"|'
                     r'id="idempotency_key" name="idempotency_key" type="hidden" value="([^"]+)"', page)
    assert key, page[:3000]
    fields = {"csrf_token": csrf_token(client, "/documents/new"), "idempotency_key": key.group(1) or key.group(2),
              "doc_type": "TTr", "title": EXAMPLE_MEMO.title, "body": EXAMPLE_MEMO.body}
    answers = [client.post("/documents/new", data=fields) for _ in range(2)]
    assert [a.status_code for a in answers] == [302, 302]
    assert answers[0].headers["Location"] == answers[1].headers["Location"]
    assert count(sqlite_demo, Document) == 1
