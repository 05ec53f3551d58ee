"""Timestamps and long-term validation through the services: the issued memo is
PAdES B-LTA, every signature B-LT, validated offline with certomancer's services
stopped; a revoked certificate never signs; archived documents get renewed."""

from __future__ import annotations

import asyncio
import itertools
from io import BytesIO
from pathlib import Path

import pytest
from asn1crypto import pem, x509
from sqlalchemy import func, select

from esign.errors import CertificateRefused
from esign.models import Certificate, Revision, SignatureRequest, User
from esign.services import archive, signing, users
from esign.services.context import Context
from tests.conftest import DEMO_PEOPLE, _context, make_settings
from tests.services.test_chain import person, revisions_of, state_of, submit

PERSONAL_FIELDS = 4  # drafter, two advisers, chair; then the agency seal


@pytest.fixture
def ltv_ctx(tmp_path: Path, dev_pki: Path, pki_services):  # type: ignore[no-untyped-def]
    """The demo ward on SQLite, with the test PKI's TSA and hard-fail revocation checks."""
    from esign.services.demo import seed_people

    settings = make_settings(tmp_path, dev_pki).replace(
        pki={"tsa_url": pki_services.tsa_url, "revocation": "hard-fail"}
    )
    ctx = _context(settings)
    seed_people(ctx, DEMO_PEOPLE)
    yield ctx
    ctx.close()


def _root(dev_pki: Path) -> x509.Certificate:
    return x509.Certificate.load(pem.unarmor((dev_pki / "root.cert.pem").read_bytes())[2])


def issue(ctx: Context) -> int:
    document_id = submit(ctx)
    for i in range(2):
        signing.request_signature(ctx, person(ctx, "adviser", i), document_id, "advise")
    signing.request_signature(ctx, person(ctx, "chair"), document_id, "approve")
    signing.request_signature(ctx, person(ctx, "clerk"), document_id, "issue")
    assert state_of(ctx, document_id) == "issued"
    return document_id


