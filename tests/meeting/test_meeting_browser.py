"""Meeting mode in headless Chromium at a phone's size: the chair selects three memos,
approves them, reads the code and the countdown, confirms once on the phone page of
esign-remote (another phone-sized page), and watches all three turn "signed"."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from esign.services.context import Context
from tests.meeting.conftest import AT_CHAIR, memo_for_approval, revisions_of, state_of
from tests.remote.conftest import RemoteService, fresh_otp
from tests.web.test_browser import (  # noqa: F401 -- fixtures
    VIEWPORTS,
    browser,
    log_in,
    no_sideways_scroll,
    server,
    shots,
)

pytestmark = pytest.mark.browser

TITLES = (
    "Về việc sửa chữa nhà văn hóa khu phố 3",
    "Về việc lắp đặt đèn chiếu sáng hẻm 12 Nguyễn Huệ",
    "Về việc tổ chức Tết Trung thu cho thiếu nhi phường",
)


@pytest.fixture
def app(sqlite_mctx: Context) -> Iterator[Flask]:
    from esign.web import create_app

    yield create_app(ctx=sqlite_mctx)


def watch_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def test_the_chair_approves_three_memos_with_one_confirmation_on_a_phone(
    sqlite_mctx: Context,
    service: RemoteService,
    server: str,  # noqa: F811
    browser: Any,  # noqa: F811
    shots: Path,  # noqa: F811
    pdf_checks: Any,
) -> None:
    from playwright.sync_api import expect

    ctx = sqlite_mctx
    ids = [memo_for_approval(ctx, t) for t in TITLES]
    desk = browser.new_context(viewport=VIEWPORTS["phone"], locale="vi-VN")
    mobile = browser.new_context(viewport=VIEWPORTS["phone"], locale="vi-VN")
    page = desk.new_page()
    errors = watch_errors(page)
    try:
        log_in(page, server, "nguyenthiquynhtrieu")
        link = page.locator("nav a[href='/meeting/']")
        expect(link).to_contain_text("3")
        link.click()
        page.wait_for_url(f"{server}/meeting/")
        expect(page.locator("li.approval")).to_have_count(3)
        expect(page.locator(".opinions").first).to_contain_text("Ý kiến 1: thống nhất")
        page.locator("details.approval-preview summary").first.click()
        expect(page.locator("details.approval-preview img").first).to_be_visible()
        page.wait_for_function("() => document.querySelector('details[open] img').naturalWidth > 0")
        assert no_sideways_scroll(page)
        page.screenshot(path=shots / "meeting-1-list.png", full_page=True)

        page.check("input[data-select-all]")
        expect(page.locator("button[type=submit].btn-primary")).to_contain_text("(3)")
        page.click("button[type=submit].btn-primary")
        page.wait_for_url(re.compile(r"/meeting/confirm/[^/]+$"))
        code = page.locator("[data-phone-code]").inner_text().strip()
        assert len(code) >= 4
        expect(page.locator(".phone-item")).to_have_count(3)
        expect(page.locator(".phone-item.is-waiting")).to_have_count(3)
        countdown = page.locator("[data-countdown-value]")
        expect(countdown).to_have_text(re.compile(r"^\d+:\d\d$"))
        first = countdown.inner_text()
        page.wait_for_timeout(1500)
        assert countdown.inner_text() != first  # it counts down
        assert no_sideways_scroll(page)
        page.screenshot(path=shots / "meeting-2-waiting.png", full_page=True)
        confirm_url = page.locator("[data-phone-open] a").get_attribute("href")
        assert confirm_url

        phone = mobile.new_page()
        phone.goto(confirm_url)
        for title in TITLES:
            expect(phone.locator("body")).to_contain_text(title)
        expect(phone.locator("body")).to_contain_text(code)
        phone.fill("#pin", "123456")
        phone.fill("#otp", fresh_otp(service))
        phone.screenshot(path=shots / "meeting-3-phone.png", full_page=True)
        phone.click("button[value=confirm]")
        expect(phone.locator("body")).to_contain_text("Đã xác nhận")
        phone.screenshot(path=shots / "meeting-4-phone-done.png", full_page=True)

        expect(page.locator(".phone-item.is-signed")).to_have_count(3, timeout=60_000)
        expect(page.locator("[data-phone-summary]")).to_contain_text("Đã xong")
        expect(page.locator("[data-back]")).to_be_visible()
        page.screenshot(path=shots / "meeting-5-signed.png", full_page=True)
        assert errors == []
    finally:
        desk.close()
        mobile.close()

    from concurrent.futures import ThreadPoolExecutor

    for document_id in ids:
        assert state_of(ctx, document_id) == "issue"
        chain = revisions_of(ctx, document_id)
        assert len(chain) == AT_CHAIR + 1
        # pyHanko runs its own event loop: not in Playwright's thread
        with ThreadPoolExecutor(1) as pool:
            statuses = pool.submit(pdf_checks.pyhanko, chain[-1]).result()
        assert len(statuses) == 3 and all(s.intact and s.valid and s.trusted for s in statuses)


def test_cancel_and_check_now_work_without_scripts(
    sqlite_mctx: Context, server: str, browser: Any, shots: Path  # noqa: F811
) -> None:
    from playwright.sync_api import expect

    ctx = sqlite_mctx
    document_id = memo_for_approval(ctx, TITLES[0])
    desk = browser.new_context(viewport=VIEWPORTS["phone"], locale="vi-VN", java_script_enabled=False)
    page = desk.new_page()
    try:
        log_in(page, server, "nguyenthiquynhtrieu")
        page.goto(f"{server}/meeting/")
        page.check(f"input[name=document][value='{document_id}']")
        page.click("button[type=submit].btn-primary")
        page.wait_for_url(re.compile(r"/meeting/confirm/[^/]+$"))
        expect(page.locator(".phone-item.is-waiting")).to_have_count(1)
        page.click("[data-check-now]")
        expect(page.locator(".phone-item.is-waiting")).to_have_count(1)
        page.click("[data-phone-cancel] button")
        expect(page.locator(".phone-item.is-cancelled")).to_have_count(1)
        expect(page.locator(".flash")).to_contain_text("không có gì được ký")
        page.screenshot(path=shots / "meeting-6-cancelled-nojs.png", full_page=True)
    finally:
        desk.close()
    assert len(revisions_of(ctx, document_id)) == AT_CHAIR and state_of(ctx, document_id) == "approve"


def test_an_officer_signs_with_the_mobile_certificate_and_declines_on_the_phone(
    sqlite_mctx: Context, server: str, browser: Any, shots: Path  # noqa: F811
) -> None:
    """The document page's "Sign with mobile certificate": the live page, then a decline."""
    from playwright.sync_api import expect

    desk = browser.new_context(viewport=VIEWPORTS["phone"], locale="vi-VN")
    mobile = browser.new_context(viewport=VIEWPORTS["phone"], locale="vi-VN")
    page = desk.new_page()
    errors = watch_errors(page)
    try:
        log_in(page, server, "nguyenvana")
        page.goto(f"{server}/documents/new")
        page.fill("#title", TITLES[1])
        page.fill("#addressee", "Ủy ban nhân dân phường Bến Nghé")
        page.fill("#body", "Văn phòng kính trình Ủy ban nhân dân phường xem xét.")
        page.click("form.card button[type=submit]")
        page.wait_for_url(re.compile(r"/documents/\d+$"))
        document_url = page.url
        page.check("input[name=advisers][value=tranthibinh]")
        expect(page.locator("button.btn-mobile")).to_have_text("Ký bằng chứng thư số di động")
        page.click("button.btn-mobile")
        page.wait_for_url(re.compile(r"/meeting/confirm/[^/]+$"))
        expect(page.locator(".phone-item.is-waiting")).to_have_count(1)
        code = page.locator("[data-phone-code]").inner_text().strip()
        phone = mobile.new_page()
        phone.goto(page.locator("[data-phone-open] a").get_attribute("href"))
        expect(phone.locator("body")).to_contain_text(code)
        phone.click("button[value=decline]")
        expect(page.locator(".phone-item.is-declined")).to_have_count(1, timeout=30_000)
        expect(page.locator("[data-phone-summary]")).to_contain_text("Bạn đã từ chối trên điện thoại")
        page.screenshot(path=shots / "mobile-declined.png", full_page=True)
        page.goto(document_url)
        expect(page.locator(".doc-meta .badge").first).to_have_text("Dự thảo")
        expect(page.locator("section.pending")).to_have_count(0)
        assert errors == []
    finally:
        desk.close()
        mobile.close()
