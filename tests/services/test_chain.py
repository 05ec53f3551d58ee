"""The whole chain through the services, on SQLite and PostgreSQL, checked by
pyHanko and by poppler's pdfsig against the development root."""

from __future__ import annotations

import itertools
import threading

import pytest
from sqlalchemy import select

from esign.errors import (
    ActionNotAllowed,
    CertificateRefused,
    CommentRequired,
    Conflict,
    SignatureValueInvalid,
)
from esign.models import (
    Certificate,
    DocumentVersion,
    Revision,
    SignatureRequest,
    User,
    WorkflowInstance,
)
from esign.services import documents, routing, signing
from esign.services.audit import check_chain
from esign.services.context import Context
from esign.services.demo import EXAMPLE_MEMO


def person(ctx: Context, role: str, index: int = 0) -> User:
    with ctx.db.session() as session:
        people = [u for u in session.scalars(select(User).order_by(User.id)) if role in u.roles]
        return people[index]


def certificate_id(ctx: Context, user: User, device: str = "token") -> int:
    with ctx.db.session() as session:
        return session.scalar(select(Certificate.id).where(Certificate.user_id == user.id,
                                                           Certificate.device == device))


def state_of(ctx: Context, document_id: int) -> str:
    with ctx.db.session() as session:
        return session.scalar(select(WorkflowInstance.state).where(WorkflowInstance.document_id == document_id))


def revisions_of(ctx: Context, document_id: int) -> list[bytes]:
    with ctx.db.session() as session:
        version = session.scalar(select(DocumentVersion).where(DocumentVersion.document_id == document_id)
                                 .order_by(DocumentVersion.number.desc()).limit(1))
        rows = session.scalars(select(Revision).where(Revision.version_id == version.id).order_by(Revision.index))
        return [ctx.blobs.read(r.sha256) for r in rows]


def submit(ctx: Context) -> int:
    officer = person(ctx, "officer")
    document_id = documents.compose_document(ctx, officer, EXAMPLE_MEMO)
    advisers = [person(ctx, "adviser", 0).username, person(ctx, "adviser", 1).username]
    signing.request_signature(ctx, officer, document_id, "submit", advisers=advisers)
    return document_id


def test_memo_goes_from_draft_to_issued_with_a_valid_chain(demo: Context, pdf_checks) -> None:
    ctx = demo
    document_id = submit(ctx)
    assert state_of(ctx, document_id) == "advise"
    for i in range(2):
        adviser = person(ctx, "adviser", i)
        signing.request_signature(ctx, adviser, document_id, "advise", comment=f"Ý kiến {i + 1}: đồng ý")
    assert state_of(ctx, document_id) == "approve"
    signing.request_signature(ctx, person(ctx, "chair"), document_id, "approve")
    assert state_of(ctx, document_id) == "issue"
    signing.request_signature(ctx, person(ctx, "clerk"), document_id, "issue")
    assert state_of(ctx, document_id) == "issued"

    chain = revisions_of(ctx, document_id)
    assert len(chain) == 6  # r0 + drafter + 2 advisers + chair + seal
    for earlier, later in itertools.pairwise(chain):
        assert later.startswith(earlier) and len(later) > len(earlier)

    final = chain[-1]
    statuses = pdf_checks.pyhanko(final)
    assert len(statuses) == 5
    for status in statuses:
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
        assert status.docmdp_ok is not False
    from io import BytesIO

    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.fields import MDPPerm

    embedded = PdfFileReader(BytesIO(final)).embedded_regular_signatures
    assert embedded[0].docmdp_level == MDPPerm.FILL_FORMS  # the drafter certifies, P=2
    assert all(e.docmdp_level is None for e in embedded[1:])
    report = pdf_checks.pdfsig(final)
    assert report.count("Signature Validation: Signature is Valid.") == 5, report
    assert "Total document signed" in report.split("Signature #5")[1], report

    with ctx.db.session() as session:
        assert check_chain(session) == []


