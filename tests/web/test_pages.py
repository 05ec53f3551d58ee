"""The web app through Flask's test client: sign-in, CSRF, error pages, languages,
administration, composing and uploading, and a memo taken through the whole chain."""

from __future__ import annotations

import base64
import io
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from esign.errors import ConfigError
from esign.models import Certificate, Document, User, WorkflowInstance
from esign.services import documents
from esign.services.demo import EXAMPLE_MEMO
from tests.web.conftest import csrf_token, login

PDF_MAGIC = b"%PDF-"


def user(app: Flask, username: str) -> User:
    with app.extensions["esign"].db.session() as session:
        return session.scalar(select(User).where(User.username == username))


def compose(app: Flask, username: str = "nguyenvana") -> int:
    return documents.compose_document(app.extensions["esign"], user(app, username), EXAMPLE_MEMO)


def state_of(app: Flask, document_id: int) -> str:
    with app.extensions["esign"].db.session() as session:
        return session.scalar(select(WorkflowInstance.state).where(WorkflowInstance.document_id == document_id))


def text(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden field {name}"
    return found.group(1)


# --- start-up --------------------------------------------------------------------------------


def test_create_app_refuses_to_start_without_a_secret_key(app: Flask) -> None:
    from esign.web import create_app

    ctx = app.extensions["esign"]
    settings = ctx.settings.replace(app={"environment": "development", "secret_key_env": "ESIGN_TEST_NO_SUCH_VAR"})
    with pytest.raises(ConfigError, match="ESIGN_TEST_NO_SUCH_VAR"):
        create_app(settings, ctx=ctx)


def test_session_cookie_is_http_only_and_lax(client: FlaskClient) -> None:
    login(client, "nguyenvana")
    cookie = client.get_cookie("esign_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


# --- sign-in --------------------------------------------------------------------------------


def test_login_page_shows_the_product_name(client: FlaskClient) -> None:
    page = text(client.get("/login"))
    assert "esign — Ký số văn bản" in page
    assert "Đăng nhập" in page


@pytest.mark.parametrize("path", ["/", "/documents/new", "/documents/upload", "/documents/1", "/admin/"])
def test_pages_require_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_api_without_login_answers_json_401(client: FlaskClient) -> None:
    response = client.get("/api/signature-requests/abc")
    assert response.status_code == 401
    assert response.json["error"] == "unauthorized"


def test_login_with_a_wrong_password_is_refused_in_vietnamese(client: FlaskClient) -> None:
    response = client.post("/login", data={"username": "nguyenvana", "password": "wrong-password",
                                           "csrf_token": csrf_token(client)})
    assert response.status_code == 401
    assert "Tên đăng nhập hoặc mật khẩu không đúng." in text(response)


def test_login_returns_to_the_page_asked_for_but_never_off_site(client: FlaskClient) -> None:
    token = csrf_token(client)
    response = client.post("/login?next=/documents/new", data={
        "username": "nguyenvana", "password": "demo-password", "csrf_token": token})
    assert response.headers["Location"] == "/documents/new"
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    token = csrf_token(client)
    response = client.post("/login?next=//evil.example/x", data={
        "username": "nguyenvana", "password": "demo-password", "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_logout_ends_the_session(client: FlaskClient) -> None:
    login(client, "nguyenvana")
    assert client.get("/").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert client.get("/").status_code == 302


def test_deactivated_user_cannot_log_in(app: Flask, client: FlaskClient) -> None:
    with app.extensions["esign"].db.session() as session:
        session.scalar(select(User).where(User.username == "tranthibinh")).active = False
    response = client.post("/login", data={"username": "tranthibinh", "password": "demo-password",
                                           "csrf_token": csrf_token(client)})
    assert response.status_code == 401


# --- CSRF -----------------------------------------------------------------------------------


def test_forms_without_a_csrf_token_are_refused(client: FlaskClient) -> None:
    response = client.post("/login", data={"username": "nguyenvana", "password": "demo-password"})
    assert response.status_code == 400
    assert "Biểu mẫu đã hết hạn" in text(response)


def test_json_posts_take_the_csrf_token_from_a_header(client: FlaskClient) -> None:
    login(client, "nguyenvana")
    refused = client.post("/api/signature-requests/nope/cancel", json={})
    assert refused.status_code == 400 and refused.json["error"] == "csrf"
    accepted = client.post("/api/signature-requests/nope/cancel", json={},
                           headers={"X-CSRFToken": csrf_token(client, "/")})
    assert accepted.status_code == 404 and accepted.json["error"] == "not_found"


# --- errors ---------------------------------------------------------------------------------


def test_unknown_page_is_an_html_404_for_people(client: FlaskClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "Trang này không tồn tại." in text(response)


def test_unknown_page_is_json_for_clients_that_ask_and_for_the_api(client: FlaskClient) -> None:
    response = client.get("/no/such/page", headers={"Accept": "application/json"})
    assert response.status_code == 404 and response.json["error"] == "not_found"
    response = client.get("/api/nothing")
    assert response.status_code == 404 and response.json["error"] == "not_found"


def test_wrong_method_is_a_405(client: FlaskClient) -> None:
    response = client.get("/logout")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


def test_service_errors_show_their_translated_sentence(app: Flask, client: FlaskClient) -> None:
    login(client, "nguyenvana")
    response = client.get("/documents/999999")
    assert response.status_code == 404
    assert "Văn bản này không tồn tại hoặc bạn không có quyền xem" in text(response)
    response = client.get("/documents/999999", headers={"Accept": "application/json"})
    assert response.json == {"error": "not_found",
                             "message": "Văn bản này không tồn tại hoặc bạn không có quyền xem"}


def test_unexpected_errors_show_no_trace(app: Flask, client: FlaskClient) -> None:
    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals <repr>")

    response = client.get("/boom")
    assert response.status_code == 500
    body = text(response)
    assert "secret internals" not in body and "Traceback" not in body
    assert "Máy chủ gặp sự cố" in body


def test_pages_carry_security_headers_and_no_inline_code(client: FlaskClient) -> None:
    login(client, "nguyenvana")
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"]
    assert "Strict-Transport-Security" not in response.headers
    body = text(response)
    assert not re.search(r"<script(?![^>]*\bsrc=)", body)
    assert " style=" not in body and "<style" not in body and " onclick=" not in body


# --- languages ------------------------------------------------------------------------------


def test_vietnamese_is_the_default_and_english_can_be_chosen(app: Flask, client: FlaskClient) -> None:
    login(client, "nguyenvana")
    assert "Việc cần xử lý" in text(client.get("/"))
    response = client.post("/lang", data={"lang": "en", "next": "/", "csrf_token": csrf_token(client, "/")})
    assert response.headers["Location"] == "/"
    page = text(client.get("/"))
    assert "Needs my action" in page and 'lang="en"' in page
    assert user(app, "nguyenvana").locale == "en"
    response = client.get("/documents/999999")
    assert "This document does not exist or is not yours to see" in text(response)


def test_language_switch_works_before_login(client: FlaskClient) -> None:
    client.post("/lang", data={"lang": "en", "next": "/login", "csrf_token": csrf_token(client)})
    assert "Digital signing of documents" in text(client.get("/login"))


# --- administration -------------------------------------------------------------------------


def test_admin_pages_are_for_admins_only(client: FlaskClient) -> None:
    login(client, "nguyenvana")
    response = client.get("/admin/")
    assert response.status_code == 403
    assert "Chỉ quản trị viên" in text(response)


def test_admin_creates_a_user_and_sets_roles(app: Flask, client: FlaskClient) -> None:
    login(client, "admin")
    page = text(client.get("/admin/"))
    assert "Nguyễn Văn An" in page and "nguyenvana" in page
    form = text(client.get("/admin/users/new"))
    unit_id = re.search(r'<option selected value="(\d+)"|<option value="(\d+)" selected', form)
    assert unit_id
    token = csrf_token(client, "/admin/")
    bad = client.post("/admin/users/new", data={"csrf_token": token, "unit_id": unit_id.group(1) or unit_id.group(2),
                                                "username": "bad name", "full_name": "", "password": "short"})
    assert bad.status_code == 400
    assert "Vui lòng điền ô này." in text(bad) and "Ít nhất 8 ký tự." in text(bad)
    response = client.post("/admin/users/new", data={
        "csrf_token": token, "unit_id": unit_id.group(1) or unit_id.group(2), "username": "vothimai",
        "full_name": "Võ Thị Mai", "title": "Công chức Văn hóa – Xã hội", "roles": ["adviser"],
        "password": "a-good-password"})
    assert response.status_code == 302
    new = user(app, "vothimai")
    assert new.roles == {"adviser"}
    response = client.post(f"/admin/users/{new.id}", data={"csrf_token": token, "roles": ["adviser", "officer"],
                                                           "active": "y"})
    assert response.status_code == 302
    assert user(app, "vothimai").roles == {"adviser", "officer"}
    client.post(f"/admin/users/{new.id}", data={"csrf_token": token, "roles": ["adviser"]})
    assert not user(app, "vothimai").active


def test_admin_binds_and_withdraws_certificates(app: Flask, client: FlaskClient, dev_pki) -> None:  # type: ignore[no-untyped-def]
    login(client, "admin")
    auditor = user(app, "dangthiphuong")
    page = text(client.get(f"/admin/users/{auditor.id}"))
    assert "Người dùng này chưa được gán chứng thư số nào." in page
    token = csrf_token(client, "/admin/")
    # a PEM certificate of a device the server cannot reach
    pem = next(dev_pki.glob("*.cert.pem")).read_bytes() if list(dev_pki.glob("*.cert.pem")) else None
    assert pem is not None
    garbage = client.post(f"/admin/users/{auditor.id}/certificate", data={
        "csrf_token": token, "device": "token", "credential": "x",
        "file": (io.BytesIO(b"not a certificate"), "x.pem")}, content_type="multipart/form-data")
    assert garbage.status_code == 400
    assert "Tệp này không phải chứng thư số" in text(garbage)


# --- composing and uploading ----------------------------------------------------------------


def test_compose_shows_what_is_missing(client: FlaskClient) -> None:
    login(client, "nguyenvana")
    response = client.post("/documents/new", data={"csrf_token": csrf_token(client, "/"), "doc_type": "TTr",
                                                    "title": "", "body": ""})
    assert response.status_code == 400
    assert text(response).count("Vui lòng điền ô này.") == 2


def test_compose_creates_a_memo_and_opens_its_page(app: Flask, client: FlaskClient) -> None:
    login(client, "nguyenvana")
    response = client.post("/documents/new", data={
        "csrf_token": csrf_token(client, "/"), "doc_type": "TTr", "title": EXAMPLE_MEMO.title,
        "addressee": EXAMPLE_MEMO.addressee, "body": EXAMPLE_MEMO.body, "recipients": "Như trên;\nLưu: VT, VP."})
    assert response.status_code == 302
    page = text(client.get(response.headers["Location"]))
    assert EXAMPLE_MEMO.title in page
    assert "Ký và gửi xin ý kiến" in page
    assert "Trần Thị Bình" in page  # an adviser to choose


def test_only_officers_can_draft(client: FlaskClient) -> None:
    login(client, "tranthibinh")
    response = client.post("/documents/new", data={"csrf_token": csrf_token(client, "/"), "doc_type": "TTr",
                                                    "title": "x", "body": "y"})
    assert response.status_code == 403
    assert "Chỉ chuyên viên mới được soạn văn bản" in text(response)


def upload(client: FlaskClient, data: bytes, title: str = "Báo cáo tháng 11") -> object:
    return client.post("/documents/upload", data={
        "csrf_token": csrf_token(client, "/"), "doc_type": "BC", "title": title,
        "file": (io.BytesIO(data), "report.pdf")}, content_type="multipart/form-data")


def test_upload_refuses_a_file_that_is_not_a_pdf(client: FlaskClient) -> None:
    login(client, "nguyenvana")
    response = upload(client, b"Hello, this is a Word document")
    assert response.status_code == 422
    assert "Tệp này không phải PDF" in text(response)


def test_upload_refuses_an_encrypted_pdf(client: FlaskClient) -> None:
    login(client, "nguyenvana")
    response = upload(client, encrypted_pdf())
    assert response.status_code == 422
    assert "Tệp PDF có mật khẩu hoặc được mã hóa" in text(response)


def test_upload_refuses_a_file_over_the_limit(app: Flask, client: FlaskClient) -> None:
    login(client, "nguyenvana")
    limit = app.extensions["esign"].settings.app.max_upload_mb
    # a body built by hand: the test client would spool a large one to a temporary file it never closes
    boundary = "esign-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n"
            f"{csrf_token(client, '/')}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"\r\n"
            "Content-Type: application/pdf\r\n\r\n").encode()
    body += PDF_MAGIC + b"0" * (limit * 1024 * 1024 + 300 * 1024) + f"\r\n--{boundary}--\r\n".encode()
    response = client.post("/documents/upload", data=body,
                           content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 413
    assert f"giới hạn tải lên {limit} MB" in text(response)


def test_upload_accepts_a_pdf(client: FlaskClient) -> None:
    login(client, "nguyenvana")
    response = upload(client, minimal_pdf())
    assert response.status_code == 302, text(response)
    assert "Báo cáo tháng 11" in text(client.get(response.headers["Location"]))


def minimal_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    pdf.cell(text="Monthly report")
    return bytes(pdf.output())


def encrypted_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password="user")
    pdf.add_page()
    pdf.set_font("helvetica", size=14)
    pdf.cell(text="Secret")
    return bytes(pdf.output())


# --- the document page ----------------------------------------------------------------------


def test_document_page_shows_previews_never_an_embedded_pdf(app: Flask, client: FlaskClient) -> None:
    document_id = compose(app)
    login(client, "nguyenvana")
    page = text(client.get(f"/documents/{document_id}"))
    assert f"/documents/{document_id}/pages/1.png" in page
    assert "<iframe" not in page and "<embed" not in page and "<object" not in page
    previews = app.extensions["esign"].settings.storage.previews
    assert not any(previews.glob("*/page-*.png"))  # the page did not wait for them: drawn when asked for
    image = client.get(f"/documents/{document_id}/pages/1.png")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert image.data.startswith(b"\x89PNG")
    assert client.get(f"/documents/{document_id}/pages/99.png").status_code == 404
    assert any(previews.glob("*/page-1.png"))


def test_download_is_an_attachment(app: Flask, client: FlaskClient) -> None:
    document_id = compose(app)
    login(client, "nguyenvana")
    response = client.get(f"/documents/{document_id}/pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.data.startswith(PDF_MAGIC)


def test_others_cannot_see_a_draft(app: Flask, client: FlaskClient) -> None:
    document_id = compose(app)
    login(client, "tranthibinh")
    assert client.get(f"/documents/{document_id}").status_code == 404
    assert client.get(f"/documents/{document_id}/pages/1.png").status_code == 404
    assert client.get(f"/documents/{document_id}/pdf").status_code == 404


def sign(client: FlaskClient, document_id: int, action: str, **fields: object):  # type: ignore[no-untyped-def]
    page = text(client.get(f"/documents/{document_id}"))
    data = {"csrf_token": hidden(page, "csrf_token"), "action": action,
            "idempotency_key": hidden(page, "idempotency_key"), **fields}
    return client.post(f"/documents/{document_id}/sign", data=data)


def as_(client: FlaskClient, username: str) -> FlaskClient:
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(client, username)
    return client


def test_a_memo_goes_through_the_whole_chain_on_the_web(app: Flask, client: FlaskClient) -> None:
    document_id = compose(app)
    login(client, "nguyenvana")
    refused = sign(client, document_id, "submit")
    assert refused.status_code == 409 and "Hãy chọn ít nhất một người cho ý kiến" in text(refused)
    response = sign(client, document_id, "submit", advisers=["tranthibinh", "lequangcuong"])
    assert response.status_code == 302, text(response)
    assert state_of(app, document_id) == "advise"
    assert "Đã ký: Ký và gửi xin ý kiến." in text(client.get(f"/documents/{document_id}"))

    for adviser, opinion in (("tranthibinh", "Đồng ý."), ("lequangcuong", "")):
        as_(client, adviser)
        inbox = text(client.get("/"))
        assert EXAMPLE_MEMO.title in inbox
        response = sign(client, document_id, "advise", comment=opinion)
        assert response.status_code == 302, text(response)
    assert state_of(app, document_id) == "approve"

    as_(client, "nguyenthiquynhtrieu")
    page = text(client.get(f"/documents/{document_id}"))
    assert "Ký phê duyệt" in page and "Không phê duyệt" in page and "Trả lại để chỉnh sửa" in page
    assert "Đồng ý." in page  # the adviser's comment in the timeline
    assert sign(client, document_id, "approve").status_code == 302
    assert state_of(app, document_id) == "issue"

    as_(client, "hoangvanem")
    page = text(client.get(f"/documents/{document_id}"))
    assert "Cấp số và đóng dấu" in page
    suggested = re.search(r'name="number" id="number-issue" value="(\d+)"', page)
    assert suggested and suggested.group(1) == "1"
    bad = sign(client, document_id, "issue", number="abc")
    assert bad.status_code == 400 and "Số văn bản phải là số nguyên dương." in text(bad)
    assert sign(client, document_id, "issue", number="7").status_code == 302
    assert state_of(app, document_id) == "issued"

    with app.extensions["esign"].db.session() as session:
        document = session.get(Document, document_id)
        code, number = document.public_code, document.number
    assert number == "7/TTr-UBND"
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    public = client.get(f"/v/{code}")
    assert public.status_code == 200
    body = text(public)
    assert "7/TTr-UBND" in body and "Nguyễn Thị Quỳnh Triều" in body and "Trần Thị Bình" in body
    assert EXAMPLE_MEMO.title not in body and "nhà văn hóa" not in body and ".png" not in body
    assert client.get("/v/no-such-code").status_code == 404


def test_chair_returns_a_memo_with_a_reason(app: Flask, client: FlaskClient) -> None:
    ctx = app.extensions["esign"]
    from esign.services import signing

    document_id = compose(app)
    signing.request_signature(ctx, user(app, "nguyenvana"), document_id, "submit", advisers=["tranthibinh"])
    login(client, "tranthibinh")
    page = text(client.get(f"/documents/{document_id}"))
    token = hidden(page, "csrf_token")
    response = client.post(f"/documents/{document_id}/act", data={"csrf_token": token, "action": "return",
                                                                  "comment": ""})
    assert response.status_code == 400 and "bắt buộc phải có lý do" in text(response)
    response = client.post(f"/documents/{document_id}/act", data={"csrf_token": token, "action": "return",
                                                                  "comment": "Bổ sung dự toán kinh phí."})
    assert response.status_code == 302
    assert state_of(app, document_id) == "draft"
    as_(client, "nguyenvana")
    page = text(client.get(f"/documents/{document_id}"))
    assert "Bổ sung dự toán kinh phí." in page and "Phiên bản 2" in page


def test_a_device_the_server_cannot_reach_completes_through_the_api(app: Flask, client: FlaskClient) -> None:
    from esign.signing.backend import SignRequest

    ctx = app.extensions["esign"]
    officer = user(app, "nguyenvana")
    with ctx.db.session() as session:
        # the officer's mobile key now answers through the browser (the backend the server cannot reach)
        cert = session.scalar(select(Certificate).where(Certificate.user_id == officer.id,
                                                        Certificate.device == "mobile"))
        cert.backend, cert_id = "agent", cert.id
    document_id = compose(app)
    login(client, "nguyenvana")
    response = sign(client, document_id, "submit", certificate_id=str(cert_id), advisers=["tranthibinh"])
    assert response.status_code == 302
    page = text(client.get(f"/documents/{document_id}"))
    assert "Đang chờ thiết bị ký của bạn" in page
    status_url = re.search(r'data-request-status="([^"]+)"', page).group(1)
    status = client.get(status_url).json
    assert status["status"] == "pending" and status["tbs"]
    headers = {"X-CSRFToken": hidden(page, "csrf_token")}
    bad = client.post(f"{status_url}/complete", json={"signature": "***"}, headers=headers)
    assert bad.status_code == 400 and bad.json["error"] == "bad_request"
    signed = ctx.backends["softkey"].sign(SignRequest(credential="nguyenvana-mobile",
                                                      tbs=base64.b64decode(status["tbs"]),
                                                      md_algorithm=status["md_algorithm"],
                                                      mechanism=status["mechanism"]))
    done = client.post(f"{status_url}/complete", json={"signature": base64.b64encode(signed.signature).decode()},
                       headers=headers)
    assert done.status_code == 200, done.json
    assert done.json["status"] == "completed"
    assert state_of(app, document_id) == "advise"


def test_a_desktop_agent_prepares_and_completes_a_signature_through_json(app: Flask, client: FlaskClient) -> None:
    from esign.signing.backend import SignRequest

    ctx = app.extensions["esign"]
    officer = user(app, "nguyenvana")
    with ctx.db.session() as session:
        cert = session.scalar(select(Certificate).where(Certificate.user_id == officer.id,
                                                        Certificate.device == "token"))
        cert.backend = "agent"
    document_id = compose(app)
    login(client, "nguyenvana")
    headers = {"X-CSRFToken": csrf_token(client, "/")}
    missing = client.post(f"/api/documents/{document_id}/signature-requests", json={}, headers=headers)
    assert missing.status_code == 400 and missing.json["error"] == "bad_request"
    body = {"action": "submit", "device": "token", "advisers": ["tranthibinh"], "idempotency_key": "k-1"}
    created = client.post(f"/api/documents/{document_id}/signature-requests", json=body, headers=headers)
    assert created.status_code == 201, created.json
    again = client.post(f"/api/documents/{document_id}/signature-requests", json=body, headers=headers)
    assert again.json["id"] == created.json["id"]  # the same idempotency key: the same request
    signed = ctx.backends["softkey"].sign(SignRequest(credential="nguyenvana-token",
                                                      tbs=base64.b64decode(created.json["tbs"]),
                                                      md_algorithm=created.json["md_algorithm"],
                                                      mechanism=created.json["mechanism"]))
    done = client.post(f"/api/signature-requests/{created.json['id']}/complete",
                       json={"signature": base64.b64encode(signed.signature).decode()}, headers=headers)
    assert done.json["status"] == "completed"
    assert state_of(app, document_id) == "advise"
    as_(client, "tranthibinh")
    stranger = client.get(f"/api/signature-requests/{created.json['id']}")
    assert stranger.status_code == 404


def test_inbox_marks_overdue_steps(app: Flask, client: FlaskClient) -> None:
    from datetime import timedelta

    from esign.models import StepRecord, utcnow

    document_id = compose(app)
    with app.extensions["esign"].db.session() as session:
        step = session.scalar(select(StepRecord).join(WorkflowInstance).where(
            WorkflowInstance.document_id == document_id))
        step.due_at = utcnow() - timedelta(hours=3)
    login(client, "nguyenvana")
    page = text(client.get("/"))
    assert "task is-overdue" in page and "Quá hạn" in page
    assert re.search(r"hạn \d\d/\d\d/\d{4} \d\d:\d\d", page)


def test_the_officer_chooses_among_several_certificates(app: Flask, client: FlaskClient) -> None:
    document_id = compose(app)
    login(client, "nguyenvana")
    page = text(client.get(f"/documents/{document_id}"))
    options = re.findall(r'<option value="\d+"[^>]*>([^<]+)</option>', page)
    assert any(o.startswith("USB token — Nguyễn Văn An") for o in options)
    assert any(o.startswith("Chữ ký số di động — Nguyễn Văn An") for o in options)


def test_over_https_cookies_are_secure_and_hsts_is_sent(app: Flask) -> None:
    from esign.web import create_app

    ctx = app.extensions["esign"]
    secure = create_app(ctx.settings.replace(app={"https": True}), ctx=ctx)
    client = secure.test_client()
    response = client.get("/login", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    token = CSRF_TOKEN.search(text(response)).group(1)
    response = client.post("/login", base_url="https://localhost",
                           headers={"Referer": "https://localhost/login"},
                           data={"username": "nguyenvana", "password": "demo-password", "csrf_token": token})
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"] and "HttpOnly" in response.headers["Set-Cookie"]


CSRF_TOKEN = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
