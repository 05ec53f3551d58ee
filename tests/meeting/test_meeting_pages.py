"""The meeting pages through Flask's test client: only the signed-in officer's own
confirmation, anonymous visitors sent to the login, the list for the chair."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from esign.services import meeting
from esign.services.context import Context
from tests.meeting.conftest import memo_for_approval, person
from tests.web.conftest import csrf_token, login


@pytest.fixture
def app(sqlite_mctx: Context) -> Iterator[Flask]:
    from esign.web import create_app

    yield create_app(ctx=sqlite_mctx)


def test_a_confirmation_is_only_its_owners(app: Flask, sqlite_mctx: Context) -> None:
    ctx = sqlite_mctx
    document_id = memo_for_approval(ctx, "Về việc sửa chữa nhà văn hóa khu phố 3")
    start = meeting.approve_selected(ctx, person(ctx, "chair"), [document_id])
    paths = [f"/meeting/confirm/{start.batch_id}", f"/meeting/confirm/{start.batch_id}/check",
             f"/meeting/confirm/{start.batch_id}/poll", f"/meeting/confirm/{start.batch_id}/cancel",
             "/meeting/", "/meeting/approve"]

    anonymous = app.test_client()
    token = csrf_token(anonymous)
    for path in paths:
        response = anonymous.get(path) if path.endswith(("/", start.batch_id)) else anonymous.post(
            path, data={"csrf_token": token}, headers={"X-CSRFToken": token})
        assert response.status_code in (302, 401) and "/login" in response.headers.get("Location", "/login"), path

    officer = app.test_client()
    login(officer, "nguyenvana")
    token = csrf_token(officer, "/")
    assert officer.get(paths[0]).status_code == 404
    for path in paths[1:4]:
        assert officer.post(path, data={"csrf_token": token}, headers={"X-CSRFToken": token}).status_code == 404
    page = officer.get("/meeting/").get_data(as_text=True)
    assert "Về việc sửa chữa" not in page and "Không có văn bản nào chờ bạn duyệt" in page
    assert 'href="/meeting/"' not in officer.get("/").get_data(as_text=True)  # no link without approvals

    chair = app.test_client()
    login(chair, "nguyenthiquynhtrieu")
    token = csrf_token(chair, "/")
    assert 'href="/meeting/"' in chair.get("/").get_data(as_text=True)
    page = chair.get(paths[0]).get_data(as_text=True)
    assert "Về việc sửa chữa nhà văn hóa khu phố 3" in page and "Chờ ký" in page
    polled = chair.post(paths[2], headers={"X-CSRFToken": token, "Accept": "application/json"}).get_json()
    assert polled["items"][0]["status"] == "waiting" and polled["code"] and polled["seconds_left"] > 0
    assert chair.post(paths[3], data={"csrf_token": token}).status_code == 302
    assert meeting.batch_status(ctx, person(ctx, "chair"), start.batch_id).items[0].status == "cancelled"
    # nothing selected: said so, nothing prepared
    response = chair.post("/meeting/approve", data={"csrf_token": token}, follow_redirects=True)
    assert "Hãy chọn ít nhất một văn bản" in response.get_data(as_text=True)