def lta_results(data: bytes, root: x509.Certificate) -> list[object]:
    """pyHanko's AdES LTA validation of every signature, from the file's own data only."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation.ades import ades_lta_validation
    from pyhanko.sign.validation.policy_decl import (
        PdfSignatureValidationSpec,
        RevinfoOnlineFetchingRule,
        RevocationInfoGatheringSpec,
        SignatureValidationSpec,
    )
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
    from pyhanko_certvalidator.registry import SimpleTrustManager

    spec = PdfSignatureValidationSpec(
        SignatureValidationSpec(
            cert_validation_policy=CertValidationPolicySpec(
                trust_manager=SimpleTrustManager.build(trust_roots=[root]),
                revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO),
            ),
            revinfo_gathering_policy=RevocationInfoGatheringSpec(
                online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY
            ),
        )
    )
    reader = PdfFileReader(BytesIO(data))

    async def run() -> list[object]:
        return [await ades_lta_validation(e, spec) for e in reader.embedded_regular_signatures]

    return asyncio.run(run())


def assert_lta_ok(data: bytes, root: x509.Certificate) -> None:
    from pyhanko.sign.validation.ades import AdESPassed

    results = lta_results(data, root)
    assert len(results) == PERSONAL_FIELDS + 1
    for result in results:
        assert result.ades_subindic == AdESPassed.OK, result.ades_subindic  # type: ignore[attr-defined]
        assert result.api_status.bottom_line  # type: ignore[attr-defined]


def test_the_issued_memo_is_pades_b_lta_and_validates_from_its_own_data(
    ltv_ctx: Context, dev_pki: Path, pki_services, pdf_checks
) -> None:  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    from esign.verify import TrustStore, verify_pdf

    ctx = ltv_ctx
    document_id = issue(ctx)
    chain = revisions_of(ctx, document_id)
    # r0, drafter, two advisers, chair, seal, then the document timestamp: one stored revision a step
    assert len(chain) == 7
    for earlier, later in itertools.pairwise(chain):
        assert later.startswith(earlier) and len(later) > len(earlier)
    with ctx.db.session() as session:
        kinds = list(session.scalars(select(Revision.kind).order_by(Revision.id)))
    assert kinds == ["initial"] + ["signature"] * 5 + ["timestamp"]

    final = chain[-1]
    reader = PdfFileReader(BytesIO(final))
    regular = reader.embedded_regular_signatures
    assert [e.field_name for e in regular] == ["drafter", "adviser_1", "adviser_2", "chair", "seal"]
    # the last revision is the document timestamp, covering the whole file
    last = reader.embedded_signatures[-1]
    assert last.sig_object_type == "/DocTimeStamp"
    assert last.byte_range[2] + last.byte_range[3] == len(final)

    # B-T: a signature timestamp on every signature; B-LT: the signer's certificates and
    # OCSP responses in the DSS
    dss = DocumentSecurityStore.read_dss(reader)
    dss_certs = {c.dump() for c in dss.load_certs()}
    assert len(dss.ocsps) >= PERSONAL_FIELDS + 1 and dss.crls
    for embedded in regular:
        unsigned = embedded.signer_info["unsigned_attrs"]
        assert "signature_time_stamp_token" in [a["type"].native for a in unsigned], embedded.field_name
        assert embedded.signer_cert.dump() in dss_certs, embedded.field_name

    root = _root(dev_pki)
    with pki_services.stopped():
        # AdES LTA validation with nothing but what the file holds
        assert_lta_ok(final, root)
        # every personal signature, hard-fail, no fetching: its revocation data is in the file
        for embedded in regular[:PERSONAL_FIELDS]:
            vc = dss.as_validation_context(
                {"trust_roots": [root], "allow_fetching": False, "revocation_mode": "hard-fail"}
            )
            status = validate_pdf_signature(embedded, vc)
            assert status.bottom_line, status.pretty_print_details()
            assert status.timestamp_validity is not None and status.timestamp_validity.valid

        report = verify_pdf(final, TrustStore.from_pem_files([dev_pki / "root.cert.pem"]))
        assert report.verdict.name == "VALID", report

    # poppler checks the five signatures; it cannot check document timestamps (RFC 3161 subfilter)
    pdfsig = pdf_checks.pdfsig(final)
    assert pdfsig.count("Signature Validation: Signature is Valid.") == 5, pdfsig
    assert "Total document signed" in pdfsig.split("Field Name: DocTimeStamp1")[1], pdfsig


def test_ltv_refresh_adds_a_document_timestamp_and_the_file_still_validates(
    ltv_ctx: Context, dev_pki: Path, pki_services
) -> None:  # type: ignore[no-untyped-def]
    from pyhanko.pdf_utils.reader import PdfFileReader

    from esign.verify import TrustStore, verify_pdf

    ctx = ltv_ctx
    document_id = issue(ctx)
    before = revisions_of(ctx, document_id)
    # the development TSA's certificate runs until 2034: nothing is due within 90 days
    assert archive.refresh_ltv(ctx, before_days=90) == []
    due = archive.refresh_ltv(ctx, before_days=365 * 20, dry_run=True)
    assert [(r.document_id, r.outcome) for r in due] == [(document_id, "due")]
    assert revisions_of(ctx, document_id) == before

    done = archive.refresh_ltv(ctx, before_days=365 * 20)
    assert [(r.document_id, r.outcome, r.revision_index) for r in done] == [(document_id, "refreshed", 7)]
    after = revisions_of(ctx, document_id)
    assert len(after) == len(before) + 1 and after[-1].startswith(before[-1])
    reader = PdfFileReader(BytesIO(after[-1]))
    stamps = reader.embedded_timestamp_signatures
    assert len(stamps) == 2 and reader.embedded_signatures[-1] is not None
    assert stamps[-1].byte_range[2] + stamps[-1].byte_range[3] == len(after[-1])
    with pki_services.stopped():
        assert_lta_ok(after[-1], _root(dev_pki))
        report = verify_pdf(after[-1], TrustStore.from_pem_files([dev_pki / "root.cert.pem"]))
        assert report.verdict.name == "VALID", report


def _bind_revoked(ctx: Context, owner: User) -> int:
    with ctx.db.session() as session:
        cert = users.bind_certificate(session, ctx, None, owner=session.get(User, owner.id), device="token",
                                      backend="softkey", credential="revoked-token")
        return cert.id


def test_a_revoked_certificate_is_refused_before_signing_and_nothing_is_stored(demo: Context) -> None:
    ctx = demo
    document_id = submit(ctx)
    adviser = person(ctx, "adviser", 0)
    revoked = _bind_revoked(ctx, adviser)
    with ctx.db.session() as session:
        requests_before = session.scalar(select(func.count()).select_from(SignatureRequest))
    with pytest.raises(CertificateRefused, match=r"was revoked on 2025-06-01T07:00:00\+07:00; it cannot sign"):
        signing.request_signature(ctx, adviser, document_id, "advise", certificate_id=revoked)
    assert len(revisions_of(ctx, document_id)) == 2
    assert state_of(ctx, document_id) == "advise"
    with ctx.db.session() as session:
        assert session.scalar(select(func.count()).select_from(SignatureRequest)) == requests_before
    # the officer's good certificate still signs
    signing.request_signature(ctx, adviser, document_id, "advise")
    assert len(revisions_of(ctx, document_id)) == 3


def test_an_unknown_status_is_refused_in_hard_fail_mode_and_allowed_in_soft_fail(
    ltv_ctx: Context, pki_services
) -> None:  # type: ignore[no-untyped-def]
    ctx = ltv_ctx
    officer = person(ctx, "officer")
    with ctx.db.session() as session:
        token = session.scalar(select(Certificate.id).where(Certificate.user_id == officer.id,
                                                            Certificate.device == "token"))
    from esign.services import documents
    from esign.services.demo import EXAMPLE_MEMO

    document_id = documents.compose_document(ctx, officer, EXAMPLE_MEMO)
    advisers = [person(ctx, "adviser", 0).username]
    with pki_services.stopped():
        with pytest.raises(CertificateRefused, match="cannot be checked now"):
            signing.request_signature(ctx, officer, document_id, "submit", certificate_id=token,
                                      advisers=advisers)
        assert len(revisions_of(ctx, document_id)) == 1
        # soft-fail (development) lets the check pass; the timestamp is still needed to sign
        ctx.settings = ctx.settings.replace(pki={"revocation": "soft-fail", "tsa_url": ""})
        signing.request_signature(ctx, officer, document_id, "submit", certificate_id=token,
                                  advisers=advisers)
    assert len(revisions_of(ctx, document_id)) == 2
