"""Fixtures of the remote signing tests: esign-remote as a real process over SoftHSM2
tokens provisioned into a temporary folder, certomancer's dummy CSC server in a thread,
and a phone that fetches and posts the confirmation page over HTTP."""

from __future__ import annotations

import asyncio
import base64
import http.cookiejar
import json
import re
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest
from cryptography import x509 as crypto_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from esign.signing.backend import CertificateBundle
from tests.tokens.conftest import MODULE, free_port, load_tokens_module

ROOT = Path(__file__).resolve().parents[2]
PIN = "123456"
CLIENT_ID = "esign"
CLIENT_SECRET = "client-secret-for-tests-only"
#: the chair confirms with a TOTP code as well as the PIN
TOTP_USER = "nguyenthiquynhtrieu"
# fixed: pytest imports this conftest under two module names, each would draw its own
TOTP_SECRET = "JBSWY3DPEHPK3PXPKRXGK43UEBZWK4TF"
CREDENTIALS = {
    # credential id: (token label, key label, owner)
    "nguyenvana-mobile": ("nguyenvana-mobile", "nguyenvana-mobile", "nguyenvana"),
    "nguyenthiquynhtrieu-mobile": (
        "nguyenthiquynhtrieu-mobile",
        "nguyenthiquynhtrieu-mobile",
        "nguyenthiquynhtrieu",
    ),
    # an RSA key too, so that both mechanisms go through the service
    "tranthibinh-rsa": ("tranthibinh-rsa", "tranthibinh-token", "tranthibinh"),
}


