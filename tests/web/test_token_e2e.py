"""The "Ký bằng token" button end to end: Chromium, the app, esign-agent and a SoftHSM2 token.

Nothing is mocked: the app serves on 127.0.0.1 from a thread, esign-agent runs
as its own process over a SoftHSM2 token provisioned from the development PKI
(SOFTHSM2_CONF is set in the agent's environment only: SoftHSM reads it once
per process), and the page talks to the agent from headless Chromium. The
stored PDF is then checked by pyHanko and by poppler's pdfsig.

Page and agent are both on 127.0.0.1, so Chromium's Private/Local Network
Access checks do not apply (a request from a loopback page to a loopback
address stays in the same address space); the agent still answers the PNA
preflight (Access-Control-Allow-Private-Network) for pages served from a
LAN or public address.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from esign.models import Certificate, Document, User
from esign.services.demo import EXAMPLE_MEMO
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORTS, log_in, no_sideways_scroll

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
PIN = "123456"
PIN_VAR = "ESIGN_TEST_AGENT_PIN"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tokens_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("esign_keys_tokens_web", ROOT / "keys" / "tokens.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@dataclass
class World:
    base: str
    app: Flask
    agent_port: int
    tokens: Any
    logs: Path
    agent: subprocess.Popen[bytes] | None = None

    def start_agent(self, token: str, pin: str) -> None:
        """esign-agent on ``token``, for this app's origin only, with ``pin`` from the environment."""
        self.stop_agent()
        env = self.tokens.env()  # SOFTHSM2_CONF for the child only
        env[PIN_VAR] = pin
        log = (self.logs / f"agent-{token}-{time.monotonic_ns()}.log").open("w")
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "esign.agent", "--module", self.tokens.module, "--token", token,
             "--origin", self.base, "--port", str(self.agent_port), "--pin-env", PIN_VAR],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.agent.poll() is None, "esign-agent exited at start"
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.agent_port, timeout=2)
                conn.request("GET", "/status")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("esign-agent did not start within 15 s")

    def stop_agent(self) -> None:
        if self.agent is not None:
            self.agent.terminate()
            try:
                self.agent.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.agent.kill()
                self.agent.wait()
            self.agent = None


@pytest.fixture(scope="module")
def world(dev_pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from werkzeug.serving import make_server

    from esign.services.context import Context
    from esign.services.demo import seed_people
    from esign.services.migrate import upgrade
    from esign.web import create_app
    from tests.conftest import DEMO_PEOPLE, make_settings

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    folder = tmp_path_factory.mktemp("token-e2e")
    tokens = _tokens_module().provision_tokens(dev_pki, folder / "softhsm", ["nguyenvana", "tranthibinh"])
    agent_port = _free_port()
    settings = make_settings(folder, dev_pki, signing={"agent_url": f"http://127.0.0.1:{agent_port}"})
    upgrade(settings)
    ctx = Context.create(settings)
    seed_people(ctx, DEMO_PEOPLE)
    with ctx.db.session() as session:
        # the seeded demo keeps every key in files; here the officer's token is in his hands
        officer = session.scalar(select(User).where(User.username == "nguyenvana"))
        cert = session.scalar(select(Certificate).where(Certificate.user_id == officer.id,
                                                        Certificate.device == "token"))
        cert.backend = "agent"
    app = create_app(ctx=ctx)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, name="esign-token-e2e", daemon=True)
    thread.start()
    running = World(f"http://127.0.0.1:{httpd.server_port}", app, agent_port, tokens, folder)
    try:
        yield running
    finally:
        running.stop_agent()
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)
        ctx.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("ESIGN_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _shoot(page, shots: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    """The page at phone and desktop width (the section with the button in view)."""
    for size in ("phone", "desktop"):
        page.set_viewport_size(VIEWPORTS[size])
        page.locator("#actions").scroll_into_view_if_needed()
        assert no_sideways_scroll(page)
        page.screenshot(path=shots / f"{size}-token-{name}.png")
    page.set_viewport_size(VIEWPORTS["desktop"])


def _click_token(page, code: str | None) -> str:  # type: ignore[no-untyped-def]
    """Press "Ký bằng token" and wait for it to finish; returns the status line."""
    button = page.locator("button.btn-token")
    button.click()
    if code is None:
        return ""
    page.wait_for_function(
        "() => document.querySelector('button.btn-token').getAttribute('data-state') === 'error'", timeout=20000)
    assert button.get_attribute("data-error-code") == code
    return page.locator(".token-status").inner_text()


def test_officer_signs_with_the_usb_token_through_esign_agent(
    world: World, pdf_checks, shots: Path  # type: ignore[no-untyped-def]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport=VIEWPORTS["desktop"], locale="vi-VN")
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            log_in(page, world.base, "nguyenvana")
            page.goto(f"{world.base}/documents/new")
            page.fill("#title", EXAMPLE_MEMO.title)
            page.fill("#addressee", EXAMPLE_MEMO.addressee)
            page.fill("#body", EXAMPLE_MEMO.body)
            page.click("form.card button[type=submit]")
            page.wait_for_url(re.compile(r"/documents/\d+$"))
            document_id = int(page.url.rsplit("/", 1)[1])
            page.check("input[name=advisers][value=tranthibinh]")
            page.check("input[name=advisers][value=lequangcuong]")
            button = page.locator("button.btn-token")
            expect(button).to_have_text("Ký bằng token")
            _shoot(page, shots, "0-ready")

            # nothing listens on the agent's port
            status = _click_token(page, "agent_down")
            assert "Chưa chạy esign-agent" in status
            _shoot(page, shots, "1-agent-down")

            # the agent runs on somebody else's token
            world.start_agent("tranthibinh", PIN)
            status = _click_token(page, "not_yours")
            assert "không phải của bạn" in status
            _shoot(page, shots, "2-not-yours")

            # the PIN typed into the agent is wrong: the agent's sentence reaches the page
            world.start_agent("tranthibinh", "000000")
            status = _click_token(page, "wrong_pin")
            assert "Mã PIN" in status and "không đúng" in status
            _shoot(page, shots, "3-wrong-pin")

            # the officer's own token, the right PIN: signed, and the page shows it
            world.start_agent("nguyenvana", PIN)
            with page.expect_navigation(timeout=30000):
                _click_token(page, None)
            expect(page.locator(".doc-meta .badge").first).to_have_text("Xin ý kiến")
            expect(page.locator(".sig-list li")).to_have_count(1)
            expect(page.locator(".sig-list li").first).to_contain_text("Nguyễn Văn An")
            assert page.locator("button.btn-token").count() == 0  # nothing left to sign here
            page.locator(".signatures").scroll_into_view_if_needed()
            for size in ("phone", "desktop"):
                page.set_viewport_size(VIEWPORTS[size])
                page.screenshot(path=shots / f"{size}-token-4-signed.png")
            assert errors == []
        finally:
            context.close()
            browser.close()
            world.stop_agent()

    ctx = world.app.extensions["esign"]
    with ctx.db.session() as session:
        document = session.get(Document, document_id)
        assert document.workflow.state == "advise"
    from esign.services import documents

    with ctx.db.session() as session:
        officer = session.scalar(select(User).where(User.username == "nguyenvana"))
    pdf = documents.current_pdf(ctx, officer, document_id)[2]
    statuses = pdf_checks.pyhanko(pdf)
    assert len(statuses) == 1
    assert statuses[0].bottom_line, statuses[0].pretty_print_details()
    assert "Nguyễn Văn An" in statuses[0].signing_cert.subject.human_friendly
    assert "Signature is Valid" in pdf_checks.pdfsig(pdf)
