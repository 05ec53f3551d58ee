"""Meeting mode through the services, on SQLite and PostgreSQL, against esign-remote running
as a real process: the chair approves several memos with one confirmation on the phone."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from esign.errors import CertificateRefused
from esign.models import AuditEvent, Certificate, SignatureRequest
from esign.services import documents, meeting, routing, signing
from esign.services.context import Context
from esign.services.demo import EXAMPLE_MEMO
from tests.meeting.conftest import (
    AT_CHAIR,
    memo_for_approval,
    mobile_backend_of,
    person,
    remote_context,
    remote_settings,
    revisions_of,
    state_of,
)
from tests.remote.conftest import Phone, RemoteService, fresh_otp, start_service

TITLES = (
    "Về việc sửa chữa nhà văn hóa khu phố 3",
    "Về việc lắp đặt đèn chiếu sáng hẻm 12 Nguyễn Huệ",
    "Về việc tổ chức Tết Trung thu cho thiếu nhi phường",
)


def phone_url(service: RemoteService, batch_id: str) -> str:
    return f"{service.url}/confirm/{batch_id}"


def confirm(phone: Phone, service: RemoteService, batch_id: str) -> str:
    status, page = phone.answer(phone_url(service, batch_id), otp=fresh_otp(service))
    assert status == 200 and "Đã xác nhận" in page, page
    return page


def test_the_chair_approves_three_memos_with_one_confirmation(
    mctx: Context, service: RemoteService, phone: Phone, pdf_checks: Any
) -> None:
    ctx = mctx
    chair = person(ctx, "chair")
    assert mobile_backend_of(ctx, chair) == "csc"
    ids = [memo_for_approval(ctx, t) for t in TITLES]
    listed = meeting.pending_approvals(ctx, chair)
    assert [a.document_id for a in listed] == ids
    assert all(len(a.opinions) == 1 and a.opinions[0].comment.startswith("Ý kiến 1") for a in listed)
    assert meeting.count_pending_approvals(ctx, chair) == 3

    start = meeting.approve_selected(ctx, chair, ids)
    assert start.batch_id and not start.refused and len(start.request_ids) == 3
    waiting = meeting.batch_status(ctx, chair, start.batch_id)
    assert waiting.phone_status == "pending" and len(waiting.code) >= 4
    assert [i.status for i in waiting.items] == ["waiting"] * 3
    assert [i.title for i in waiting.items] == list(TITLES)
    assert waiting.expires_at is not None and waiting.expires_at > ctx.now()

    # the phone lists every title and the same short code, once
    status, _, page = phone.get(phone_url(service, start.batch_id))
    assert status == 200 and all(t in page for t in TITLES) and waiting.code in page
    confirm(phone, service, start.batch_id)

    done = meeting.batch_status(ctx, chair, start.batch_id)
    assert done.done and [i.status for i in done.items] == ["signed"] * 3, done
    for document_id in ids:
        assert state_of(ctx, document_id) == "issue"
        chain = revisions_of(ctx, document_id)
        assert len(chain) == AT_CHAIR + 1 and chain[-1].startswith(chain[-2])
        statuses = pdf_checks.pyhanko(chain[-1])
        assert len(statuses) == 3
        for s in statuses:
            assert s.intact and s.valid and s.trusted, s.pretty_print_details()
        assert statuses[-1].signing_cert.subject.native["common_name"] == "Nguyễn Thị Quỳnh Triều"
        report = pdf_checks.pdfsig(chain[-1])
        assert report.count("Signature Validation: Signature is Valid.") == 3, report
    with ctx.db.session() as session:
        batches = session.scalars(select(AuditEvent).where(AuditEvent.kind == "signature.batch_requested")).all()
        assert len(batches) == 1
    assert meeting.pending_approvals(ctx, chair) == []
    # asking again changes nothing
    again = meeting.batch_status(ctx, chair, start.batch_id)
    assert [i.status for i in again.items] == ["signed"] * 3


def test_a_document_changed_meanwhile_fails_alone(
    mctx: Context, service: RemoteService, phone: Phone, pdf_checks: Any
) -> None:
    ctx = mctx
    chair = person(ctx, "chair")
    ids = [memo_for_approval(ctx, t) for t in TITLES]
    start = meeting.approve_selected(ctx, chair, [*ids, 999999])
    assert [r.document_id for r in start.refused] == [999999]
    assert len(start.request_ids) == 3
    # while the chair's phone is still in the pocket, the first memo is returned for revision
    routing.perform_action(ctx, chair, ids[0], "return", comment="Bổ sung dự toán")
    assert state_of(ctx, ids[0]) == "draft"
    before = len(revisions_of(ctx, ids[0]))
    confirm(phone, service, start.batch_id)

    done = meeting.batch_status(ctx, chair, start.batch_id)
    by_doc = {i.document_id: i for i in done.items}
    assert by_doc[ids[0]].status == "failed" and by_doc[ids[0]].message
    assert by_doc[ids[1]].status == "signed" and by_doc[ids[2]].status == "signed"
    assert len(revisions_of(ctx, ids[0])) == before  # nothing half-signed on the returned memo
    for document_id in ids[1:]:
        final = revisions_of(ctx, document_id)[-1]
        assert all(s.intact and s.valid for s in pdf_checks.pyhanko(final))


def test_a_declined_confirmation_signs_nothing(mctx: Context, service: RemoteService, phone: Phone) -> None:
    ctx = mctx
    chair = person(ctx, "chair")
    ids = [memo_for_approval(ctx, TITLES[0])]
    before = {d: len(revisions_of(ctx, d)) for d in ids}
    start = meeting.approve_selected(ctx, chair, ids)
    status, page = phone.answer(phone_url(service, start.batch_id), action="decline")
    assert status == 200, page
    done = meeting.batch_status(ctx, chair, start.batch_id)
    assert done.phone_status == "declined"
    assert [i.status for i in done.items] == ["declined"]
    assert all("declined" in i.message for i in done.items)
    assert {d: len(revisions_of(ctx, d)) for d in ids} == before
    assert all(state_of(ctx, d) == "approve" for d in ids)
    # the chair can start again
    assert meeting.approve_selected(ctx, chair, ids).batch_id


def test_cancel_withdraws_the_confirmation(mctx: Context, service: RemoteService, phone: Phone) -> None:
    ctx = mctx
    chair = person(ctx, "chair")
    ids = [memo_for_approval(ctx, TITLES[0])]
    start = meeting.approve_selected(ctx, chair, ids)
    cancelled = meeting.cancel_batch(ctx, chair, start.batch_id)
    assert [i.status for i in cancelled.items] == ["cancelled"]
    assert cancelled.phone_status == "cancelled"
    _, _, page = phone.get(phone_url(service, start.batch_id))
    assert 'name="pin"' not in page and "Đã xác nhận" not in page  # nothing left to confirm
    assert len(revisions_of(ctx, ids[0])) == AT_CHAIR


def test_an_expired_confirmation_ends_clearly(
    remote_tokens: Any, tmp_path: Path, dev_pki: Path, db_url: str
) -> None:
    short = start_service(remote_tokens, tmp_path / "short", ttl=2)
    try:
        settings = remote_settings(tmp_path, dev_pki, db_url, short.url)
        from esign.services.demo import seed_people
        from esign.services.migrate import upgrade
        from tests.conftest import DEMO_PEOPLE

        upgrade(settings)
        ctx = remote_context(settings, short.url)
        seed_people(ctx, DEMO_PEOPLE)
        chair = person(ctx, "chair")
        ids = [memo_for_approval(ctx, TITLES[0])]
        start = meeting.approve_selected(ctx, chair, ids)
        time.sleep(2.5)
        done = meeting.batch_status(ctx, chair, start.batch_id)
        assert done.phone_status == "expired"
        assert [i.status for i in done.items] == ["expired"]
        assert all(len(revisions_of(ctx, d)) == AT_CHAIR for d in ids)
        ctx.close()
    finally:
        short.stop()


def test_a_restart_while_pending_then_completes(
    meeting_settings: Any, service: RemoteService, phone: Phone, pdf_checks: Any
) -> None:
    first = remote_context(meeting_settings, service.url)
    from esign.services.demo import seed_people
    from tests.conftest import DEMO_PEOPLE

    seed_people(first, DEMO_PEOPLE)
    chair = person(first, "chair")
    ids = [memo_for_approval(first, t) for t in TITLES]
    start = meeting.approve_selected(first, chair, ids)
    first.close()  # the server stops while the phone has not answered
    confirm(phone, service, start.batch_id)

    second = remote_context(meeting_settings, service.url)
    try:
        done = meeting.batch_status(second, person(second, "chair"), start.batch_id)
        assert [i.status for i in done.items] == ["signed"] * 3
        for document_id in ids:
            assert all(s.intact and s.valid for s in pdf_checks.pyhanko(revisions_of(second, document_id)[-1]))
    finally:
        second.close()


def test_an_officer_without_a_mobile_certificate_is_told(mctx: Context) -> None:
    adviser = person(mctx, "adviser", 1)  # lequangcuong: his mobile key is not in esign-remote
    with pytest.raises(CertificateRefused):
        meeting.approve_selected(mctx, adviser, [1])
    with mctx.db.session() as session:
        assert session.scalar(select(SignatureRequest.id).limit(1)) is None


def test_too_many_wrong_pins_on_the_phone_end_with_a_clear_reason(
    mctx: Context, service: RemoteService, phone: Phone
) -> None:
    """The officer's own mobile signature from the document page: a confirmation of one."""
    ctx = mctx
    officer = person(ctx, "officer")
    document_id = documents.compose_document(ctx, officer, EXAMPLE_MEMO)
    with ctx.db.session() as session:
        mobile = session.scalar(select(Certificate.id).where(Certificate.user_id == officer.id,
                                                             Certificate.device == "mobile"))
    outcome = signing.request_signature(ctx, officer, document_id, "submit", certificate_id=mobile,
                                        advisers=[person(ctx, "adviser").username])
    assert outcome.status == "pending"
    batch_id = meeting.batch_of_request(ctx, officer, outcome.request_id)
    assert batch_id
    waiting = meeting.batch_status(ctx, officer, batch_id)
    assert [i.status for i in waiting.items] == ["waiting"] and waiting.code
    for _ in range(3):  # esign-remote allows three tries per confirmation
        _, page = phone.answer(phone_url(service, batch_id), pin="999999")
        assert "Đã xác nhận" not in page
    done = meeting.batch_status(ctx, officer, batch_id)
    assert done.phone_status == "failed"
    assert [i.status for i in done.items] == ["failed"] and "PIN" in done.items[0].message
    assert len(revisions_of(ctx, document_id)) == 1 and state_of(ctx, document_id) == "draft"


