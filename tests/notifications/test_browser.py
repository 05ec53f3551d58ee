"""In Debian's Chromium on a phone-sized screen: the inbox shows new work by itself when another
officer sends it (no reload), with a polite announcement; the service worker registers from the
site's root. Delivery through a browser vendor's push service cannot be tested offline: the
subscription itself needs that service, so the page must say clearly that it could not be turned on
(the server side of delivery is tested against a local push service in test_push.py)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from esign.services.context import Context
from tests.notifications.conftest import PASSWORD, assign_memo, open_steps_of

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def server(sqlite_ward: Context) -> Iterator[str]:
    from werkzeug.serving import make_server

    from esign.web import create_app

    httpd = make_server("127.0.0.1", 0, create_app(ctx=sqlite_ward), threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def page(server: str, tmp_path: Path) -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="vi-VN")
        context.grant_permissions(["notifications"], origin=server)
        yield context.new_page()
        browser.close()


def test_the_inbox_shows_new_work_without_a_reload_and_the_service_worker_registers(
        page, server: str, sqlite_ward: Context, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shots = Path(os.environ.get("ESIGN_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.goto(f"{server}/login")
    page.fill("#username", "tranthibinh")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit].btn-primary")
    page.wait_for_url(f"{server}/")
    assert page.locator('[data-live-count="inbox"]').is_hidden()
    page.evaluate("window.__sameDocument = true")

    title = "Về việc lắp đèn chiếu sáng hẻm 12, khu phố 3"
    document_id = assign_memo(sqlite_ward, title, advisers=("tranthibinh",))
    assert open_steps_of(sqlite_ward, "tranthibinh") == 1

    work = page.locator('[data-live-refresh="work"]')
    work.get_by_text(title).wait_for(timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True, "the page was not reloaded"
    announcement = page.locator("#live")
    assert announcement.get_attribute("aria-live") == "polite"
    assert "Bạn có văn bản mới cần xử lý" in announcement.inner_text()
    assert announcement.locator("a").get_attribute("href") == f"/documents/{document_id}"
    assert page.locator('[data-live-count="inbox"]').inner_text() == "1"
    assert "is-new" in (work.locator("[data-live-item]").first.get_attribute("class") or "")
    page.screenshot(path=str(shots / "live-inbox-phone.png"))

    page.goto(f"{server}/notifications")
    page.wait_for_selector('[data-push][data-sw="registered"]', timeout=15_000)
    scope = page.evaluate("navigator.serviceWorker.getRegistration().then(r => r && r.scope)")
    assert scope == f"{server}/"
    enable = page.get_by_role("button", name="Bật thông báo trên điện thoại này")
    assert enable.is_visible()
    enable.click()
    # offline, Chromium cannot reach its vendor's push service: the page says so, nothing is stored
    page.wait_for_selector('[data-push-status="failed"], [data-push-status="on"]', timeout=30_000)
    status = page.locator("[data-push-state]").inner_text()
    page.screenshot(path=str(shots / "push-phone.png"))
    if page.locator('[data-push-status="failed"]').count():
        assert status.startswith("Không bật được thông báo.")
        from esign.services import push
        from tests.notifications.conftest import person

        assert push.subscriptions_of(sqlite_ward, person(sqlite_ward, "tranthibinh")) == []
