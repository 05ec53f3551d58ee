"""Web Push: tell an officer's phone that new work arrived, after the work is committed.

An officer's browser subscribes (RFC 8030 endpoint and the RFC 8291 keys
``p256dh`` and ``auth``); :func:`subscribe` stores it. Whenever a transaction
assigns a step to someone (a memo sent to advisers, a document returned to its
drafter, a step handed over) or writes a reminder notification, the session
hooks installed by :func:`install` note who gets new work; if those people
have subscriptions, the messages are built inside the transaction (one
indexed query) and handed to a background sender *after the commit*. The
workflow never waits for a push service and never fails because of one:
delivery has a short timeout, failures are logged with the subscription's
id and the push service's host only, and a 404 or 410 from the push service
removes the subscription.

Messages are encrypted for the browser (RFC 8291, ``aes128gcm``) and signed
with the server's VAPID key (RFC 8292). They carry the kind of work, the
document's title and its address, nothing of its content.

VAPID key: ``[notifications] vapid_private_key_file`` (PEM, P-256), made by
``esign push-keys``; outside production a missing key file is made on first
use (left empty: ``vapid.pem`` in ``[pki] dev_dir``).
"""

from __future__ import annotations

import atexit
import base64
import json
import logging
import os
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import delete, event, select, update
from sqlalchemy.orm import Session

from esign.errors import ConfigError, DefinitionError, NotFound, SubscriptionRefused
from esign.models import Document, DocumentVersion, Notification, StepRecord, User, WorkflowInstance
from esign.models.push import PushSubscription

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from esign.config import Settings
    from esign.services.context import Context

log = logging.getLogger(__name__)

#: the kinds of new work, most specific first: one message per person and document
KINDS = ("escalated", "overdue", "due_soon", "returned", "assigned")
TITLES = {
    "assigned": {"vi": "Bạn có văn bản mới cần xử lý", "en": "You have new work"},
    "returned": {"vi": "Văn bản bị trả lại để chỉnh sửa", "en": "A document was returned for revision"},
    "due_soon": {"vi": "Văn bản sắp đến hạn xử lý", "en": "A document is due soon"},
    "overdue": {"vi": "Văn bản quá hạn xử lý", "en": "A document is overdue"},
    "escalated": {"vi": "Văn bản quá hạn được chuyển cho bạn", "en": "An overdue document was escalated to you"},
}
#: a subscription that failed this many times in a row is dropped
MAX_FAILURES = 20
_INFO_KEY = "esign.push.pending"


# --- the VAPID key ------------------------------------------------------------------------------


def vapid_key_path(settings: Settings) -> Path:
    configured = settings.notifications.vapid_private_key_file
    if not configured:
        return settings.pki.dev_dir / "vapid.pem"
    path = Path(configured)
    return path if path.is_absolute() else settings.root / path


