"""No secret is ever stored or logged: a full run, then a scan of the logs, the database and the blob store.

Every secret this test uses has a fresh random value, so finding it anywhere is
a leak and never a coincidence: each user's password, a wrong password typed at
sign-in and at re-authentication, the token's PIN and a wrong PIN, the
passphrase of the development key files, the app's secret key, a TOTP secret
and the remote signing service's client secret. The run goes through the web
app at DEBUG (every logger, SQL statements and their parameters included) and
through esign-agent over a SoftHSM2 token; then every column of every row of
every table, every file of the blob store and previews, and every log are
searched for each secret, as text and in base64.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from flask.testing import FlaskClient
from sqlalchemy import MetaData, select

from esign.models import Certificate, User
from esign.services import users
from esign.services.context import Context
from esign.services.demo import EXAMPLE_MEMO, seed_people
from esign.services.migrate import upgrade
from esign.web.auth import AUTH_AT, PENDING_TOTP, REAUTH_FIELD
from tests.conftest import DEMO_PEOPLE, make_settings
from tests.tokens.conftest import free_port, load_tokens_module

from .conftest import age_session, csrf_token, state_of

ORIGIN = "http://127.0.0.1:5000"
PEOPLE = ("nguyenvana", "tranthibinh", "lequangcuong", "nguyenthiquynhtrieu", "hoangvanem")
STALE = 6 * 60


def _random(prefix: str) -> str:
    return f"{prefix}-{secrets.token_urlsafe(18)}"


@pytest.fixture
def secret_values(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {f"password of {name}": _random("pw") for name in PEOPLE}
    values.update({
        "wrong password at sign-in": _random("wrongpw"),
        "wrong password at re-authentication": _random("wrongre"),
        "token PIN": str(secrets.randbelow(10**10)).zfill(10),
        "wrong token PIN": str(secrets.randbelow(10**10)).zfill(10),
        "softkey passphrase": _random("pass"),
        "app secret key": secrets.token_urlsafe(48),
        "CSC client secret": _random("csc"),
    })
    monkeypatch.setenv("SCAN_SOFTKEY_PASSPHRASE", values["softkey passphrase"])
    monkeypatch.setenv("SCAN_SECRET_KEY", values["app secret key"])
    monkeypatch.setenv("SCAN_CSC_CLIENT_SECRET", values["CSC client secret"])
    return values


def _rekey_pki(source: Path, target: Path, passphrase: str) -> Path:
    """A copy of the development PKI whose PKCS#12 files open with ``passphrase`` only."""
    shutil.copytree(source, target)
    for p12 in target.glob("*.p12"):
        key, cert, chain = pkcs12.load_key_and_certificates(p12.read_bytes(), b"esign-dev")
        p12.write_bytes(pkcs12.serialize_key_and_certificates(
            p12.stem.encode(), key, cert, chain, BestAvailableEncryption(passphrase.encode())))
    return target


@pytest.fixture
def debug_log(tmp_path: Path) -> Iterator[Path]:
    """Every logger at DEBUG into one file for the test's duration."""
    path = tmp_path / "debug.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    saved = root.level, {name: logging.getLogger(name).level for name in ("werkzeug", "sqlalchemy.engine")}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in saved[1]:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield path
    root.removeHandler(handler)
    handler.close()
    root.setLevel(saved[0])
    for name, level in saved[1].items():
        logging.getLogger(name).setLevel(level)