def test_signing_out_of_turn_is_refused(demo: Context) -> None:
    ctx = demo
    document_id = submit(ctx)
    with pytest.raises(ActionNotAllowed):
        signing.request_signature(ctx, person(ctx, "chair"), document_id, "approve")
    with pytest.raises(ActionNotAllowed):
        signing.request_signature(ctx, person(ctx, "clerk"), document_id, "advise")
    assert len(revisions_of(ctx, document_id)) == 2


def test_a_certificate_of_another_officer_is_refused(demo: Context) -> None:
    ctx = demo
    document_id = submit(ctx)
    adviser, other = person(ctx, "adviser", 0), person(ctx, "adviser", 1)
    with pytest.raises(CertificateRefused, match="not yours"):
        signing.request_signature(ctx, adviser, document_id, "advise",
                                  certificate_id=certificate_id(ctx, other))
    assert len(revisions_of(ctx, document_id)) == 2


def test_deferred_signature_completes_after_a_restart(demo: Context, settings) -> None:
    """Prepare in one process, sign the tbs on the device, finish in a fresh one."""
    ctx = demo
    document_id = submit(ctx)
    adviser = person(ctx, "adviser", 0)
    with ctx.db.session() as session:
        cert = session.scalar(select(Certificate).where(Certificate.user_id == adviser.id,
                                                        Certificate.device == "token"))
        # the adviser's token is on the desktop: the server only prepares
        cert.backend = "agent"
        credential = cert.credential
    outcome = signing.request_signature(ctx, adviser, document_id, "advise", comment="Đồng ý",
                                        certificate_id=certificate_id(ctx, adviser))
    assert outcome.status == "pending" and outcome.tbs
    device = ctx.backends["softkey"]
    from esign.signing.backend import SignRequest

    value = device.sign(SignRequest(credential=credential, tbs=outcome.tbs)).signature
    ctx.close()

    restarted = Context.create(settings)
    try:
        done = signing.complete_signature(restarted, outcome.request_id, value)
        assert done.status == "completed" and done.revision_index == 2
        again = signing.complete_signature(restarted, outcome.request_id, value)
        assert again.status == "completed" and again.revision_index == 2
        assert len(revisions_of(restarted, document_id)) == 3
    finally:
        restarted.close()


def test_a_tampered_signature_value_is_refused_and_nothing_is_stored(demo: Context) -> None:
    ctx = demo
    document_id = submit(ctx)
    adviser = person(ctx, "adviser", 0)
    with ctx.db.session() as session:
        cert = session.scalar(select(Certificate).where(Certificate.user_id == adviser.id,
                                                        Certificate.device == "token"))
        cert.backend = "agent"
        credential = cert.credential
    outcome = signing.request_signature(ctx, adviser, document_id, "advise",
                                        certificate_id=certificate_id(ctx, adviser))
    from esign.signing.backend import SignRequest

    value = bytearray(ctx.backends["softkey"].sign(SignRequest(credential=credential, tbs=outcome.tbs)).signature)
    value[10] ^= 0x01
    with pytest.raises(SignatureValueInvalid):
        signing.complete_signature(ctx, outcome.request_id, bytes(value))
    # another officer's key signing the right tbs is refused too
    other = person(ctx, "adviser", 1)
    foreign = ctx.backends["softkey"].sign(SignRequest(credential=f"{other.username}-token", tbs=outcome.tbs))
    with pytest.raises(SignatureValueInvalid):
        signing.complete_signature(ctx, outcome.request_id, foreign.signature)
    assert len(revisions_of(ctx, document_id)) == 2
    with ctx.db.session() as session:
        assert session.get(SignatureRequest, outcome.request_id).status == "pending"


def test_two_advisers_signing_at_once_make_two_revisions_in_sequence(demo: Context, pdf_checks) -> None:
    ctx = demo
    document_id = submit(ctx)
    advisers = [person(ctx, "adviser", 0), person(ctx, "adviser", 1)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def sign(adviser: User) -> None:
        try:
            barrier.wait()
            signing.request_signature(ctx, adviser, document_id, "advise")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=sign, args=(a,)) for a in advisers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    chain = revisions_of(ctx, document_id)
    assert len(chain) == 4
    assert chain[3].startswith(chain[2]) and chain[2].startswith(chain[1])
    assert state_of(ctx, document_id) == "approve"
    assert all(s.intact and s.valid for s in pdf_checks.pyhanko(chain[3]))