def test_the_service_away_is_reported_and_the_requests_stay_waiting(
    remote_tokens: Any, tmp_path: Path, dev_pki: Path, db_url: str, phone: Phone
) -> None:
    from esign.services.demo import seed_people
    from esign.services.migrate import upgrade
    from tests.conftest import DEMO_PEOPLE

    running = start_service(remote_tokens, tmp_path / "away")
    settings = remote_settings(tmp_path, dev_pki, db_url, running.url)
    upgrade(settings)
    ctx = remote_context(settings, running.url)
    try:
        seed_people(ctx, DEMO_PEOPLE)
        chair = person(ctx, "chair")
        ids = [memo_for_approval(ctx, TITLES[0])]
        start = meeting.approve_selected(ctx, chair, ids)
        running.stop()
        away = meeting.batch_status(ctx, chair, start.batch_id)
        assert "cannot be reached" in away.provider_error
        assert [i.status for i in away.items] == ["waiting"]
        # back again (same database and port): the confirmation goes on
        running = start_service(remote_tokens, tmp_path / "away", port=running.port)
        confirm(phone, running, start.batch_id)
        assert [i.status for i in meeting.batch_status(ctx, chair, start.batch_id).items] == ["signed"]
    finally:
        ctx.close()
        running.stop()


def test_a_demo_seeded_before_the_service_moves_its_mobile_certificates(
    meeting_settings: Any, service: RemoteService
) -> None:
    """`esign demo` on a database seeded without esign-remote: the same certificates move to it."""
    import dataclasses

    from esign.services.context import make_backends
    from esign.services.demo import seed_people, use_remote_mobile_certificates
    from tests.conftest import DEMO_PEOPLE

    local = dataclasses.replace(meeting_settings, signing=dataclasses.replace(
        meeting_settings.signing, backends=("softkey", "agent")))
    before = Context.create(local, backends=make_backends(local))
    try:
        seed_people(before, DEMO_PEOPLE)
        assert mobile_backend_of(before, person(before, "chair")) == "softkey"
    finally:
        before.close()
    ctx = remote_context(meeting_settings, service.url)
    try:
        moved = use_remote_mobile_certificates(ctx)
        # the test service holds the officer's and the chair's mobile keys, not the others'
        assert sorted(moved) == ["nguyenthiquynhtrieu-mobile", "nguyenvana-mobile"]
        assert mobile_backend_of(ctx, person(ctx, "chair")) == "csc"
        assert mobile_backend_of(ctx, person(ctx, "adviser")) == "softkey"
        assert use_remote_mobile_certificates(ctx) == []  # once
    finally:
        ctx.close()
