"""The report page, its CSV and PDF, escalation from the page, notifications; and the page in Chromium."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from esign.models import StepRecord
from esign.services import reminders
from esign.services.context import Context
from tests.web.conftest import csrf_token, login

from .conftest import PASSWORD, open_memo
from .generate import generate_year

NOW = datetime(2026, 12, 31, 8, 0, tzinfo=UTC)
YEAR = "?from=01/01/2026&to=31/12/2026"


@pytest.fixture
def world(sqlite_ward: Context) -> Context:
    """A year of 600 generated documents, and a memo of 21/12 still in draft, now overdue."""
    ctx = sqlite_ward
    with ctx.db.session() as session:
        from esign.models import Unit

        unit_id = session.scalar(select(Unit.id))
    generate_year(ctx, unit_id, 600, now=NOW, seed=11)
    ctx.clock = lambda: datetime(2026, 12, 21, 2, 0, tzinfo=UTC)
    open_memo(ctx, "Về việc tổ chức Tết Nguyên Đán 2027")
    ctx.clock = lambda: NOW
    return ctx


@pytest.fixture
def app(world: Context) -> Flask:
    from esign.web import create_app

    return create_app(ctx=world)


def client_as(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    login(client, username, PASSWORD)
    return client


def _user(ctx: Context, username: str):  # type: ignore[no-untyped-def]
    from esign.models import User

    with ctx.db.session() as session:
        return session.scalar(select(User).where(User.username == username))


def test_the_chair_reads_the_report_with_vietnamese_numbers_and_svg_charts(app: Flask, world: Context) -> None:
    from esign.services import reports

    expected = reports.unit_report(world, _user(world, "nguyenthiquynhtrieu"), *[
        reports.parse_date(d) for d in ("01/01/2026", "31/12/2026")])
    client = client_as(app, "nguyenthiquynhtrieu")
    response = client.get("/reports" + YEAR)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    assert " style=" not in html and "<script>" not in html
    assert f'id="fig-handled">{reports.vn_number(expected.handled)}<' in html
    assert f"({expected.on_time_rate})" in html
    assert re.search(r'id="fig-received">601<', html)
    assert html.count("<rect ") == len(expected.steps) + 12  # a bar per step, a bar per month
    assert "31/12/2026" in html and "01/01/2026" in html
    assert "Về việc tổ chức Tết Nguyên Đán 2027" in html  # overdue now, with its escalate button
    assert 'action="/reports/escalate"' in html
    assert client.get("/reports?from=31/12/2026&to=01/01/2026").status_code == 400
    assert client.get("/reports?from=hôm qua").status_code == 400


def test_officers_and_advisers_have_no_report(app: Flask) -> None:
    for username in ("nguyenvana", "tranthibinh"):
        client = client_as(app, username)
        assert client.get("/reports").status_code == 403
        assert client.get("/reports/report.csv").status_code == 403
        assert 'href="/reports"' not in client.get("/").get_data(as_text=True)
    assert 'href="/reports"' in client_as(app, "hoangvanem").get("/").get_data(as_text=True)


def test_csv_export_for_spreadsheets_in_vietnamese(app: Flask, world: Context) -> None:
    from esign.services import reports

    expected = reports.unit_report(world, _user(world, "hoangvanem"), reports.parse_date("01/01/2026"),
                                   reports.parse_date("31/12/2026"))
    response = client_as(app, "hoangvanem").get("/reports/report.csv" + YEAR)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment; filename=bao-cao-20260101-20261231.csv" == response.headers["Content-Disposition"]
    text = response.get_data().decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:]), delimiter=";"))
    figures = {r[0]: r[1] for r in rows if len(r) == 2}
    assert figures["Đã xử lý"] == str(expected.handled)
    assert figures["Đúng hạn"] == str(expected.on_time)
    assert figures["Quá hạn"] == str(expected.overdue)
    assert ["Kỳ báo cáo", "01/01/2026", "31/12/2026"] in rows
    months = [r for r in rows if len(r) == 4 and re.fullmatch(r"\d\d/2026", r[0])]
    assert len(months) == 12 and all("," in r[3] or r[3] == "" for r in months)


def test_pdf_report_renders_with_poppler(app: Flask, tmp_path: Path) -> None:
    response = client_as(app, "nguyenthiquynhtrieu").get("/reports/report.pdf" + YEAR)
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(response.get_data())
    out = Path(os.environ.get("ESIGN_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-png", "-r", "80", str(pdf), str(out / "report-pdf")], check=True, timeout=60)
    pages = sorted(out.glob("report-pdf*.png"))
    assert pages and all(p.stat().st_size > 20_000 for p in pages[:1])
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True,
                          timeout=60).stdout
    assert "BÁO CÁO TÌNH HÌNH XỬ LÝ VĂN BẢN" in text
    assert "Từ ngày 01/01/2026 đến ngày 31/12/2026" in text
    assert "Tỷ lệ đúng hạn theo tháng" in text and "Thời gian xử lý trung bình mỗi bước" in text
    assert re.search(r"Tỷ lệ giải quyết đúng hạn: [\d.]+/[\d.]+ \(\d+(,\d)? %\)", text)


def test_the_chair_escalates_from_the_report_page(app: Flask, world: Context) -> None:
    with world.db.session() as session:
        step_id = session.scalar(select(StepRecord.id).where(StepRecord.status == "open",
                                                             StepRecord.due_at < NOW).order_by(StepRecord.due_at))
    client = client_as(app, "nguyenthiquynhtrieu")
    token = csrf_token(client, "/reports")
    response = client.post("/reports/escalate", data={"csrf_token": token, "step_id": step_id,
                                                      "period_from": "01/01/2026", "period_to": "31/12/2026"})
    assert response.status_code == 302 and "from=01/01/2026" in response.headers["Location"]
    with world.db.session() as session:
        assert session.get(StepRecord, step_id).status == "reassigned"
    assert "Đã chuyển bước quá hạn" in client.get(response.headers["Location"]).get_data(as_text=True)
    # a second press finds the step handed over already: a message, not an error page
    again = client.post("/reports/escalate", data={"csrf_token": token, "step_id": step_id})
    assert again.status_code == 302
    assert "Bước này không còn mở" in client.get(again.headers["Location"]).get_data(as_text=True)


def test_notifications_page_lists_reminders_and_marks_them_read(app: Flask, world: Context, tmp_path: Path) -> None:
    settings = reminders.ReminderSettings(smtp=reminders.SmtpSettings(sink_dir=tmp_path / "mail"))
    run = reminders.send_reminders(world, settings=settings)
    assert run.overdue > 0
    client = client_as(app, "nguyenvana")
    home = client.get("/").get_data(as_text=True)
    assert re.search(r'Thông báo <span class="count"[^>]*>\d+</span>', home)
    page = client.get("/notifications").get_data(as_text=True)
    assert "Về việc tổ chức Tết Nguyên Đán 2027" in page and "Quá hạn" in page
    token = csrf_token(client, "/notifications")
    assert client.post("/notifications/read", data={"csrf_token": token}).status_code == 302
    assert reminders.unread_count(world, _user(world, "nguyenvana")) == 0


# --- Chromium ----------------------------------------------------------------------------------


from tests.web.test_browser import server  # noqa: F401 - the shared live-server fixture


@pytest.mark.browser
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_report_page_and_charts_in_chromium(server: str, size: str, tmp_path: Path) -> None:  # noqa: F811
    from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORTS

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("ESIGN_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport=VIEWPORTS[size], locale="vi-VN").new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server}/login")
            page.fill("#username", "nguyenthiquynhtrieu")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit].btn-primary")
            page.wait_for_url(f"{server}/")
            page.click("nav a[href='/reports']")
            page.fill("#from", "01/01/2026")
            page.fill("#to", "31/12/2026")
            page.click("form.report-period button[type=submit]")
            page.wait_for_url(re.compile(r"/reports\?from="))
            expect(page.locator("h1")).to_contain_text("Báo cáo")
            for chart in ("#chart-steps", "#chart-months"):
                svg = page.locator(f"{chart} svg")
                expect(svg).to_be_visible()
                box = svg.bounding_box()
                assert box and box["width"] > 250 and box["height"] > 100
                heights = page.eval_on_selector_all(f"{chart} rect",
                                                    "rects => rects.map(r => r.getBoundingClientRect().height)")
                assert heights and max(heights) > 20
            assert page.locator("#chart-months rect").count() == 12
            expect(page.locator("#fig-rate")).to_contain_text("%")
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
            page.screenshot(path=shots / f"report-{size}.png", full_page=True)
            page.screenshot(path=shots / f"report-{size}-top.png")
            with page.expect_download() as download:
                page.click("a[href^='/reports/report.csv']")
            assert download.value.suggested_filename == "bao-cao-20260101-20261231.csv"
            assert errors == []
        finally:
            browser.close()
