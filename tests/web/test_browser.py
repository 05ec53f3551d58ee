"""The web app in Debian's Chromium (headless), served on 127.0.0.1 by werkzeug in a thread.

Screenshots at phone (390×844) and desktop (1280×800) sizes go to a temporary
folder, or to $ESIGN_SCREENSHOTS when set, for people to look at.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from esign.services.demo import DEMO_PASSWORD, EXAMPLE_MEMO, load_people
from tests.conftest import DEMO_PEOPLE

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 800}}


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    from werkzeug.serving import make_server

    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, name="esign-test-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ESIGN_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def log_in(page, base: str, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", DEMO_PASSWORD)
    page.click("button[type=submit].btn-primary")
    page.wait_for_url(f"{base}/")


def log_out(page) -> None:  # type: ignore[no-untyped-def]
    page.click("form.logout button")
    page.wait_for_url(re.compile(r"/login$"))


def images_loaded(page) -> bool:  # type: ignore[no-untyped-def]
    return page.evaluate(
        "() => Array.from(document.querySelectorAll('.page-image img'))"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )


def no_sideways_scroll(page) -> bool:  # type: ignore[no-untyped-def]
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("size", sorted(VIEWPORTS))
def test_officer_composes_signs_and_adviser_advises_in_chromium(
    size: str, server: str, browser, shots: Path  # type: ignore[no-untyped-def]
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport=VIEWPORTS[size], locale="vi-VN")
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{server}/login")
        expect(page.locator("h1.product")).to_have_text("esign — Ký số văn bản")
        page.screenshot(path=shots / f"{size}-1-login.png")

        log_in(page, server, "nguyenvana")
        expect(page.locator("h1")).to_contain_text("Việc cần xử lý")
        assert no_sideways_scroll(page)
        page.screenshot(path=shots / f"{size}-2-inbox-empty.png")

        # compose a memo through the form
        page.goto(f"{server}/documents/new")
        page.fill("#title", EXAMPLE_MEMO.title)
        page.fill("#addressee", EXAMPLE_MEMO.addressee)
        page.fill("#body", EXAMPLE_MEMO.body)
        page.fill("#recipients", "Như trên;\nLưu: VT, VP.")
        assert no_sideways_scroll(page)
        page.screenshot(path=shots / f"{size}-3-compose.png", full_page=True)
        page.click("form.card button[type=submit]")
        page.wait_for_url(re.compile(r"/documents/\d+$"))
        document_url = page.url

        # the document page: previews rendered by the server, the drafter's action
        expect(page.locator(".page-image img").first).to_be_visible()
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.page-image img'))"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
        assert images_loaded(page)
        assert page.locator("iframe, embed, object").count() == 0
        expect(page.locator(".doc-meta .badge").first).to_have_text("Dự thảo")
        assert no_sideways_scroll(page)
        page.screenshot(path=shots / f"{size}-4-document-draft.png")
        page.screenshot(path=shots / f"{size}-4-document-draft-full.png", full_page=True)

        # the button of a slow action shows a spinner and cannot be pressed twice
        sign_form = page.locator("form.action-sign")
        page.evaluate("() => document.querySelector('form.action-sign')"
                      ".addEventListener('submit', e => e.preventDefault(), {once: true})")
        sign_form.locator("button[type=submit]").click()
        expect(sign_form.locator("button[type=submit]")).to_be_disabled()
        expect(sign_form.locator("button[type=submit]")).to_have_class(re.compile("is-busy"))
        expect(sign_form.locator("button[type=submit]")).to_have_text("Đang ký…")
        page.screenshot(path=shots / f"{size}-5-signing-spinner.png")

        page.goto(document_url)
        page.check("input[name=advisers][value=tranthibinh]")
        page.check("input[name=advisers][value=lequangcuong]")
        with page.expect_navigation():
            page.click("form.action-sign button[type=submit]")
        expect(page.locator(".flash-success")).to_contain_text("Đã ký: Ký và gửi xin ý kiến.")
        expect(page.locator(".doc-meta .badge").first).to_have_text("Xin ý kiến")
        expect(page.locator(".sig-list li")).to_have_count(1)
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.page-image img'))"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
        page.screenshot(path=shots / f"{size}-6-document-submitted.png", full_page=True)
        log_out(page)

        # an adviser finds it in the inbox, with its deadline, and signs advice with a comment
        log_in(page, server, "tranthibinh")
        task = page.locator(".task").first
        expect(task).to_contain_text(EXAMPLE_MEMO.title)
        expect(task.locator(".due")).to_contain_text(re.compile(r"\d\d/\d\d/\d{4} \d\d:\d\d"))
        page.screenshot(path=shots / f"{size}-7-inbox-adviser.png")
        task.locator("a").click()
        page.wait_for_url(document_url)
        page.fill("#comment-advise", "Đồng ý với nội dung tờ trình.")
        page.screenshot(path=shots / f"{size}-8-document-advise.png")
        with page.expect_navigation():
            page.click("form.action-sign button[type=submit]")
        expect(page.locator(".flash-success")).to_contain_text("Đã ký: Ký cho ý kiến.")
        expect(page.locator(".timeline")).to_contain_text("Đồng ý với nội dung tờ trình.")

        # English on request
        with page.expect_navigation():
            page.click("form.lang button[value=en]")
        expect(page.locator(".timeline h2")).to_have_text("History")
        page.screenshot(path=shots / f"{size}-9-document-english.png")

        # the public page behind the QR code shows signers, never the content
        page.click(".info a[href^='/v/']")
        page.wait_for_url(re.compile(r"/v/"))
        expect(page.locator("body")).not_to_contain_text(EXAMPLE_MEMO.title)
        assert page.locator("img").count() == 0
        expect(page.locator(".sig-list li")).to_have_count(2)
        page.screenshot(path=shots / f"{size}-10-public.png", full_page=True)
        assert errors == []
    finally:
        context.close()


def test_admin_pages_in_chromium(server: str, browser, shots: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    for size, viewport in VIEWPORTS.items():
        context = browser.new_context(viewport=viewport, locale="vi-VN")
        page = context.new_page()
        try:
            log_in(page, server, "admin")
            page.goto(f"{server}/admin/")
            expect(page.locator("table.list tbody tr")).to_have_count(len(load_people(DEMO_PEOPLE)))
            assert no_sideways_scroll(page)
            page.screenshot(path=shots / f"{size}-admin-users.png", full_page=True)
            page.click("text=Nguyễn Văn An")
            expect(page.locator("h1")).to_contain_text("Nguyễn Văn An")
            expect(page.locator(".certs li")).to_have_count(2)
            assert no_sideways_scroll(page)
            page.screenshot(path=shots / f"{size}-admin-user.png", full_page=True)
        finally:
            context.close()
