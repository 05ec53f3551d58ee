"""A newcomer's walk: each demo user in turn takes one memo from draft to issued in Chromium."""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path

import pytest

from esign.services.context import Context
from esign.services.demo import EXAMPLE_MEMO

from .test_browser import VIEWPORTS, browser, log_in, log_out, server, shots  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


def sign(page, comment: str = "") -> None:  # type: ignore[no-untyped-def]
    if comment:
        page.locator("form.action-sign textarea").first.fill(comment)
    with page.expect_navigation():
        page.click("form.action-sign button[type=submit]")


def test_each_demo_user_takes_the_memo_to_issued(server: str, browser, shots: Path,  # noqa: F811
                                                sqlite_demo: Context, pdf_checks) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport=VIEWPORTS["phone"], locale="vi-VN")
    page = context.new_page()
    try:
        log_in(page, server, "nguyenvana")
        page.goto(f"{server}/documents/new")
        page.fill("#title", EXAMPLE_MEMO.title)
        page.fill("#addressee", EXAMPLE_MEMO.addressee)
        page.fill("#body", EXAMPLE_MEMO.body)
        page.click("form.card button[type=submit]")
        page.wait_for_url(re.compile(r"/documents/\d+$"))
        document_url = page.url
        page.check("input[name=advisers][value=tranthibinh]")
        page.check("input[name=advisers][value=lequangcuong]")
        sign(page)
        expect(page.locator(".doc-meta .badge").first).to_have_text("Xin ý kiến")
        log_out(page)

        for adviser in ("tranthibinh", "lequangcuong"):
            log_in(page, server, adviser)
            page.locator(".task a").first.click()
            page.wait_for_url(document_url)
            sign(page, "Đồng ý.")
            expect(page.locator(".flash-success")).to_contain_text("Đã ký")
            log_out(page)

        log_in(page, server, "nguyenthiquynhtrieu")
        page.locator(".task a").first.click()
        page.wait_for_url(document_url)
        expect(page.locator(".doc-meta .badge").first).to_have_text("Phê duyệt")
        sign(page)
        expect(page.locator(".flash-success")).to_contain_text("Ký phê duyệt")
        log_out(page)

        log_in(page, server, "hoangvanem")
        page.locator(".task a").first.click()
        page.wait_for_url(document_url)
        sign(page)
        expect(page.locator(".doc-meta .badge").first).to_have_text("Đã phát hành")
        expect(page.locator(".sig-list li")).to_have_count(5)
        page.screenshot(path=shots / "phone-issued.png", full_page=True)

        response = page.request.get(f"{document_url}/pdf")
        assert response.status == 200 and response.headers["content-type"] == "application/pdf"
        issued = response.body()
    finally:
        context.close()

    from concurrent.futures import ThreadPoolExecutor

    from pyhanko.pdf_utils.reader import PdfFileReader

    # Playwright's sync API keeps an event loop on this thread; pyHanko needs its own
    with ThreadPoolExecutor(1) as pool:
        statuses = pool.submit(pdf_checks.pyhanko, issued).result()
    assert len(statuses) == 5 and all(s.intact and s.valid and s.trusted for s in statuses)
    names = [s.field_name for s in PdfFileReader(BytesIO(issued)).embedded_regular_signatures]
    assert names == ["drafter", "adviser_1", "adviser_2", "chair", "seal"]
    report = pdf_checks.pdfsig(issued)
    assert report.count("Signature Validation: Signature is Valid.") == 5, report
