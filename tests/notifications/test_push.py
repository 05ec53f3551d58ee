"""Web Push end to end against a push service on 127.0.0.1, on SQLite and PostgreSQL: the message an
adviser's phone gets when a memo is sent to them is encrypted for that phone (RFC 8291), signed with
the app's VAPID key (RFC 8292) and says only what the work is, the title and the address."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from esign.errors import NotFound, SubscriptionRefused
from esign.models import Document, WorkflowInstance
from esign.models.push import PushSubscription
from esign.services import push, routing
from esign.services.context import Context
from tests.notifications.conftest import (
    BrowserKeys,
    PushReceiver,
    assign_memo,
    b64url,
    check_vapid,
    person,
    send_memo,
)


def subscribe(ctx: Context, username: str, receiver: PushReceiver, name: str) -> BrowserKeys:
    keys = BrowserKeys()
    push.subscribe(ctx, person(ctx, username), receiver.endpoint(name), keys.p256dh, keys.auth_b64,
                   label="Chrome · Android")
    return keys


def off_curve(point: bytes) -> str:
    """The point with one coordinate byte changed: no longer on P-256."""
    return b64url(point[:40] + bytes([point[40] ^ 1]) + point[41:])


def subscriptions(ctx: Context) -> int:
    with ctx.db.session() as session:
        return session.scalar(select(func.count(PushSubscription.id)))


def test_an_adviser_gets_an_encrypted_signed_push_when_a_memo_is_sent_to_them(
        demo: Context, receiver: PushReceiver) -> None:
    ctx = demo
    binh = subscribe(ctx, "tranthibinh", receiver, "binh")
    duc = subscribe(ctx, "vominhduc", receiver, "duc")  # an adviser the memo is not sent to
    an = subscribe(ctx, "nguyenvana", receiver, "an")  # the sender gets nothing for his own memo
    document_id = send_memo(ctx, title="Về việc lắp đèn chiếu sáng hẻm 12")
    assert ctx.push.drain(10)

    [request] = receiver.to("binh")
    assert receiver.to("duc") == [] and receiver.to("an") == []
    assert request.headers["content-encoding"] == "aes128gcm"
    assert request.headers["content-type"] == "application/octet-stream"
    assert int(request.headers["ttl"]) == ctx.settings.notifications.push_ttl_seconds
    assert request.headers["topic"] == f"esign-doc-{document_id}"
    server_key = push.application_server_key(ctx)
    check_vapid(request.headers["authorization"], server_key, f"http://127.0.0.1:{receiver.port}",
                ctx.settings.notifications.vapid_subject)

    message = json.loads(binh.decrypt(request.body))
    assert message == {
        "title": "Bạn có văn bản mới cần xử lý",
        "body": "Về việc lắp đèn chiếu sáng hẻm 12",
        "url": f"{ctx.settings.app.base_url}/documents/{document_id}",
        "tag": f"esign-doc-{document_id}",
        "kind": "assigned",
    }
    # nothing of the memo's content travels, only its title
    assert "ngân sách" not in binh.decrypt(request.body).decode()
    # the message is for Bình's browser only: Đức's keys cannot open it
    with pytest.raises(Exception):  # noqa: B017 (AES-GCM refuses the wrong key)
        duc.decrypt(request.body)
    with ctx.db.session() as session:
        sent = session.scalar(select(PushSubscription).where(PushSubscription.endpoint == receiver.endpoint("binh")))
        assert sent.last_sent_at is not None and sent.failures == 0

    # Bình returns the memo: its drafter is told, in his own words
    routing.perform_action(ctx, person(ctx, "tranthibinh"), document_id, "return", comment="Bổ sung dự toán")
    assert ctx.push.drain(10)
    [returned] = receiver.to("an")
    message = json.loads(an.decrypt(returned.body))
    assert (message["kind"], message["title"]) == ("returned", "Văn bản bị trả lại để chỉnh sửa")
    assert message["url"].endswith(f"/documents/{document_id}")


def test_a_push_service_answering_410_removes_the_subscription(ward: Context, receiver: PushReceiver) -> None:
    ctx = ward
    subscribe(ctx, "tranthibinh", receiver, "gone")
    subscribe(ctx, "lequangcuong", receiver, "kept")
    receiver.answers["/push/gone"] = 410
    assign_memo(ctx, "Về việc sửa cổng trường", advisers=("tranthibinh", "lequangcuong"))
    assert ctx.push.drain(10)
    assert len(receiver.to("gone")) == 1 and len(receiver.to("kept")) == 1
    with ctx.db.session() as session:
        left = list(session.scalars(select(PushSubscription.endpoint)))
    assert left == [receiver.endpoint("kept")]


def test_an_unreachable_push_service_neither_blocks_nor_breaks_the_workflow(ward: Context,
                                                                              receiver: PushReceiver) -> None:
    ctx = ward
    keys = BrowserKeys()
    # nothing listens on port 9 of 127.0.0.1: the connection is refused
    push.subscribe(ctx, person(ctx, "tranthibinh"), "http://127.0.0.1:9/push/x", keys.p256dh, keys.auth_b64)
    receiver.answers["/push/busy"] = 503
    subscribe(ctx, "lequangcuong", receiver, "busy")
    document_id = assign_memo(ctx, "Về việc sửa cổng trường", advisers=("tranthibinh", "lequangcuong"))
    with ctx.db.session() as session:
        state = session.scalar(select(WorkflowInstance.state).where(WorkflowInstance.document_id == document_id))
    assert state == "advise"
    assert ctx.push.drain(15)
    with ctx.db.session() as session:
        rows = {s.endpoint: s for s in session.scalars(select(PushSubscription))}
    assert rows["http://127.0.0.1:9/push/x"].failures == 1
    assert rows["http://127.0.0.1:9/push/x"].last_error  # the error's kind, never a key
    assert rows[receiver.endpoint("busy")].failures == 1
    assert rows[receiver.endpoint("busy")].last_error == "HTTP 503"


def test_work_of_a_transaction_that_rolls_back_is_not_pushed(ward: Context, receiver: PushReceiver) -> None:
    ctx = ward
    subscribe(ctx, "tranthibinh", receiver, "binh")
    document_id = assign_memo(ctx, "Về việc sửa cổng trường", advisers=("lequangcuong",))
    assert ctx.push.drain(10)
    binh = person(ctx, "tranthibinh")
    with pytest.raises(RuntimeError), ctx.db.session() as session:
        document = session.get(Document, document_id)
        instance = document.workflow
        definition = routing.definition_of(ctx, instance)
        version = document.versions[-1]
        routing.open_step(session, ctx, instance, version, definition, "advise", binh)
        session.flush()
        raise RuntimeError("the transaction fails after the step was written")
    assert ctx.push.drain(10)
    assert receiver.to("binh") == []


def test_subscriptions_are_checked_moved_and_removed(ward: Context, receiver: PushReceiver) -> None:
    ctx = ward
    binh, cuong = person(ctx, "tranthibinh"), person(ctx, "lequangcuong")
    keys = BrowserKeys()
    for endpoint, p256dh, auth in [
        ("ftp://push.example/x", keys.p256dh, keys.auth_b64),
        ("http://push.example/x", keys.p256dh, keys.auth_b64),  # plain http only to the local receiver
        (receiver.endpoint("a"), keys.p256dh[:-4], keys.auth_b64),
        (receiver.endpoint("a"), keys.p256dh, keys.auth_b64 + "AAAA"),
        (receiver.endpoint("a"), off_curve(keys.public), keys.auth_b64),
    ]:
        with pytest.raises(SubscriptionRefused):
            push.subscribe(ctx, binh, endpoint, p256dh, auth)
    first = push.subscribe(ctx, binh, receiver.endpoint("phone"), keys.p256dh, keys.auth_b64)
    # the same phone, now signed in as Cường: the subscription moves to him
    again = push.subscribe(ctx, cuong, receiver.endpoint("phone"), keys.p256dh, keys.auth_b64)
    assert again == first
    assert push.subscriptions_of(ctx, binh) == []
    [row] = push.subscriptions_of(ctx, cuong)
    assert row.host == "127.0.0.1"
    with pytest.raises(NotFound):
        push.unsubscribe(ctx, binh, subscription_id=first)  # not hers any more
    push.unsubscribe(ctx, cuong, subscription_id=first)
    assert subscriptions(ctx) == 0


def test_push_turned_off_installs_nothing_and_refuses_subscriptions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from esign.services.migrate import upgrade
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, tmp_path / "no-pki", notifications={"push_enabled": False})
    upgrade(settings)
    ctx = Context.create(settings, backends={})
    try:
        assert ctx.push is None
        keys = BrowserKeys()
        with pytest.raises(SubscriptionRefused):
            push.subscribe(ctx, type("U", (), {"id": 1})(), "https://push.example/x", keys.p256dh, keys.auth_b64)
    finally:
        ctx.close()


def test_the_vapid_key_is_made_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "keys" / "vapid.pem"
    assert push.make_vapid_key(path) is True
    first = path.read_bytes()
    assert push.make_vapid_key(path) is False
    assert path.read_bytes() == first
    assert oct(path.stat().st_mode & 0o777) == "0o600"