class Agent:
    """esign-agent as its own process over a SoftHSM2 token, its output in a log file."""

    def __init__(self, tokens: object, port: int, logs: Path) -> None:
        self.tokens, self.port, self.logs = tokens, port, logs
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, token: str, pin: str) -> None:
        self.stop()
        env = self.tokens.env()  # type: ignore[attr-defined]
        env["SCAN_AGENT_PIN"] = pin
        with (self.logs / f"agent-{time.monotonic_ns()}.log").open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "esign.agent", "--module", self.tokens.module,  # type: ignore[attr-defined]
                 "--token", token, "--origin", ORIGIN, "--port", str(self.port), "--pin-env", "SCAN_AGENT_PIN"],
                env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "esign-agent exited at start"
            try:
                if self.call("GET", "/status")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("esign-agent did not start")

    def call(self, method: str, path: str, body: dict[str, object] | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            headers = {"Origin": ORIGIN, "Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


def _login(app, username: str, password: str) -> FlaskClient:  # type: ignore[no-untyped-def]
    client = app.test_client()
    token = csrf_token(client)
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return client


def _sign(client: FlaskClient, document_id: int, **fields: object) -> object:
    token = csrf_token(client, f"/documents/{document_id}")
    return client.post(f"/documents/{document_id}/sign", data={"csrf_token": token, **fields})


def _variants(value: str) -> list[bytes]:
    raw = value.encode()
    return [raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw).rstrip(b"=")]


def _find(secrets_: dict[str, str], name: str, data: bytes) -> list[str]:
    return [f"{what} in {name}" for what, value in secrets_.items()
            if any(v in data for v in _variants(value))]


def _scan_database(ctx: Context, secrets_: dict[str, str]) -> tuple[list[str], int]:
    found, cells = [], 0
    metadata = MetaData()
    with ctx.db.engine.connect() as conn:
        metadata.reflect(conn)
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for column, value in zip(table.columns, row, strict=True):
                    if value is None:
                        continue
                    data = value if isinstance(value, bytes) else str(value).encode()
                    cells += 1
                    found += _find(secrets_, f"{table.name}.{column.name}", bytes(data))
    return found, cells


def test_no_secret_is_logged_or_stored_after_a_full_run(
        tmp_path: Path, dev_pki: Path, db_url: str, secret_values: dict[str, str], debug_log: Path) -> None:
    from esign.web import create_app

    pki = _rekey_pki(dev_pki, tmp_path / "pki", secret_values["softkey passphrase"])
    tokens = load_tokens_module().provision_tokens(dev_pki, tmp_path / "softhsm", ["tranthibinh"],
                                                    user_pin=secret_values["token PIN"])
    agent = Agent(tokens, free_port(), tmp_path)
    settings = make_settings(
        tmp_path, pki, db_url,
        app={"secret_key_env": "SCAN_SECRET_KEY"},
        signing={"agent_url": f"http://127.0.0.1:{agent.port}"},
        csc={"client_secret_env": "SCAN_CSC_CLIENT_SECRET"},
    ).replace(pki={"softkey_passphrase_env": "SCAN_SOFTKEY_PASSPHRASE"})
    upgrade(settings)
    ctx = Context.create(settings)
    try:
        seed_people(ctx, DEMO_PEOPLE)
        with ctx.db.session() as session:
            for name in PEOPLE:
                users.set_password(session, None, users.get_user(session, name), secret_values[f"password of {name}"])
            adviser = users.get_user(session, "tranthibinh")
            # this adviser's token is in her hands: it signs through esign-agent
            session.scalar(select(Certificate).where(Certificate.user_id == adviser.id,
                                                     Certificate.device == "token")).backend = "agent"
        app = create_app(ctx=ctx)
        assert app.secret_key == secret_values["app secret key"]
        pw = {name: secret_values[f"password of {name}"] for name in PEOPLE}

        # the officer mistypes the password once, then composes and submits to two advisers
        client = app.test_client()
        token = csrf_token(client)
        assert client.post("/login", data={"username": "nguyenvana", "csrf_token": token,
                                           "password": secret_values["wrong password at sign-in"]}).status_code == 401
        officer = _login(app, "nguyenvana", pw["nguyenvana"])
        token = csrf_token(officer, "/documents/new")
        made = officer.post("/documents/new", data={
            "csrf_token": token, "doc_type": "TTr", "title": EXAMPLE_MEMO.title, "addressee": EXAMPLE_MEMO.addressee,
            "body": EXAMPLE_MEMO.body, "recipients": "\n".join(EXAMPLE_MEMO.recipients)})
        assert made.status_code == 302
        document_id = int(made.headers["Location"].rstrip("/").rsplit("/", 1)[1])
        assert _sign(officer, document_id, action="submit",
                     advisers=["tranthibinh", "lequangcuong"]).status_code == 302  # type: ignore[attr-defined]
        assert state_of(ctx, document_id) == "advise"

        # adviser 1 signs with her USB token through esign-agent; first with a wrong PIN typed into the agent
        adviser1 = _login(app, "tranthibinh", pw["tranthibinh"])
        token = csrf_token(adviser1, f"/documents/{document_id}")
        agent.start("tranthibinh", secret_values["wrong token PIN"])
        status, body = agent.call("GET", "/status")
        assert body["pin"] == "wrong"
        agent.start("tranthibinh", secret_values["token PIN"])
        status, listing = agent.call("GET", "/certificates")
        cert = next(c for c in listing["certificates"] if c["label"] == "tranthibinh-token")
        prepared = adviser1.post(f"/api/documents/{document_id}/signature-requests",
                                 json={"action": "advise", "device": "token", "comment": "Đồng ý."},
                                 headers={"X-CSRFToken": token})
        assert prepared.status_code == 201, prepared.get_data(as_text=True)
        request = prepared.get_json()
        status, signed = agent.call("POST", "/sign", {
            "credential": cert["label"], "tbs_b64": request["tbs"], "md_algorithm": request["md_algorithm"],
            "mechanism": request["mechanism"], "certificate_sha256": cert["sha256"]})
        assert status == 200, signed
        done = adviser1.post(f"/api/signature-requests/{request['id']}/complete",
                             json={"signature": signed["signature_b64"]}, headers={"X-CSRFToken": token})
        assert done.status_code == 200 and done.get_json()["status"] == "completed"
        agent.stop()

        # adviser 2 comes back after a while: re-authentication, once wrong, then right; the softkey signs
        adviser2 = _login(app, "lequangcuong", pw["lequangcuong"])
        age_session(adviser2, seconds=STALE, keys=(AUTH_AT,))
        token = csrf_token(adviser2, f"/documents/{document_id}")
        form = {"csrf_token": token, "action": "advise", "comment": "Nhất trí."}
        assert adviser2.post(f"/documents/{document_id}/sign", data={
            **form, REAUTH_FIELD: secret_values["wrong password at re-authentication"]}).status_code == 401
        assert adviser2.post(f"/documents/{document_id}/sign",
                             data={**form, REAUTH_FIELD: pw["lequangcuong"]}).status_code == 302
        assert state_of(ctx, document_id) == "approve"

        # the chair turns TOTP on, and re-authenticates with a code before approving
        chair = _login(app, "nguyenthiquynhtrieu", pw["nguyenthiquynhtrieu"])
        token = csrf_token(chair, "/account/security")
        with chair.session_transaction() as session:
            totp_secret = session[PENDING_TOTP]
        secret_values["TOTP secret"] = totp_secret
        totp = pyotp.TOTP(totp_secret)
        assert chair.post("/account/security/totp", data={"csrf_token": token, "code": totp.now(),
                                                          "password": pw["nguyenthiquynhtrieu"]}).status_code == 302
        age_session(chair, seconds=STALE, keys=(AUTH_AT,))
        with ctx.db.session() as session:
            step = session.scalar(select(User.totp_last_step).where(User.username == "nguyenthiquynhtrieu"))
        assert _sign(chair, document_id, action="approve",
                     **{REAUTH_FIELD: totp.at((step + 1) * 30)}).status_code == 302  # type: ignore[attr-defined]
        assert state_of(ctx, document_id) == "issue"

        # the clerk numbers, seals and issues; everyone logs out
        clerk = _login(app, "hoangvanem", pw["hoangvanem"])
        assert _sign(clerk, document_id, action="issue", number="17").status_code == 302  # type: ignore[attr-defined]
        assert state_of(ctx, document_id) == "issued"
        for client in (officer, adviser1, adviser2, chair, clerk):
            client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

        for handler in logging.getLogger().handlers:
            handler.flush()
        log_text = debug_log.read_bytes()
        assert b"esign" in log_text and len(log_text) > 10_000  # the log did capture the run
        found = _find(secret_values, "the debug log", log_text)
        for path in sorted(tmp_path.glob("agent-*.log")):
            found += _find(secret_values, path.name, path.read_bytes())
        db_found, cells = _scan_database(ctx, secret_values)
        found += db_found
        assert cells > 100
        files = [p for folder in (settings.storage.blobs, settings.storage.previews) if folder.exists()
                 for p in folder.rglob("*") if p.is_file()]
        assert files
        for path in files:
            found += _find(secret_values, str(path.relative_to(tmp_path)), path.read_bytes())
        assert found == [], found
        # the scanner does see a secret where there is one, bare or in base64
        leak = secret_values["token PIN"].encode()
        assert _find(secret_values, "probe", b"pin=" + leak) == ["token PIN in probe"]
        assert _find(secret_values, "probe", base64.b64encode(b"x" + leak)[:0] + base64.b64encode(leak))
    finally:
        agent.stop()
        ctx.close()
