"""A real ``esign serve`` process on 127.0.0.1 that a test can kill, restart and talk HTTP to.

The server reads a config file the test writes; the test process opens the
same database and blob store to seed the demo ward and to inspect what a kill
left behind. The officer's token answers through the browser (backend
"agent"), and the test plays the device: it signs the tbs with the same key
outside the server, so it can kill the server while "the device signs".
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from esign.config import Settings, load_settings
from esign.models import (
    Certificate,
    Document,
    DocumentVersion,
    Revision,
    SignatureRequest,
    User,
    WorkflowInstance,
)
from esign.services.context import Context
from esign.services.demo import DEMO_PASSWORD, EXAMPLE_MEMO
from esign.signing.backend import SignRequest

ROOT = Path(__file__).resolve().parents[2]
ESIGN = str(Path(sys.executable).parent / "esign")
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')
OFFICER = "nguyenvana"


class ServerGone(Exception):
    """The server closed the connection without an answer (it was killed)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(base: Path, pki: Path, database_url: str, pki_port: int, workers: int = 1) -> Path:
    """A complete config file for the server and the test alike (nothing from the environment)."""
    def q(value: object) -> str:
        return json.dumps(str(value))

    path = base / "config.toml"
    path.write_text(f"""
[app]
environment = "test"
base_url = "http://127.0.0.1:5000"

[server]
host = "127.0.0.1"
workers = {workers}
threads = 4

[database]
url = {q(database_url)}

[storage]
blobs = {q(base / "blobs")}
previews = {q(base / "previews")}

[workflows]
definitions = {q(ROOT / "workflows")}

[pki]
trust_roots = [{q(pki / "root.cert.pem")}]
dev_dir = {q(pki)}
tsa_url = ""
revocation = "soft-fail"
services_port = {pki_port}

[signing]
backends = ["softkey", "agent"]
seal_backend = "softkey"
""", encoding="utf-8")
    return path


def server_env(secret_key: str, fault: str | None = None) -> dict[str, str]:
    """The environment of a server: none of the caller's ESIGN_* settings, only the secrets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESIGN_")}
    env["ESIGN_SECRET_KEY"] = secret_key
    if os.environ.get("ESIGN_SOFTKEY_PASSPHRASE"):
        env["ESIGN_SOFTKEY_PASSPHRASE"] = os.environ["ESIGN_SOFTKEY_PASSPHRASE"]
    if fault:
        env["ESIGN_FAULT_POINT"] = fault
    return env


class Server:
    """One ``esign serve`` process at a time; every start gets a new port."""

    def __init__(self, config: Path, logdir: Path) -> None:
        self.config = config
        self.logdir = logdir
        self.secret_key = secrets.token_urlsafe(32)  # the same across restarts: sessions survive
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0
        self.kills = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, fault: str | None = None) -> None:
        assert self.proc is None or self.proc.poll() is not None, "the previous server still runs"
        self.port = free_port()
        self.starts += 1
        self.log = self.logdir / f"server-{self.starts}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [ESIGN, "--config", str(self.config), "serve", "--port", str(self.port)],
                env=server_env(self.secret_key, fault), stdout=out, stderr=subprocess.STDOUT, cwd=self.logdir,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"esign serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/login", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
        pytest.fail(f"esign serve did not answer within 60 s:\n{self.log.read_text()[-3000:]}")

    def wait_killed(self) -> None:
        """The server killed itself at its fault point (SIGKILL, not an exit)."""
        assert self.proc is not None
        returncode = self.proc.wait(timeout=30)
        assert returncode == -signal.SIGKILL, f"exit {returncode}:\n{self.log.read_text()[-3000:]}"
        self.kills += 1

    def kill(self) -> None:
        """SIGKILL from outside, whatever the server is doing."""
        assert self.proc is not None and self.proc.poll() is None
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Answer:
    status: int
    body: dict[str, Any]


class Browser:
    """An officer's browser session: cookies and the CSRF token, over plain HTTP."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        self.csrf = ""

    def _open(self, request: urllib.request.Request) -> tuple[int, bytes]:
        try:
            with self.opener.open(request, timeout=120) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError) as e:
            raise ServerGone(str(e)) from e

    def get(self, path: str) -> tuple[int, str]:
        status, body = self._open(urllib.request.Request(self.server.url + path))
        return status, body.decode("utf-8")

    def login(self, username: str = OFFICER) -> None:
        _status, page = self.get("/login")
        self.csrf = CSRF_META.search(page).group(1)  # type: ignore[union-attr]
        form = urllib.parse.urlencode({"username": username, "password": DEMO_PASSWORD,
                                       "csrf_token": self.csrf}).encode()
        status, _body = self._open(urllib.request.Request(self.server.url + "/login", data=form))
        assert status == 200, status  # the redirect to the inbox, followed
        _status, page = self.get("/")
        self.csrf = CSRF_META.search(page).group(1)  # type: ignore[union-attr]

    def post_json(self, path: str, body: dict[str, Any]) -> Answer:
        request = urllib.request.Request(
            self.server.url + path, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": self.csrf},
        )
        status, data = self._open(request)
        return Answer(status, json.loads(data))

    def create_request(self, document_id: int, key: str) -> Answer:
        path = f"/api/documents/{document_id}/signature-requests"
        body = {"action": "submit", "device": "token", "advisers": ["tranthibinh"], "idempotency_key": key}
        answer = self.post_json(path, body)
        if answer.status == 401 and answer.body.get("error") == "reauth_required":
            self.login()  # the password was typed too long ago: the officer types it again
            answer = self.post_json(path, body)
        return answer

    def complete(self, request_id: str, value: bytes) -> Answer:
        return self.post_json(f"/api/signature-requests/{request_id}/complete",
                              {"signature": base64.b64encode(value).decode()})