def make_vapid_key(path: Path) -> bool:
    """Write a new P-256 private key to ``path`` unless one is there; True when written.

    The key is linked into place only if no file exists, so concurrent first
    uses agree on one key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()


def load_vapid_key(settings: Settings) -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    path = vapid_key_path(settings)
    if not path.exists() and not settings.is_production:
        make_vapid_key(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as e:
        raise ConfigError("[notifications] vapid_private_key_file: cannot read a private key from %(path)s "
                          "(make one with: esign push-keys)", path=str(path)) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError("[notifications] vapid_private_key_file: %(path)s is not a P-256 key", path=str(path))
    return key


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_key_of(key: ec.EllipticCurvePrivateKey) -> str:
    """The application server key a browser subscribes with: base64url of the uncompressed point."""
    from cryptography.hazmat.primitives import serialization

    return b64url(key.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint))


def application_server_key(ctx: Context) -> str:
    return public_key_of(_sender(ctx).key if ctx.push else load_vapid_key(ctx.settings))


# --- subscriptions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionRow:
    id: int
    label: str
    host: str
    created_at: datetime
    last_sent_at: datetime | None
    failures: int


def _check_endpoint(ctx: Context, endpoint: str) -> None:
    parts = urlsplit(endpoint)
    if len(endpoint) > 2000 or not parts.hostname:
        raise SubscriptionRefused("This browser's push subscription is not valid")
    if parts.scheme == "https":
        return
    # a plain-http push service is only the tests' local receiver: never in production
    if parts.scheme == "http" and not ctx.settings.is_production and parts.hostname in ("127.0.0.1", "localhost"):
        return
    raise SubscriptionRefused("This browser's push subscription is not valid")


def _check_keys(p256dh: str, auth: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        point, secret = b64url_decode(p256dh), b64url_decode(auth)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (ValueError, TypeError) as e:
        raise SubscriptionRefused("This browser's push subscription is not valid") from e
    if len(point) != 65 or len(secret) != 16:
        raise SubscriptionRefused("This browser's push subscription is not valid")


def subscribe(ctx: Context, actor: User, endpoint: str, p256dh: str, auth: str, *, label: str = "") -> int:
    """Store the browser's subscription for ``actor``; returns its id.

    The same endpoint subscribing again (new keys, or another officer signed
    in on the same phone) replaces the old subscription.
    """
    if not ctx.settings.notifications.push_enabled:
        raise SubscriptionRefused("Notifications on phones are turned off on this server")
    endpoint, p256dh, auth = endpoint.strip(), p256dh.strip(), auth.strip()
    _check_endpoint(ctx, endpoint)
    _check_keys(p256dh, auth)
    with ctx.db.session() as session:
        found = session.scalar(select(PushSubscription).where(PushSubscription.endpoint == endpoint)
                               .with_for_update())
        if found is None:
            found = PushSubscription(endpoint=endpoint, created_at=ctx.now())
            session.add(found)
        found.user_id, found.p256dh, found.auth = actor.id, p256dh, auth
        found.label, found.failures, found.last_error = label.strip()[:200], 0, ""
        session.flush()
        log.info("push: user %s subscribed %s (subscription %s)", actor.id, _host(endpoint), found.id)
        return found.id


def unsubscribe(ctx: Context, actor: User, *, subscription_id: int | None = None, endpoint: str | None = None,
                ) -> None:
    """Remove one of ``actor``'s subscriptions, by id (the page) or by endpoint (the browser)."""
    query = delete(PushSubscription).where(PushSubscription.user_id == actor.id)
    if subscription_id is not None:
        query = query.where(PushSubscription.id == subscription_id)
    elif endpoint:
        query = query.where(PushSubscription.endpoint == endpoint.strip())
    else:
        raise NotFound("There is no such subscription")
    with ctx.db.session() as session:
        if not session.execute(query).rowcount:
            raise NotFound("There is no such subscription")


def subscriptions_of(ctx: Context, actor: User) -> list[SubscriptionRow]:
    with ctx.db.session() as session:
        rows = session.scalars(select(PushSubscription).where(PushSubscription.user_id == actor.id)
                               .order_by(PushSubscription.id))
        return [SubscriptionRow(s.id, s.label, _host(s.endpoint), s.created_at, s.last_sent_at, s.failures)
                for s in rows]


def _host(endpoint: str) -> str:
    return urlsplit(endpoint).hostname or "?"


# --- what a transaction assigns: collected in the session, sent after its commit ---------------


@dataclass(frozen=True)
class Delivery:
    """One encrypted message to one subscription (built in the transaction, sent after it)."""

    subscription_id: int
    endpoint: str
    p256dh: str
    auth: str
    payload: bytes
    topic: str
    urgency: str


def install(ctx: Context) -> PushSender | None:
    """Hook the context's sessions so that committed new work is pushed; None when push is off."""
    if not ctx.settings.notifications.push_enabled:
        return None
    sender = PushSender(ctx)
    sessions = ctx.db.sessions

    @event.listens_for(sessions, "after_flush")
    def _collect(session: Session, _flush: Any) -> None:
        try:
            found = session.info.setdefault(_INFO_KEY, {"work": [], "deliveries": []})
            for obj in session.new:
                if isinstance(obj, StepRecord) and obj.status == "open":
                    found["work"].append(("step", obj.assignee_id, obj.id, obj.state, obj.version_id, obj.instance_id))
                elif isinstance(obj, Notification) and obj.kind in TITLES and obj.document_id is not None:
                    found["work"].append(("notification", obj.user_id, obj.document_id, obj.kind, None, None))
        except Exception as e:  # noqa: BLE001 - never let a notification break the workflow
            log.warning("push: cannot note new work: %s", type(e).__name__)

    @event.listens_for(sessions, "after_flush_postexec")
    def _prepare(session: Session, _flush: Any) -> None:
        found = session.info.get(_INFO_KEY)
        if not found or not found["work"]:
            return
        work, found["work"] = found["work"], []
        try:
            found["deliveries"] += _deliveries(ctx, session, work)
        except Exception as e:  # noqa: BLE001 - never let a notification break the workflow
            log.warning("push: cannot prepare messages: %s", type(e).__name__)

    @event.listens_for(sessions, "after_commit")
    def _send(session: Session) -> None:
        found = session.info.pop(_INFO_KEY, None)
        if found and found["deliveries"]:
            sender.submit(found["deliveries"])

    @event.listens_for(sessions, "after_rollback")
    def _forget(session: Session) -> None:
        session.info.pop(_INFO_KEY, None)

    return sender


