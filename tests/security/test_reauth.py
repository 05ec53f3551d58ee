"""Re-authentication before signing: a password (or TOTP code) typed lately, or no signature.

The clock is not slept on: the session's "last authenticated" timestamp is
moved back, which is what time passing does to it.
"""

from __future__ import annotations

import base64
import io
import re
import time

import pyotp
import pytest
from flask import Flask
from sqlalchemy import func, select

from esign.models import AuditEvent, User
from esign.services import documents, signing
from esign.services.context import Context
from esign.services.demo import DEMO_PASSWORD, EXAMPLE_MEMO
from esign.web.auth import AUTH_AT, PENDING_TOTP, REAUTH_FIELD

from .conftest import age_session, csrf_token, login, state_of, user_named

OFFICER, ADVISER = "nguyenvana", "tranthibinh"
STALE = 6 * 60  # past the default reauth_minutes of 5


@pytest.fixture
def submitted(demo: Context) -> int:
    """A memo submitted to the adviser tranthibinh: the adviser's next step is a signature."""
    officer = user_named(demo, OFFICER)
    document_id = documents.compose_document(demo, officer, EXAMPLE_MEMO)
    signing.request_signature(demo, officer, document_id, "submit", advisers=[ADVISER])
    assert state_of(demo, document_id) == "advise"
    return document_id


def _failures(ctx: Context, username: str) -> int:
    with ctx.db.session() as session:
        user_id = session.scalar(select(User.id).where(User.username == username))
        return session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.actor_id == user_id, AuditEvent.kind == "auth.failed")) or 0


def test_a_fresh_login_signs_an_old_one_is_asked_again_and_nothing_is_lost(
        demo_app: Flask, demo: Context, submitted: int) -> None:
    client = demo_app.test_client()
    login(client, ADVISER)
    token = csrf_token(client, f"/documents/{submitted}")
    age_session(client, seconds=STALE, keys=(AUTH_AT,))
    form = {"csrf_token": token, "action": "advise", "comment": "Đồng ý, đề nghị bổ sung dự toán chi tiết.",
            "idempotency_key": "reauth-test-1"}

    asked = client.post(f"/documents/{submitted}/sign", data=form)
    page = asked.get_data(as_text=True)
    assert asked.status_code == 401
    assert f'name="{REAUTH_FIELD}"' in page and 'type="password"' in page
    # the form's intent is carried on the page, to be posted again with the password
    assert 'value="Đồng ý, đề nghị bổ sung dự toán chi tiết."' in page
    assert 'value="reauth-test-1"' in page and f'action="/documents/{submitted}/sign"' in page
    assert state_of(demo, submitted) == "advise"

    failures = _failures(demo, ADVISER)
    wrong = client.post(f"/documents/{submitted}/sign", data={**form, REAUTH_FIELD: "not-the-password"})
    assert wrong.status_code == 401
    assert "Đồng ý, đề nghị bổ sung" in wrong.get_data(as_text=True)
    assert _failures(demo, ADVISER) == failures + 1  # counts toward the lockout
    assert state_of(demo, submitted) == "advise"

    done = client.post(f"/documents/{submitted}/sign", data={**form, REAUTH_FIELD: DEMO_PASSWORD})
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/documents/{submitted}")
    assert state_of(demo, submitted) == "approve"
    with demo.db.session() as session:
        kinds = list(session.scalars(select(AuditEvent.kind).order_by(AuditEvent.seq.desc()).limit(12)))
        comments = str(session.scalars(select(AuditEvent.data).where(AuditEvent.kind.like("step.%"))).all())
    assert "auth.reauth" in kinds
    assert "bổ sung dự toán" in comments or "bổ sung dự toán" in client.get(
        f"/documents/{submitted}").get_data(as_text=True)


def test_the_token_api_answers_reauth_required_and_the_page_brings_the_officer_back(
        demo_app: Flask, demo: Context, submitted: int) -> None:
    client = demo_app.test_client()
    login(client, ADVISER)
    token = csrf_token(client, f"/documents/{submitted}")
    age_session(client, seconds=STALE, keys=(AUTH_AT,))
    url = f"/api/documents/{submitted}/signature-requests"
    refused = client.post(url, json={"action": "advise"}, headers={"X-CSRFToken": token})
    assert refused.status_code == 401
    body = refused.get_json()
    assert body["error"] == "reauth_required" and body["message"]
    assert body["reauth_url"] == f"/reauth?next=/documents/{submitted}"
    assert state_of(demo, submitted) == "advise"

    page = client.get(body["reauth_url"])
    assert page.status_code == 200 and f'name="{REAUTH_FIELD}"' in page.get_data(as_text=True)
    back = client.post(body["reauth_url"], data={"csrf_token": token, REAUTH_FIELD: DEMO_PASSWORD})
    assert back.status_code == 302 and back.headers["Location"] == f"/documents/{submitted}"
    assert "5" in client.get(back.headers["Location"]).get_data(as_text=True)  # the flash names the minutes

    done = client.post(url, json={"action": "advise"}, headers={"X-CSRFToken": token})
    assert done.status_code in (200, 201), done.get_data(as_text=True)
    assert done.get_json()["status"] == "completed"  # the softkey signs in the server
    assert state_of(demo, submitted) == "approve"