class Device:
    """The officer's token, held by the test: it signs a tbs the server handed out."""

    def __init__(self, ctx: Context) -> None:
        self.backend = ctx.backends["softkey"]

    def sign(self, answer: Answer) -> bytes:
        body = answer.body
        signed = self.backend.sign(SignRequest(credential=f"{OFFICER}-token", tbs=base64.b64decode(body["tbs"]),
                                               md_algorithm=body["md_algorithm"], mechanism=body["mechanism"]))
        return signed.signature  # type: ignore[union-attr]


@dataclass
class Store:
    """What the database holds about one document."""

    revisions: int
    requests: dict[str, str]
    state: str
    head: bytes


def inspect(ctx: Context, document_id: int) -> Store:
    with ctx.db.session() as session:
        revisions = list(session.scalars(select(Revision).join(DocumentVersion)
                                         .where(DocumentVersion.document_id == document_id)
                                         .order_by(Revision.index)))
        requests = {r.id: r.status for r in session.scalars(
            select(SignatureRequest).where(SignatureRequest.document_id == document_id))}
        state = session.scalar(select(WorkflowInstance.state).where(WorkflowInstance.document_id == document_id))
        return Store(len(revisions), requests, state or "", ctx.blobs.read(revisions[-1].sha256))


def fsck(config: Path, *, signatures: bool = True, subprocess_run: bool = False) -> str:
    """``esign fsck`` on the server's store, as an operator runs it; fails the test on any problem.

    In this process by default (the command's own code, without a second
    interpreter's start-up), or as a separate process.
    """
    args = ["--config", str(config), "fsck", *([] if signatures else ["--no-signatures"])]
    if subprocess_run:
        result = subprocess.run([ESIGN, *args], check=False, env=server_env("unused"), capture_output=True, text=True,
                                timeout=300)
        code, output = result.returncode, result.stdout + result.stderr
    else:
        from click.testing import CliRunner

        from esign.cli import main

        unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("ESIGN_")}
        result = CliRunner().invoke(main, args, env=unset, catch_exceptions=False)
        code, output = result.exit_code, result.output
    assert code == 0 and "no problems found" in output, output
    return output


def seed(settings: Settings, documents: int) -> tuple[Context, list[int]]:
    """Migrate, seed the demo people, hand the officer's token to the browser, compose drafts."""
    from esign.services import documents as document_service
    from esign.services.demo import seed_people
    from esign.services.migrate import upgrade

    upgrade(settings)
    ctx = Context.create(settings)
    seed_people(ctx, ROOT / "keys" / "people.toml")
    with ctx.db.session() as session:
        officer = session.scalar(select(User).where(User.username == OFFICER))
        token = session.scalar(select(Certificate).where(Certificate.user_id == officer.id,
                                                        Certificate.device == "token"))
        token.backend = "agent"  # a device the server cannot reach: the test signs for it
    ids = [document_service.compose_document(ctx, officer, EXAMPLE_MEMO) for _ in range(documents)]
    with ctx.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == documents
    return ctx, ids


@pytest.fixture
def served(tmp_path: Path, dev_pki: Path, db_url: str, pki_services) -> Iterator[tuple[Path, Settings]]:  # type: ignore[no-untyped-def]
    config = write_config(tmp_path, dev_pki, db_url, pki_services.port)
    yield config, load_settings(config, env={})
