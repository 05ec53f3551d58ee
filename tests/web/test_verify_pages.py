"""Verification for people: the upload page, the JSON API, the QR page's verdict and copy check,
and the PDF reports (rendered by poppler to prove they are real PDFs)."""

from __future__ import annotations

import io
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from esign.models import Document
from esign.services import documents, verification
from esign.services.demo import EXAMPLE_MEMO, run_example
from tests.web.conftest import csrf_token, login
from tests.web.test_pages import compose, text, user


@pytest.fixture(scope="module")
def shared_app(dev_pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One demo ward for the module: seeding and signing a whole chain take seconds."""
    from esign.services.context import Context
    from esign.services.demo import seed_people
    from esign.services.migrate import upgrade
    from esign.web import create_app
    from tests.conftest import DEMO_PEOPLE, make_settings

    settings = make_settings(tmp_path_factory.mktemp("verify-web"), dev_pki)
    upgrade(settings)
    ctx = Context.create(settings)
    seed_people(ctx, DEMO_PEOPLE)
    ctx.issued_example = run_example(ctx)  # type: ignore[attr-defined]
    yield create_app(ctx=ctx)
    ctx.close()


@pytest.fixture
def app(shared_app: Flask) -> Flask:
    return shared_app


@pytest.fixture
def issued(shared_app: Flask) -> int:
    """The demo memo taken through the whole chain (drafter, two advisers, chair, seal)."""
    return shared_app.extensions["esign"].issued_example  # type: ignore[no-any-return]


def current_pdf(app: Flask, document_id: int) -> bytes:
    ctx = app.extensions["esign"]
    return documents.current_pdf(ctx, user(app, "nguyenvana"), document_id)[2]


def public_code(app: Flask, document_id: int) -> str:
    with app.extensions["esign"].db.session() as session:
        return session.scalar(select(Document.public_code).where(Document.id == document_id))


def stamped(pdf: bytes, tmp_path: Path) -> bytes:
    """The file with text drawn on page 1 in an unsigned incremental update (a forgery)."""
    from pyhanko.stamp import TextStampStyle, text_stamp_file

    source, target = tmp_path / "in.pdf", tmp_path / "out.pdf"
    source.write_bytes(pdf)
    text_stamp_file(str(source), str(target), TextStampStyle(stamp_text="KINH PHÍ 900.000.000 ĐỒNG"),
                    dest_page=0, x=120, y=500)
    return target.read_bytes()


def upload(client: FlaskClient, data: bytes, name: str = "van-ban.pdf", path: str = "/verify"):  # type: ignore[no-untyped-def]
    token = csrf_token(client, path)
    return client.post(path, data={"csrf_token": token, "file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


def render_first_page(pdf: bytes, tmp_path: Path) -> Path:
    source = tmp_path / "report.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(source), str(tmp_path / "page")],
                   check=True, capture_output=True, timeout=60)
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages and pages[0].stat().st_size > 5000
    return pages[0]


def test_verify_page_requires_login(client: FlaskClient) -> None:
    response = client.get("/verify")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert client.get("/api/documents/1/verification").status_code == 401
    # a POST without the session's CSRF token stops before anything is read
    assert client.post("/api/verify", data=b"%PDF-", content_type="application/pdf").status_code == 400


def test_auditor_uploads_an_issued_document_and_sees_it_valid(app: Flask, client: FlaskClient, issued: int,
                                                              tmp_path: Path) -> None:
    pdf = current_pdf(app, issued)
    login(client, "dangthiphuong")  # the auditor
    response = upload(client, pdf)
    assert response.status_code == 200
    page = text(response)
    assert 'data-verdict="VALID"' in page and "HỢP LỆ" in page
    assert page.count("<tr>") == 1 + 5  # heading + drafter, two advisers, chair, seal
    assert "Chứng thực (tác giả)" in page and "Nguyễn Văn An" in page
    assert "<embed" not in page and "<iframe" not in page
    # the report of this upload, as an A4 PDF that poppler draws
    report_url = re.search(r'href="(/verify/report\.pdf\?sha256=[0-9a-f]{64})"', page).group(1)
    report = client.get(report_url)
    assert report.status_code == 200 and report.mimetype == "application/pdf"
    assert report.headers["X-Content-Type-Options"] == "nosniff"
    assert report.data.startswith(b"%PDF-")
    render_first_page(report.data, tmp_path)
    # another officer cannot fetch this user's report by its hash
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    login(client, "tranthibinh")
    assert client.get(report_url).status_code == 404


def test_a_change_after_signing_is_red_with_the_signed_pages_beside_the_current_ones(
    app: Flask, client: FlaskClient, issued: int, tmp_path: Path
) -> None:
    forged = stamped(current_pdf(app, issued), tmp_path)
    login(client, "nguyenvana")
    page = text(upload(client, forged))
    verdict = re.search(r'data-verdict="(\w+)"', page).group(1)
    assert verdict in ("MODIFIED", "INVALID")
    assert "verdict-banner tone-bad" in page
    assert "sau khi ký" in page  # a reason in Vietnamese
    pairs = re.findall(r'<div class="compare-pair">', page)
    assert len(pairs) == 1  # page 1 changed; the others look as signed
    assert page.count('src="data:image/png;base64,') == 2


def test_not_a_pdf_is_a_damaged_file_in_english_too(client: FlaskClient) -> None:
    login(client, "admin")  # English is remembered for the user: nobody else's pages change
    page = text(upload(client, b"hello, not a PDF", "note.pdf"))
    assert 'data-verdict="MALFORMED"' in page and "Tệp không phải là tài liệu PDF." in page
    client.post("/lang", data={"lang": "en", "csrf_token": csrf_token(client, "/verify"), "next": "/verify"})
    page = text(upload(client, b"hello, not a PDF", "note.pdf"))
    assert "DAMAGED FILE" in page and "The file is not a PDF document." in page


def test_json_api_verifies_an_upload_and_a_stored_document(app: Flask, client: FlaskClient, issued: int) -> None:
    pdf = current_pdf(app, issued)
    login(client, "lequangcuong")
    headers = {"X-CSRFToken": csrf_token(client, "/")}
    raw = client.post("/api/verify", data=pdf, content_type="application/pdf", headers=headers)
    assert raw.status_code == 200 and raw.json["verdict"] == "VALID"
    assert len(raw.json["signatures"]) == 5
    multipart = client.post("/api/verify", data={"file": (io.BytesIO(pdf), "x.pdf")},
                            content_type="multipart/form-data", headers=headers)
    assert multipart.json["file_sha256"] == raw.json["file_sha256"]
    empty = client.post("/api/verify", json={}, headers=headers)
    assert empty.status_code == 400 and empty.json["error"] == "bad_request"
    stored = client.get(f"/api/documents/{issued}/verification")
    assert stored.status_code == 200 and stored.json["verdict"] == "VALID"
    assert client.get("/api/documents/999999/verification").status_code == 404


def test_a_draft_one_may_not_see_is_missing_from_the_api_and_the_reports(app: Flask, client: FlaskClient) -> None:
    document_id = compose(app)  # a draft: only its drafter sees it
    login(client, "tranthibinh")
    assert client.get(f"/api/documents/{document_id}/verification").status_code == 404
    assert client.get(f"/documents/{document_id}/verification.pdf").status_code == 404


def test_document_verification_report_is_an_a4_pdf(app: Flask, client: FlaskClient, issued: int,
                                                   tmp_path: Path) -> None:
    login(client, "nguyenvana")
    response = client.get(f"/documents/{issued}/verification.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert "attachment" in response.headers["Content-Disposition"]
    source = tmp_path / "verification.pdf"
    source.write_bytes(response.data)
    info = subprocess.run(["pdfinfo", str(source)], capture_output=True, text=True, check=True).stdout
    assert "(A4)" in info
    words = subprocess.run(["pdftotext", "-layout", str(source), "-"], capture_output=True, text=True,
                           check=True).stdout
    assert "BÁO CÁO KIỂM TRA CHỮ KÝ SỐ" in words and "HỢP LỆ" in words
    assert "/TTr-" in words  # the document number
    render_first_page(response.data, tmp_path)


def test_public_page_shows_the_verdict_without_login_and_never_the_content(app: Flask, client: FlaskClient,
                                                                          issued: int) -> None:
    code = public_code(app, issued)
    page = text(client.get(f"/v/{code}"))
    assert 'data-verdict="VALID"' in page and "HỢP LỆ" in page
    assert EXAMPLE_MEMO.title not in page and "<img" not in page
    assert 'enctype="multipart/form-data"' in page and 'name="csrf_token"' in page


def test_public_page_verifies_once_per_head_revision(app: Flask, client: FlaskClient, issued: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = verification.verify_document

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(verification, "verify_document", counting)
    monkeypatch.setattr(app.extensions["esign"], "_report_cache", None, raising=False)
    code = public_code(app, issued)
    for _ in range(3):
        assert client.get(f"/v/{code}").status_code == 200
    assert len(calls) == 1


def test_a_citizen_checks_a_copy_on_the_qr_page(app: Flask, client: FlaskClient, issued: int,
                                               tmp_path: Path) -> None:
    pdf = current_pdf(app, issued)
    code = public_code(app, issued)
    same = text(upload(client, pdf, "ban-sao.pdf", path=f"/v/{code}"))
    copy = same[same.index('id="copy-result"'):]
    assert 'data-verdict="VALID"' in copy and "trùng khớp từng byte" in copy
    forged = text(upload(client, stamped(pdf, tmp_path), "ban-sao.pdf", path=f"/v/{code}"))
    copy = forged[forged.index('id="copy-result"'):]
    assert "tone-bad" in copy and "trùng khớp từng byte" not in copy
    assert "<img" not in forged and EXAMPLE_MEMO.title not in forged
    # without the form's CSRF token nothing is checked
    refused = client.post(f"/v/{code}", data={"file": (io.BytesIO(pdf), "x.pdf")},
                          content_type="multipart/form-data")
    assert refused.status_code == 400


def test_pages_allow_scripts_to_reach_the_agent_and_nothing_else(client: FlaskClient) -> None:
    policy = client.get("/login").headers["Content-Security-Policy"]
    assert "connect-src 'self' http://127.0.0.1:9796" in policy
    assert "script-src" not in policy or "'unsafe-inline'" not in policy


@pytest.mark.browser
def test_verify_pages_in_chromium_at_phone_and_desktop_width(app: Flask, issued: int, tmp_path: Path) -> None:
    import os
    import threading

    from playwright.sync_api import expect, sync_playwright
    from werkzeug.serving import make_server

    from tests.web.test_browser import (
        CHROMIUM,
        CHROMIUM_ARGS,
        VIEWPORTS,
        log_in,
        no_sideways_scroll,
    )

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    shots = Path(os.environ.get("ESIGN_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    pdf = current_pdf(app, issued)
    forged = tmp_path / "ban-sao-da-sua.pdf"
    forged.write_bytes(stamped(pdf, tmp_path))
    genuine = tmp_path / "ban-sao.pdf"
    genuine.write_bytes(pdf)
    code = public_code(app, issued)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            for size, viewport in VIEWPORTS.items():
                context = browser.new_context(viewport=viewport, locale="vi-VN")
                page = context.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))  # noqa: B023 - used in this iteration
                # the QR page: anyone, no login; the stored file's verdict, then a copy checked
                page.goto(f"{base}/v/{code}")
                expect(page.locator(".verdict-banner")).to_contain_text("HỢP LỆ")
                assert no_sideways_scroll(page)
                page.screenshot(path=shots / f"{size}-qr-verdict.png", full_page=True)
                page.set_input_files("#file", str(forged))
                with page.expect_navigation():
                    page.click(".check-copy button[type=submit]")
                expect(page.locator("#copy-result .verdict-banner")).to_have_class(re.compile("tone-bad"))
                assert page.locator("img").count() == 0
                assert no_sideways_scroll(page)
                page.locator("#copy-result").scroll_into_view_if_needed()
                page.screenshot(path=shots / f"{size}-qr-copy-modified.png")
                # the auditor's page: the forged copy, with what was signed beside what is there now
                log_in(page, base, "dangthiphuong")
                page.goto(f"{base}/verify")
                page.set_input_files("#file", str(forged))
                with page.expect_navigation():
                    page.click("form.upload-check button[type=submit]")
                expect(page.locator(".result .verdict-banner")).to_have_class(re.compile("tone-bad"))
                expect(page.locator(".compare-pair")).to_have_count(1)
                page.wait_for_function("() => Array.from(document.querySelectorAll('.compare-pair img'))"
                                       ".every(img => img.complete && img.naturalWidth > 0)")
                assert no_sideways_scroll(page)
                page.screenshot(path=shots / f"{size}-verify-modified.png", full_page=True)
                page.set_input_files("#file", str(genuine))
                with page.expect_navigation():
                    page.click("form.upload-check button[type=submit]")
                expect(page.locator(".result .verdict-banner")).to_contain_text("HỢP LỆ")
                assert no_sideways_scroll(page)
                page.locator(".result").scroll_into_view_if_needed()
                page.screenshot(path=shots / f"{size}-verify-valid.png", full_page=True)
                assert errors == []
                context.close()
            browser.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
