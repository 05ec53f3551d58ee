"""Every route × role × unit: no one reaches what is not theirs.

The routes come from the app's URL map, so a new route is covered the day it
is added; a route that anonymous visitors may reach must be named in PUBLIC.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from esign.models import Certificate, SignatureRequest, User, WorkflowInstance
from esign.services import documents, signing, users
from esign.services.context import Context
from esign.services.demo import DEMO_PASSWORD, EXAMPLE_MEMO

from .conftest import csrf_token, login

PUBLIC = {"auth.login", "auth.set_language", "auth.logout", "public.verify", "public.check_copy",
          "static", "live.service_worker"}
ADMIN_PREFIX = "admin."


def _user(ctx: Context, role: str, index: int = 0) -> User:
    with ctx.db.session() as session:
        return [u for u in session.scalars(select(User).order_by(User.id)) if role in u.roles][index]


@pytest.fixture
def world(sqlite_demo: Context) -> dict[str, object]:
    """A memo of the demo ward waiting for the chair, and an officer of another ward."""
    ctx = sqlite_demo
    officer = _user(ctx, "officer")
    document_id = documents.compose_document(ctx, officer, EXAMPLE_MEMO)
    signing.request_signature(ctx, officer, document_id, "submit",
                              advisers=[_user(ctx, "adviser", 0).username])
    signing.request_signature(ctx, _user(ctx, "adviser", 0), document_id, "advise")
    with ctx.db.session() as session:
        other = users.create_unit(session, "tanđinh", "ỦY BAN NHÂN DÂN PHƯỜNG TÂN ĐỊNH", place="Tân Định")
        users.create_user(session, None, unit=other, username="outsider", full_name="Người Ngoài",
                          password=DEMO_PASSWORD, roles=["officer", "chair", "auditor"], title="Chủ tịch")
        request_id = session.scalar(select(SignatureRequest.id).limit(1))
        certificate_id = session.scalar(select(Certificate.id).limit(1))
        code = session.scalar(select(WorkflowInstance).where(WorkflowInstance.document_id == document_id)
                              ).document.public_code
    return {"document_id": document_id, "request_id": request_id, "user_id": officer.id,
            "certificate_id": certificate_id, "n": 1, "public_code": code,
            # a phone confirmation (meeting mode) is looked up among the signed-in officer's own
            "batch_id": "no-such-confirmation",
            # a push subscription is looked up among the signed-in officer's own as well
            "subscription_id": 1}


def _routes(app: Flask, world: dict[str, object]) -> list[tuple[str, str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        values = {name: world[name] for name in rule.arguments}
        with app.test_request_context():
            from flask import url_for

            path = url_for(rule.endpoint, **values)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, path))
    return found


def _call(client: FlaskClient, method: str, path: str, token: str | None) -> object:
    if method == "GET":
        return client.get(path)
    return client.post(path, data={"csrf_token": token} if token else {},
                       headers={"X-CSRFToken": token} if token else {})


def test_anonymous_visitors_reach_only_the_login_and_public_pages(app: Flask, world) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    token = csrf_token(client)
    checked = 0
    for endpoint, method, path in _routes(app, world):
        if endpoint in PUBLIC:
            continue
        response = _call(client, method, path, token)
        checked += 1
        assert response.status_code in (302, 401), (endpoint, method, response.status_code)
        if response.status_code == 302:
            assert "/login" in response.headers["Location"], (endpoint, response.headers["Location"])
    assert checked >= 15


def test_an_officer_of_another_ward_sees_none_of_its_documents(app: Flask, world) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    login(client, "outsider")
    token = csrf_token(client, "/")
    for endpoint, method, path in _routes(app, world):
        if "document_id" not in path and "request" not in endpoint and endpoint.split(".")[0] not in (
                "documents", "api"):
            continue
        if endpoint in ("documents.compose", "documents.upload"):
            continue
        response = _call(client, method, path, token)
        assert response.status_code in (400, 403, 404), (endpoint, method, response.status_code)
        assert EXAMPLE_MEMO.title not in response.get_data(as_text=True), endpoint
    assert EXAMPLE_MEMO.title not in client.get("/").get_data(as_text=True)


@pytest.mark.parametrize("username", ["nguyenvana", "tranthibinh", "nguyenthiquynhtrieu", "hoangvanem",
                                      "dangthiphuong"])
def test_only_admins_reach_the_admin_pages(app: Flask, world, username: str) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    login(client, username)
    token = csrf_token(client, "/")
    for endpoint, method, path in _routes(app, world):
        if endpoint.startswith(ADMIN_PREFIX):
            assert _call(client, method, path, token).status_code == 403, (username, endpoint, method)


@pytest.mark.parametrize(("username", "action"), [
    ("tranthibinh", "approve"),      # an adviser cannot approve
    ("hoangvanem", "approve"),       # a clerk cannot sign as chair
    ("nguyenvana", "approve"),       # nor can the drafter
    ("dangthiphuong", "issue"),      # an auditor signs nothing
])
def test_no_one_signs_a_step_that_is_not_theirs(app: Flask, world, sqlite_demo: Context, username: str,
                                               action: str) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    login(client, username)
    document_id = world["document_id"]
    token = csrf_token(client, "/")
    response = client.post(f"/documents/{document_id}/sign", data={"csrf_token": token, "action": action})
    assert response.status_code in (403, 404)
    with sqlite_demo.db.session() as session:
        state = session.scalar(select(WorkflowInstance.state).where(WorkflowInstance.document_id == document_id))
    assert state == "approve"


def test_the_public_page_never_shows_the_content(app: Flask, world) -> None:  # type: ignore[no-untyped-def]
    page = app.test_client().get(f"/v/{world['public_code']}").get_data(as_text=True)
    assert EXAMPLE_MEMO.title not in page
    assert "nhà văn hóa" not in page
    assert not re.search(r"/documents/\d+/pages/", page)