def _deliveries(ctx: Context, session: Session, work: list[tuple[Any, ...]]) -> list[Delivery]:
    """The messages for the people in ``work`` who have subscriptions (nothing else is read)."""
    # Core statements on the transaction's connection: no autoflush inside the flush hooks
    connection = session.connection()
    people = {w[1] for w in work}
    subscriptions = connection.execute(
        select(PushSubscription.id, PushSubscription.user_id, PushSubscription.endpoint,
               PushSubscription.p256dh, PushSubscription.auth)
        .where(PushSubscription.user_id.in_(people))).all()
    if not subscriptions:
        return []
    subscribed = {s.user_id for s in subscriptions}
    work = [w for w in work if w[1] in subscribed]
    step_rows = {}
    step_ids = [w[2] for w in work if w[0] == "step"]
    if step_ids:
        step_rows = {r.id: r for r in connection.execute(
            select(StepRecord.id, StepRecord.state, DocumentVersion.number, WorkflowInstance.document_id,
                   WorkflowInstance.definition_id, WorkflowInstance.definition_version)
            .join(DocumentVersion, DocumentVersion.id == StepRecord.version_id)
            .join(WorkflowInstance, WorkflowInstance.id == StepRecord.instance_id)
            .where(StepRecord.id.in_(step_ids)))}
    # (user, document) -> kind: one message per person and document, the most specific kind
    wanted: dict[tuple[int, int], str] = {}
    for source, user_id, ref, kind_or_state, _version, _instance in work:
        if source == "step":
            row = step_rows.get(ref)
            if row is None:
                continue
            document_id = row.document_id
            kind = work_kind(ctx, row.state, row.number, row.definition_id, row.definition_version)
            if kind is None:
                continue
        else:
            document_id, kind = ref, kind_or_state
        key = (user_id, document_id)
        if key not in wanted or KINDS.index(kind) < KINDS.index(wanted[key]):
            wanted[key] = kind
    if not wanted:
        return []
    titles = dict(connection.execute(select(Document.id, Document.title).where(
        Document.id.in_({d for _u, d in wanted}))).all())
    locales = dict(connection.execute(select(User.id, User.locale).where(User.id.in_(subscribed))).all())
    base = ctx.settings.app.base_url.rstrip("/")
    deliveries = []
    for (user_id, document_id), kind in wanted.items():
        lang = locales.get(user_id) or ctx.settings.app.default_locale
        payload = json.dumps({
            "title": TITLES[kind].get(lang, TITLES[kind]["vi"]),
            "body": titles.get(document_id, ""),
            "url": f"{base}/documents/{document_id}",
            "tag": f"esign-doc-{document_id}",
            "kind": kind,
        }, ensure_ascii=False).encode("utf-8")
        for s in subscriptions:
            if s.user_id == user_id:
                deliveries.append(Delivery(s.id, s.endpoint, s.p256dh, s.auth, payload,
                                           topic=f"esign-doc-{document_id}",
                                           urgency="high" if kind in ("overdue", "escalated") else "normal"))
    return deliveries


def work_kind(ctx: Context, state: str, version_number: int, definition_id: str,
              definition_version: int) -> str | None:
    """What a new step is to its assignee: ``returned`` for a later version's first step (the
    drafter revises), None for the first step of a new document (the drafter's own draft: no
    news to them), else ``assigned``."""
    try:
        initial = ctx.workflows.get(definition_id, definition_version).initial
    except DefinitionError:  # a definition no longer loaded: an assignment is the safe guess
        return "assigned"
    if state == initial:
        return "returned" if version_number > 1 else None
    return "assigned"


# --- delivery -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryResult:
    subscription_id: int
    status: int
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        return self.status in (404, 410)


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """The RFC 8291 ``aes128gcm`` body of ``payload`` for one browser (a fresh sender key each time)."""
    import http_ece
    from cryptography.hazmat.primitives.asymmetric import ec

    return http_ece.encrypt(payload, private_key=ec.generate_private_key(ec.SECP256R1()),
                            dh=b64url_decode(p256dh), auth_secret=b64url_decode(auth), version="aes128gcm")


