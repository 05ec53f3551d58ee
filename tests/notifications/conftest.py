"""Fixtures of the notification tests: a push service on 127.0.0.1 that records what it is sent,
browser-side subscription keys, and an independent RFC 8291 / RFC 8292 reading of the requests.

The receiver stands in for the browser vendors' push services (RFC 8030), which cannot be
reached from the tests; it answers 201 unless told otherwise for an address.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from esign.models import Document, DocumentVersion, StepRecord, User, WorkflowInstance
from esign.services import documents, routing, signing
from esign.services.context import Context
from esign.services.demo import EXAMPLE_MEMO
from tests.conftest import make_settings
from tests.reports.conftest import PASSWORD, seed_ward


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class PushReceiver:
    """What the push service was sent, and the status it answers per path."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def endpoint(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/push/{name}"

    def to(self, name: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == f"/push/{name}"]


@pytest.fixture
def receiver() -> Iterator[PushReceiver]:
    state = PushReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.lock:
                state.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status = state.answers.get(self.path, 201)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class BrowserKeys:
    """What a browser makes when it subscribes: a P-256 key pair and a 16-byte auth secret."""

    private: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.X962,
                                                      serialization.PublicFormat.UncompressedPoint)

    @property
    def p256dh(self) -> str:
        return b64url(self.public)

    @property
    def auth_b64(self) -> str:
        return b64url(self.auth)

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 (with RFC 8188's aes128gcm), written out here rather than taken from a library."""
        salt, record_size, id_length = body[:16], struct.unpack("!L", body[16:20])[0], body[20]
        sender_public = body[21:21 + id_length]
        ciphertext = body[21 + id_length:]
        assert id_length == 65 and sender_public[0] == 4
        assert len(ciphertext) <= record_size  # one record
        sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_public)
        shared = self.private.exchange(ec.ECDH(), sender)

        def hmac256(key: bytes, data: bytes) -> bytes:
            return hmac.new(key, data, hashlib.sha256).digest()

        prk_key = hmac256(self.auth, shared)
        ikm = hmac256(prk_key, b"WebPush: info\x00" + self.public + sender_public + b"\x01")
        prk = hmac256(salt, ikm)
        cek = hmac256(prk, b"Content-Encoding: aes128gcm\x00\x01")[:16]
        nonce = hmac256(prk, b"Content-Encoding: nonce\x00\x01")[:12]
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
        unpadded = padded.rstrip(b"\x00")
        assert unpadded.endswith(b"\x02"), "the last record ends with the delimiter 2"
        return unpadded[:-1]


def check_vapid(authorization: str, server_key: str, audience: str, subject: str) -> dict[str, object]:
    """The claims of an RFC 8292 ``vapid t=…, k=…`` header, after checking its ES256 signature."""
    scheme, _, params = authorization.partition(" ")
    assert scheme.lower() == "vapid"
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    assert parts["k"] == server_key, "the header names the app's own public key"
    header_b64, claims_b64, signature_b64 = parts["t"].split(".")
    assert json.loads(unb64url(header_b64)) == {"typ": "JWT", "alg": "ES256"}
    signature = unb64url(signature_b64)
    assert len(signature) == 64
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(server_key))
    public.verify(encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")),
                  f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    claims = json.loads(unb64url(claims_b64))
    assert claims["aud"] == audience
    assert claims["sub"] == subject
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    return claims


def person(ctx: Context, username: str) -> User:
    with ctx.db.session() as session:
        return session.scalar(select(User).where(User.username == username))


ADVISERS = ("tranthibinh", "lequangcuong")


def send_memo(ctx: Context, title: str = EXAMPLE_MEMO.title, advisers: tuple[str, ...] = ADVISERS) -> int:
    """The officer composes a memo, signs it and sends it to ``advisers`` (real signing, softkey)."""
    officer = person(ctx, "nguyenvana")
    document_id = documents.compose_document(ctx, officer, dataclasses.replace(EXAMPLE_MEMO, title=title))
    signing.request_signature(ctx, officer, document_id, "submit", advisers=list(advisers))
    return document_id


# --- a ward without certificates: steps are assigned by the real routing code, without signing ---


@pytest.fixture
def ward(tmp_path, db_url: str) -> Iterator[Context]:  # type: ignore[no-untyped-def]
    """The ward's people (password ``PASSWORD``), on SQLite and PostgreSQL; push on, VAPID key in tmp."""
    yield from _ward(tmp_path, db_url)


@pytest.fixture
def sqlite_ward(tmp_path) -> Iterator[Context]:  # type: ignore[no-untyped-def]
    yield from _ward(tmp_path, None)


def _ward(tmp_path, db_url: str | None, **extra: dict[str, object]) -> Iterator[Context]:  # type: ignore[no-untyped-def]
    from esign.services.migrate import upgrade

    settings = make_settings(tmp_path, tmp_path / "no-pki", db_url,
                             notifications={"vapid_private_key_file": str(tmp_path / "vapid.pem"),
                                            "poll_seconds": 2}, **extra)
    upgrade(settings)
    ctx = Context.create(settings, backends={})
    seed_ward(ctx)
    yield ctx
    ctx.close()


def assign_memo(ctx: Context, title: str, advisers: tuple[str, ...] = ("tranthibinh",)) -> int:
    """The officer's memo, as its submission leaves it: the draft step done, the advise steps open
    for ``advisers`` (routing.open_step, in one transaction, as the signing service does)."""
    now = ctx.now()
    definition = ctx.workflows.latest(ctx.settings.workflows.default)
    with ctx.db.session() as session:
        officer = session.scalar(select(User).where(User.username == "nguyenvana"))
        document = Document(unit_id=officer.unit_id, public_code=os.urandom(6).hex(), title=title,
                            source="composed", created_by_id=officer.id, created_at=now, updated_at=now)
        session.add(document)
        session.flush()
        version = DocumentVersion(document_id=document.id, number=1, created_by_id=officer.id, created_at=now)
        instance = WorkflowInstance(document_id=document.id, definition_id=definition.id,
                                    definition_version=definition.version, state=definition.initial,
                                    started_at=now)
        session.add_all([version, instance])
        session.flush()
        draft = routing.open_step(session, ctx, instance, version, definition, definition.initial, officer)
        draft.status, draft.action, draft.completed_at = "done", "submit", now
        instance.state = "advise"
        for name in advisers:
            adviser = session.scalar(select(User).where(User.username == name))
            routing.open_step(session, ctx, instance, version, definition, "advise", adviser)
        return document.id


def open_steps_of(ctx: Context, username: str) -> int:
    with ctx.db.session() as session:
        return len(list(session.scalars(select(StepRecord.id).join(User, User.id == StepRecord.assignee_id)
                                        .where(User.username == username, StepRecord.status == "open"))))


__all__ = ["PASSWORD"]