def test_a_request_prepared_on_an_old_head_cannot_fork_the_chain(demo: Context) -> None:
    ctx = demo
    document_id = submit(ctx)
    first, second = person(ctx, "adviser", 0), person(ctx, "adviser", 1)
    with ctx.db.session() as session:
        cert = session.scalar(select(Certificate).where(Certificate.user_id == first.id,
                                                        Certificate.device == "token"))
        cert.backend = "agent"
        credential = cert.credential
    pending = signing.request_signature(ctx, first, document_id, "advise",
                                        certificate_id=certificate_id(ctx, first))
    signing.request_signature(ctx, second, document_id, "advise")  # lands first
    from esign.signing.backend import SignRequest

    value = ctx.backends["softkey"].sign(SignRequest(credential=credential, tbs=pending.tbs)).signature
    with pytest.raises(Conflict):
        signing.complete_signature(ctx, pending.request_id, value)
    assert len(revisions_of(ctx, document_id)) == 3
    # signing again on the new head works
    signing.request_signature(ctx, first, document_id, "advise")
    assert len(revisions_of(ctx, document_id)) == 4


def test_return_for_revision_starts_a_new_version_and_keeps_the_old(demo: Context) -> None:
    ctx = demo
    document_id = submit(ctx)
    adviser = person(ctx, "adviser", 0)
    with pytest.raises(CommentRequired):
        routing.perform_action(ctx, adviser, document_id, "return")
    routing.perform_action(ctx, adviser, document_id, "return", comment="Bổ sung dự toán kinh phí")
    assert state_of(ctx, document_id) == "draft"
    with ctx.db.session() as session:
        versions = session.scalars(select(DocumentVersion).where(DocumentVersion.document_id == document_id)
                                   .order_by(DocumentVersion.number)).all()
        assert [v.number for v in versions] == [1, 2]
        assert versions[0].superseded and not versions[1].superseded
        assert len(versions[0].revisions) == 2 and len(versions[1].revisions) == 1
    officer = person(ctx, "officer")
    signing.request_signature(ctx, officer, document_id, "submit", advisers=[adviser.username])
    assert state_of(ctx, document_id) == "advise"


def test_an_expired_certificate_is_refused(demo: Context) -> None:
    from datetime import timedelta

    ctx = demo
    document_id = submit(ctx)
    adviser = person(ctx, "adviser", 0)
    with ctx.db.session() as session:
        not_after = session.scalar(select(Certificate.not_after).where(Certificate.user_id == adviser.id))
    ctx.clock = lambda: not_after + timedelta(days=1)
    with pytest.raises(CertificateRefused, match="not valid now"):
        signing.request_signature(ctx, adviser, document_id, "advise")
    assert len(revisions_of(ctx, document_id)) == 2


def test_the_chair_can_reject_with_a_reason(demo: Context) -> None:
    ctx = demo
    document_id = submit(ctx)
    for i in range(2):
        signing.request_signature(ctx, person(ctx, "adviser", i), document_id, "advise")
    chair = person(ctx, "chair")
    with pytest.raises(CommentRequired):
        routing.perform_action(ctx, chair, document_id, "reject")
    routing.perform_action(ctx, chair, document_id, "reject", comment="Chưa phù hợp kế hoạch năm")
    assert state_of(ctx, document_id) == "rejected"
    with pytest.raises(ActionNotAllowed):
        signing.request_signature(ctx, chair, document_id, "approve")


def test_the_same_request_sent_twice_at_once_signs_once(demo: Context) -> None:
    ctx = demo
    officer = person(ctx, "officer")
    document_id = documents.compose_document(ctx, officer, EXAMPLE_MEMO)
    advisers = [person(ctx, "adviser", 0).username]
    outcomes, errors = [], []
    barrier = threading.Barrier(2)

    def send() -> None:
        try:
            barrier.wait()
            outcomes.append(signing.request_signature(ctx, officer, document_id, "submit", advisers=advisers,
                                                      idempotency_key="same-click"))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert {o.request_id for o in outcomes} == {outcomes[0].request_id}
    assert len(revisions_of(ctx, document_id)) == 2
