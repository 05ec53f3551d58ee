"""Live updates: an officer's open page learns of new work assigned to them, and of nothing else."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from esign.services import live
from esign.services.context import Context
from tests.notifications.conftest import PASSWORD, assign_memo, person


def test_an_adviser_sees_the_memo_sent_to_them_and_nobody_else_does(ward: Context) -> None:
    ctx = ward
    binh, cuong, an = person(ctx, "tranthibinh"), person(ctx, "lequangcuong"), person(ctx, "nguyenvana")
    before = {u.username: live.live_status(ctx, u) for u in (binh, cuong, an)}
    assert before["tranthibinh"].new == [] and before["tranthibinh"].inbox == 0

    document_id = assign_memo(ctx, "Về việc lắp đèn chiếu sáng hẻm 12", advisers=("tranthibinh",))

    after = live.live_status(ctx, binh, before["tranthibinh"].cursor)
    assert after.inbox == 1 and after.cursor != before["tranthibinh"].cursor
    assert [(i.kind, i.document_id, i.title) for i in after.new] == [
        ("assigned", document_id, "Về việc lắp đèn chiếu sáng hẻm 12")]
    assert after.etag != before["tranthibinh"].etag
    # asked again from the new cursor: nothing new, the same entity tag
    again = live.live_status(ctx, binh, after.cursor)
    assert again.new == [] and again.etag == after.etag
    # Cường was not chosen: his state has not moved
    other = live.live_status(ctx, cuong, before["lequangcuong"].cursor)
    assert other.new == [] and other.etag == before["lequangcuong"].etag
    # the drafter's own draft step is not news to him
    assert live.live_status(ctx, an, before["nguyenvana"].cursor).new == []


def test_malformed_cursors_are_ignored() -> None:
    assert live.parse_cursor("12.7") == (12, 7)
    for text in (None, "", "12", "a.b", "1.2.3", "-1.2", "9" * 30 + ".1"):
        assert live.parse_cursor(text) is None


def make_app(ctx: Context) -> Flask:
    from esign.web import create_app

    return create_app(ctx=ctx)


def log_in(client: FlaskClient, username: str) -> None:
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page).group(1)
    response = client.post("/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302


def test_the_live_endpoint_answers_only_its_officer(sqlite_ward: Context) -> None:
    ctx = sqlite_ward
    app = make_app(ctx)
    anonymous = app.test_client()
    response = anonymous.get("/live/status", headers={"Accept": "application/json"})
    assert response.status_code == 401 and response.json["error"] == "unauthorized"
    assert anonymous.get("/live/status").status_code == 302  # a browser is sent to the login page

    binh, cuong = app.test_client(), app.test_client()
    log_in(binh, "tranthibinh")
    log_in(cuong, "lequangcuong")
    page = binh.get("/").get_data(as_text=True)
    cursor = re.search(r'data-live-cursor="([^"]+)"', page).group(1)
    assert 'data-live-refresh="work"' in page and "/static/js/live.js" in page
    first = binh.get(f"/live/status?since={cursor}", headers={"Accept": "application/json"})
    assert first.status_code == 200 and first.json["new"] == [] and first.headers["Cache-Control"] == "no-store"
    etag = first.headers["ETag"]
    # unchanged: a bodiless 304, and the poll does not extend the session (no cookie set)
    unchanged = binh.get(f"/live/status?since={cursor}", headers={"Accept": "application/json",
                                                                   "If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.data == b""
    assert "Set-Cookie" not in unchanged.headers and "Set-Cookie" not in first.headers
    assert "Set-Cookie" in binh.get("/") .headers  # an ordinary page does

    document_id = assign_memo(ctx, "Về việc sửa cổng trường tiểu học", advisers=("tranthibinh",))
    changed = binh.get(f"/live/status?since={cursor}", headers={"Accept": "application/json",
                                                                 "If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json["inbox"] == 1
    assert changed.json["new"] == [{"kind": "assigned", "title": "Về việc sửa cổng trường tiểu học",
                                    "url": f"/documents/{document_id}"}]
    theirs = cuong.get(f"/live/status?since={cursor}", headers={"Accept": "application/json"}).json
    assert theirs["new"] == [] and theirs["inbox"] == 0
    assert "Về việc sửa cổng" not in str(theirs)


def test_service_worker_and_subscriptions_over_http(sqlite_ward: Context) -> None:
    from tests.notifications.conftest import BrowserKeys

    ctx = sqlite_ward
    app = make_app(ctx)
    worker = app.test_client().get("/sw.js")
    assert worker.status_code == 200 and worker.mimetype == "text/javascript"
    assert worker.headers["Service-Worker-Allowed"] == "/"
    assert "showNotification" in worker.get_data(as_text=True)

    client = app.test_client()
    log_in(client, "tranthibinh")
    page = client.get("/notifications").get_data(as_text=True)
    assert "Bật thông báo trên điện thoại này" in page and "/static/js/push.js" in page
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page).group(1)
    key = client.get("/push/key", headers={"Accept": "application/json"}).json["publicKey"]
    assert len(key) == 87  # base64url of a 65-byte uncompressed P-256 point
    keys = BrowserKeys()
    body = {"endpoint": "https://push.example.invalid/sub/1", "keys": {"p256dh": keys.p256dh, "auth": keys.auth_b64}}
    assert client.post("/push/subscriptions", json=body).status_code == 400  # no CSRF token
    headers = {"X-CSRFToken": token, "User-Agent": "Mozilla/5.0 (Linux; Android 14) Chrome/130.0 Mobile"}
    created = client.post("/push/subscriptions", json=body, headers=headers)
    assert created.status_code == 201
    bad = client.post("/push/subscriptions", json={"endpoint": "ftp://x/y", "keys": {}}, headers=headers)
    assert bad.status_code == 400 and bad.json["message"] == "Đăng ký nhận thông báo của trình duyệt này không hợp lệ"
    page = client.get("/notifications").get_data(as_text=True)
    assert "Chrome · Android" in page and "push.example.invalid" not in page.split("Chrome · Android")[1][:400]
    removed = client.post(f"/push/subscriptions/{created.json['id']}/delete", data={"csrf_token": token})
    assert removed.status_code == 302
    assert "Chrome · Android" not in client.get("/notifications").get_data(as_text=True)