def test_an_upload_is_sent_to_the_reauth_page_and_wrong_passwords_lock_it(
        demo_app: Flask, demo: Context, submitted: int) -> None:
    client = demo_app.test_client()
    login(client, ADVISER)
    token = csrf_token(client, f"/documents/{submitted}")
    age_session(client, seconds=STALE, keys=(AUTH_AT,))
    sent = client.post(f"/documents/{submitted}/signed-upload", content_type="multipart/form-data",
                       data={"csrf_token": token, "action": "advise",
                             "file": (io.BytesIO(b"%PDF-1.7 not really"), "signed.pdf")})
    assert sent.status_code == 302
    assert sent.headers["Location"] == f"/reauth?next=/documents/{submitted}"

    for _ in range(5):
        assert client.post(sent.headers["Location"],
                           data={"csrf_token": token, REAUTH_FIELD: "wrong-password"}).status_code == 401
    locked = client.post(sent.headers["Location"], data={"csrf_token": token, REAUTH_FIELD: DEMO_PASSWORD})
    assert locked.status_code == 401 and "15" in locked.get_data(as_text=True)
    # the lockout is the sign-in's: a new login is refused too
    other = demo_app.test_client()
    token2 = csrf_token(other)
    assert other.post("/login", data={"username": ADVISER, "password": DEMO_PASSWORD,
                                      "csrf_token": token2}).status_code == 429
    assert state_of(demo, submitted) == "advise"


def _enrol_totp(client, token: str) -> str:  # type: ignore[no-untyped-def]
    page = client.get("/account/security").get_data(as_text=True)
    assert re.search(r'<img src="data:image/svg\+xml', page)
    with client.session_transaction() as session:
        secret = session[PENDING_TOTP]
    assert secret in page  # the key to type by hand, for the officer only
    wrong = client.post("/account/security/totp", data={"csrf_token": token, "code": "000000",
                                                        "password": DEMO_PASSWORD})
    assert wrong.status_code == 400
    on = client.post("/account/security/totp", data={"csrf_token": token, "password": DEMO_PASSWORD,
                                                     "code": pyotp.TOTP(secret).now()})
    assert on.status_code == 302
    return str(secret)


def test_with_totp_on_signing_needs_a_fresh_code_never_the_same_twice(
        demo_app: Flask, demo: Context, submitted: int) -> None:
    client = demo_app.test_client()
    login(client, ADVISER)
    token = csrf_token(client, f"/documents/{submitted}")
    secret = _enrol_totp(client, token)
    with demo.db.session() as session:
        stored = session.scalar(select(User.totp_secret).where(User.username == ADVISER))
    assert stored and secret not in stored and base64.b32decode(secret).hex() not in stored  # encrypted

    age_session(client, seconds=STALE, keys=(AUTH_AT,))
    form = {"csrf_token": token, "action": "advise", "comment": "Nhất trí."}
    asked = client.post(f"/documents/{submitted}/sign", data=form).get_data(as_text=True)
    assert 'autocomplete="one-time-code"' in asked
    # the password is not what the code page asks for
    assert client.post(f"/documents/{submitted}/sign", data={**form, REAUTH_FIELD: DEMO_PASSWORD}).status_code == 401
    # the code used to turn TOTP on was spent: a replay is refused
    totp = pyotp.TOTP(secret)
    with demo.db.session() as session:
        last_step = session.scalar(select(User.totp_last_step).where(User.username == ADVISER))
    replay = totp.at(last_step * 30)
    assert client.post(f"/documents/{submitted}/sign", data={**form, REAUTH_FIELD: replay}).status_code == 401
    assert state_of(demo, submitted) == "advise"

    fresh = totp.at((last_step + 1) * 30)  # the next code, inside the window of one step
    if (last_step + 1) * 30 > time.time() + 30:
        pytest.fail("the clock went backwards")
    done = client.post(f"/documents/{submitted}/sign", data={**form, REAUTH_FIELD: fresh})
    assert done.status_code == 302, done.get_data(as_text=True)[:1500]
    assert state_of(demo, submitted) == "approve"

    # turned off with the password: the password is asked again
    assert client.post("/account/security/totp/off", data={"csrf_token": token,
                                                           "password": DEMO_PASSWORD}).status_code == 302
    with demo.db.session() as session:
        assert session.scalar(select(User.totp_secret).where(User.username == ADVISER)) == ""


def test_an_administrator_turns_off_the_app_of_an_officer_who_lost_the_phone(demo_app: Flask, demo: Context) -> None:
    officer = demo_app.test_client()
    login(officer, ADVISER)
    _enrol_totp(officer, csrf_token(officer, "/"))
    adviser_id = user_named(demo, ADVISER).id
    admin = demo_app.test_client()
    login(admin, "admin")
    page = admin.get(f"/admin/users/{adviser_id}").get_data(as_text=True)
    assert f"/admin/users/{adviser_id}/totp/off" in page
    # not the officer's colleagues: only an administrator
    assert officer.post(f"/admin/users/{adviser_id}/totp/off",
                        data={"csrf_token": csrf_token(officer, "/")}).status_code == 403
    off = admin.post(f"/admin/users/{adviser_id}/totp/off", data={"csrf_token": csrf_token(admin, "/")})
    assert off.status_code == 302
    with demo.db.session() as session:
        assert session.scalar(select(User.totp_secret).where(User.id == adviser_id)) == ""
        assert session.scalar(select(AuditEvent.kind).order_by(AuditEvent.seq.desc()).limit(1)) == "auth.totp_disabled"
    assert 'type="password"' in officer.get("/reauth").get_data(as_text=True)