def fresh_otp(service: RemoteService) -> str:
    """The chair's one-time code for a time step the service has not accepted yet.

    The service takes a step once (replay protection) and allows one step of drift, while tests
    confirm more often than every 30 s: use the current step, else the next one, else wait."""
    totp = pyotp.TOTP(TOTP_SECRET)
    with closing(sqlite3.connect(service.config.parent / "remote.db")) as db:
        row = db.execute(
            "SELECT last_step FROM totp_steps WHERE username = ?", (TOTP_USER,)
        ).fetchone()
    last = row[0] if row else -1
    while (now := int(time.time()) // totp.interval) + 1 <= last:
        time.sleep(totp.interval - time.time() % totp.interval + 0.05)
    return totp.at(max(now, last + 1) * totp.interval)


@pytest.fixture(scope="session")
def remote_tokens(dev_pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One token per credential; its user PIN is the officer's PIN."""
    if not Path(MODULE).exists():
        pytest.fail(f"SoftHSM2 is not installed ({MODULE}); apt-get install softhsm2")
    extra: dict[str, list[str]] = {}
    for token, key, _ in CREDENTIALS.values():
        extra.setdefault(token, []).append(key)
    return load_tokens_module().provision_tokens(
        dev_pki, tmp_path_factory.mktemp("remote-softhsm"), [], extra_credentials=extra
    )


def write_config(
    folder: Path,
    conf: Path,
    *,
    ttl: int = 300,
    db: Path | None = None,
    settings: dict[str, int] | None = None,
) -> Path:
    lines = [
        "[service]",
        f'database = "{db or folder / "remote.db"}"',
        'public_url = "http://127.0.0.1:1"',  # replaced per process below
        'secret_key_env = "TEST_REMOTE_SECRET_KEY"',
        f"confirm_ttl_seconds = {ttl}",
        *(f"{key} = {value}" for key, value in (settings or {}).items()),
        "",
        "[hsm]",
        f'module = "{MODULE}"',
        f'softhsm_conf = "{conf}"',
        "",
        "[clients.esign]",
        'secret_env = "TEST_REMOTE_CLIENT_SECRET"',
        "",
        f"[users.{TOTP_USER}]",
        'totp_secret_env = "TEST_REMOTE_TOTP"',
        "",
    ]
    for cred, (token, key, owner) in CREDENTIALS.items():
        lines += [
            f'[credentials."{cred}"]',
            f'token = "{token}"',
            f'key = "{key}"',
            f'owner = "{owner}"',
            "",
        ]
    path = folder / f"remote-{ttl}.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@dataclass
class RemoteService:
    """esign-remote running as a child process."""

    config: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RemoteService:
        text = re.sub(
            r'public_url = ".*"', f'public_url = "{self.url}"', self.config.read_text("utf-8")
        )
        self.config.write_text(text, encoding="utf-8")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "esign.remote",
                    "--config",
                    str(self.config),
                    "--port",
                    str(self.port),
                ],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"esign-remote exited: {self.log.read_text()}")
            try:
                status, _ = call(self.url, "info", {})
                if status == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("esign-remote did not start within 20 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def service_env(setup: Any) -> dict[str, str]:
    env = setup.env()
    env.update(
        TEST_REMOTE_SECRET_KEY="a-test-secret-key-of-some-length",
        TEST_REMOTE_CLIENT_SECRET=CLIENT_SECRET,
        TEST_REMOTE_TOTP=TOTP_SECRET,
    )
    return env


def start_service(
    setup: Any,
    folder: Path,
    *,
    ttl: int = 300,
    db: Path | None = None,
    port: int | None = None,
    settings: dict[str, int] | None = None,
) -> RemoteService:
    folder.mkdir(parents=True, exist_ok=True)
    config = write_config(folder, setup.conf, ttl=ttl, db=db, settings=settings)
    service = RemoteService(
        config, port or free_port(), folder / "service.log", env=service_env(setup)
    )
    return service.start()


@pytest.fixture(scope="module")
def service(
    remote_tokens: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RemoteService]:
    running = start_service(remote_tokens, tmp_path_factory.mktemp("remote"))
    yield running
    running.stop()


# --- plain HTTP -------------------------------------------------------------------------


def call(
    base: str,
    endpoint: str,
    body: dict[str, Any],
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        f"{base}/csc/v1/{endpoint}", data=json.dumps(body).encode(), headers=sent, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
        e.close()
    return status, (json.loads(raw) if raw else None)


def login(base: str, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    status, payload = call(base, "auth/login", {}, headers={"Authorization": f"Basic {basic}"})
    assert status == 200, payload
    return str(payload["access_token"])


class Phone:
    """The officer's phone: a browser with cookies, no scripts."""

    def __init__(self) -> None:
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, url: str) -> tuple[int, dict[str, str], str]:
        try:
            with self.opener.open(url, timeout=10) as r:
                return r.status, dict(r.headers), r.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            with e:
                return e.code, dict(e.headers), e.read().decode("utf-8")

    def post(self, url: str, form: dict[str, str]) -> tuple[int, str]:
        data = urllib.parse.urlencode(form).encode()
        try:
            with self.opener.open(url, data=data, timeout=20) as r:
                return r.status, r.read().decode("utf-8")
        except urllib.error.HTTPError as e:
            with e:
                return e.code, e.read().decode("utf-8")

    def answer(
        self, url: str, action: str = "confirm", pin: str = PIN, otp: str | None = None
    ) -> tuple[int, str]:
        """Open the page, then press a button (with the PIN, and the OTP when asked)."""
        status, _, page = self.get(url)
        assert status == 200, page
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token is not None, page
        form = {"csrf_token": token.group(1), "action": action, "pin": pin}
        if otp is not None:
            form["otp"] = otp
        return self.post(url, form)


@pytest.fixture
def phone() -> Phone:
    return Phone()


def confirm_url(service: RemoteService, ref: str) -> str:
    return f"{service.url}/confirm/{ref.removeprefix('csc1:').split('#')[0]}"


def verify_value(bundle: CertificateBundle, tbs: bytes, value: bytes) -> None:
    """Raises InvalidSignature unless ``value`` is the certificate's signature of ``tbs``."""
    key = crypto_x509.load_der_x509_certificate(bundle.cert.dump()).public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(value, tbs, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(key, rsa.RSAPublicKey)
        key.verify(value, tbs, padding.PKCS1v15(), hashes.SHA256())


# --- certomancer's dummy CSC server ------------------------------------------------------


@dataclass
class DummyCsc:
    url: str
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    runner: Any


@pytest.fixture(scope="module")
def dummy_csc(dev_pki: Path) -> Iterator[DummyCsc]:
    """certomancer-csc-dummy on the test PKI's certomancer configuration, in a thread."""
    from aiohttp import web
    from certomancer.registry import CertomancerConfig
    from csc_dummy.csc_dummy_server import CSCWithCertomancer, DummyServiceParams

    config = CertomancerConfig.from_file(str(dev_pki / "certomancer.yml"))
    with warnings.catch_warnings():
        # the demo server keys its aiohttp app with strings, which aiohttp 3.10+ warns about
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        csc = CSCWithCertomancer(
            config, service_params=DummyServiceParams(hash_pinning_required=True)
        )
    csc.register_routes()
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(csc.app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield DummyCsc(f"http://127.0.0.1:{port}", loop, thread, runner)
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()
