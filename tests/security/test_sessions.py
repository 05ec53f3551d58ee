"""Sessions end: after inactivity, at an absolute maximum, and for good on logout.

Time passing is simulated by moving the session's timestamps back, never by sleeping.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from esign.config import Settings, load_settings
from esign.services.context import Context
from esign.services.demo import DEMO_PASSWORD
from esign.web.auth import LOGIN_AT, SEEN_AT
from tests.conftest import ROOT

from .conftest import age_session, csrf_token, login

MINUTE, HOUR = 60, 3600


def _signed_in(client: FlaskClient) -> bool:
    response = client.get("/")
    return response.status_code == 200


def test_inactivity_ends_the_session_activity_keeps_it(demo_app: Flask) -> None:
    client = demo_app.test_client()
    login(client, "nguyenvana")
    age_session(client, seconds=59 * MINUTE, keys=(SEEN_AT,))
    assert _signed_in(client)  # 59 minutes idle: still in, and the request counts as activity
    age_session(client, seconds=59 * MINUTE, keys=(SEEN_AT,))
    assert _signed_in(client)
    age_session(client, seconds=61 * MINUTE, keys=(SEEN_AT,))
    gone = client.get("/documents/new")
    assert gone.status_code == 302 and gone.headers["Location"].startswith("/login")
    page = client.get(gone.headers["Location"]).get_data(as_text=True)
    assert "Phiên làm việc đã kết thúc" in page  # the default language is Vietnamese
    assert not _signed_in(client)
    # JSON callers get a 401 with the reason
    login(client, "nguyenvana")
    age_session(client, seconds=61 * MINUTE, keys=(SEEN_AT,))
    answer = client.get("/api/signature-requests/none", headers={"Accept": "application/json"})
    assert answer.status_code == 401 and answer.get_json()["error"] == "unauthorized"


def test_a_busy_session_still_ends_after_the_absolute_maximum(demo_app: Flask) -> None:
    client = demo_app.test_client()
    login(client, "nguyenvana")
    age_session(client, seconds=11 * HOUR + 50 * MINUTE, keys=(LOGIN_AT,))
    assert _signed_in(client)
    age_session(client, seconds=15 * MINUTE, keys=(LOGIN_AT,))  # 12 h 5 min after sign-in, active a moment ago
    assert not _signed_in(client)


def test_a_copied_cookie_no_longer_works_after_logout(demo_app: Flask) -> None:
    client = demo_app.test_client()
    login(client, "nguyenvana")
    token = csrf_token(client, "/")
    stolen = client.get_cookie("esign_session")
    assert stolen is not None
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302

    replay = demo_app.test_client()
    replay.set_cookie("esign_session", stolen.value)
    answer = replay.get("/")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/login")
    # signing in again opens a new session that works
    login(replay, "nguyenvana", DEMO_PASSWORD)
    assert _signed_in(replay)


def test_production_cookies_are_secure_httponly_and_samesite(
        demo: Context, tmp_path: Path, dev_pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from esign.web import create_app

    monkeypatch.setenv("ESIGN_SECRET_KEY", "a-production-like-secret-key-for-this-test-only-0123456789")
    overrides: dict[str, dict[str, object]] = {
        "app": {"environment": "production", "https": True, "base_url": "https://esign.example.vn"},
        "database": {"url": demo.settings.database.url},
        "pki": {"revocation": "hard-fail", "trust_roots": [str(dev_pki / "root.cert.pem")]},
        "signing": {"backends": ["agent"], "seal_backend": "pkcs11"}}
    if "notifications" in {f.name for f in dataclasses.fields(Settings)}:
        overrides["notifications"] = {"push_enabled": False}  # Web Push needs a VAPID key in production
    production = load_settings(ROOT / "config.toml", env={}, overrides=overrides)
    app = create_app(production, ctx=demo)
    page = app.test_client().get("/login", base_url="https://esign.example.vn")
    assert page.status_code == 200
    cookie = next(v for v in page.headers.getlist("Set-Cookie") if v.startswith("esign_session="))
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"secure", "httponly", "samesite=lax"} <= flags, cookie
    assert "max-age=" in page.headers["Strict-Transport-Security"]