def vapid_authorization(key: ec.EllipticCurvePrivateKey, endpoint: str, subject: str, *,
                        lifetime: int = 12 * 3600) -> str:
    """The RFC 8292 ``Authorization: vapid t=…, k=…`` header for the endpoint's push service."""
    from py_vapid import Vapid02

    parts = urlsplit(endpoint)
    vapid = Vapid02(private_key=key)
    claims = {"aud": f"{parts.scheme}://{parts.netloc}", "sub": subject, "exp": int(time.time()) + lifetime}
    return str(vapid.sign(claims)["Authorization"])


def deliver(delivery: Delivery, key: ec.EllipticCurvePrivateKey, subject: str, *, timeout: float,
            ttl: int) -> DeliveryResult:
    """POST one encrypted message to the push service; never raises for the service's answers."""
    try:
        body = encrypt(delivery.payload, delivery.p256dh, delivery.auth)
        headers = {
            "Authorization": vapid_authorization(key, delivery.endpoint, subject),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(ttl),
            "Urgency": delivery.urgency,
            "Topic": delivery.topic,
        }
        request = urllib.request.Request(delivery.endpoint, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return DeliveryResult(delivery.subscription_id, response.status)
    except urllib.error.HTTPError as e:
        e.close()
        return DeliveryResult(delivery.subscription_id, e.code, f"HTTP {e.code}")
    except (OSError, ValueError) as e:
        return DeliveryResult(delivery.subscription_id, 0, type(e).__name__)
    except Exception as e:  # noqa: BLE001 - a key the library refuses: logged, not raised
        return DeliveryResult(delivery.subscription_id, 0, type(e).__name__)


class PushSender:
    """One background thread that delivers messages after their transaction committed."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._queue: queue.Queue[list[Delivery] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy = 0
        self._idle = threading.Condition(self._lock)
        self.results: list[DeliveryResult] = []
        atexit.register(self.close)

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            self._key = load_vapid_key(self.ctx.settings)
        return self._key

    def submit(self, deliveries: Iterable[Delivery]) -> None:
        batch = list(deliveries)
        if not batch:
            return
        with self._lock:
            self._busy += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="esign-push", daemon=True)
                self._thread.start()
        self._queue.put(batch)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted message was tried; False if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self) -> None:
        settings = self.ctx.settings.notifications
        self.drain(timeout=settings.push_timeout_seconds * 2)
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout=1)
        self._thread = None

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            try:
                self._send(batch)
            except Exception as e:  # noqa: BLE001 - the thread lives on; the next batch is tried
                log.warning("push: a batch was not sent: %s", type(e).__name__)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _send(self, batch: list[Delivery]) -> None:
        settings = self.ctx.settings.notifications
        try:
            key = self.key
        except ConfigError as e:
            log.warning("push: %s", e)
            return
        results = [deliver(d, key, settings.vapid_subject, timeout=settings.push_timeout_seconds,
                           ttl=settings.push_ttl_seconds) for d in batch]
        endpoints = {d.subscription_id: d.endpoint for d in batch}
        now = self.ctx.now()
        with self.ctx.db.session() as session:
            for r in results:
                if r.ok:
                    session.execute(update(PushSubscription).where(PushSubscription.id == r.subscription_id)
                                    .values(last_sent_at=now, failures=0, last_error=""))
                    continue
                log.warning("push: subscription %s at %s: %s", r.subscription_id,
                            _host(endpoints[r.subscription_id]), r.error or r.status)
                if r.gone:
                    session.execute(delete(PushSubscription).where(PushSubscription.id == r.subscription_id))
                else:
                    session.execute(update(PushSubscription).where(PushSubscription.id == r.subscription_id)
                                    .values(failures=PushSubscription.failures + 1, last_error=r.error[:200]))
            session.execute(delete(PushSubscription).where(PushSubscription.failures >= MAX_FAILURES))
        self.results += results


def _sender(ctx: Context) -> PushSender:
    assert ctx.push is not None
    return ctx.push  # type: ignore[no-any-return]


__all__ = [
    "Delivery",
    "DeliveryResult",
    "PushSender",
    "SubscriptionRow",
    "application_server_key",
    "deliver",
    "encrypt",
    "install",
    "load_vapid_key",
    "make_vapid_key",
    "subscribe",
    "subscriptions_of",
    "unsubscribe",
    "vapid_authorization",
    "vapid_key_path",
]
