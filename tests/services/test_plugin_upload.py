"""Whole-document plugins: an official's vendor plugin signs the downloaded PDF and uploads it.

The plugin is simulated with raw pyHanko on the development PKI's token keys,
on SQLite and PostgreSQL. An upload is accepted only when it is the stored
head plus exactly the step's signature by the assigned officer; anything else
is refused and nothing is stored.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from sqlalchemy import select

from esign.errors import CertificateRefused, EsignError, InvalidPdf, UploadRefused
from esign.models import AuditEvent, Revision
from esign.services import plugin_upload, signing, verification
from esign.services.blobs import sha256_hex
from esign.services.context import Context
from esign.verify.report import Verdict

from .test_chain import person, revisions_of, state_of, submit

Edit = Callable[[IncrementalPdfFileWriter], None]


def plugin_sign(ctx: Context, username: str, pdf: bytes, field: str, *, edit: Edit | None = None,
                certify: bool = False) -> bytes:
    """What a vendor plugin does: sign the downloaded PDF in an existing field, as an update."""
    p12 = Path(ctx.settings.pki.dev_dir) / f"{username}-token.p12"
    signer = signers.SimpleSigner.load_pkcs12(str(p12), passphrase=b"esign-dev")
    assert signer is not None
    writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
    if edit is not None:
        edit(writer)
    meta = signers.PdfSignatureMetadata(field_name=field, md_algorithm="sha256",
                                        subfilter=SigSeedSubFilter.PADES, certify=certify,
                                        docmdp_permissions=MDPPerm.FILL_FORMS)
    out = BytesIO()
    signers.PdfSigner(meta, signer).sign_pdf(writer, output=out, existing_fields_only=True)
    return out.getvalue()


def stamp_text_on_page(writer: IncrementalPdfFileWriter) -> None:
    """Page content changed in the same revision as the signature."""
    content = generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 72 Td (DA SUA) Tj ET")
    writer.add_stream_to_page(0, writer.add_object(content))


def stored(ctx: Context, document_id: int) -> tuple[int, int]:
    """(revisions of the current version, signature.uploaded events)."""
    with ctx.db.session() as session:
        uploads = len(session.scalars(select(AuditEvent).where(AuditEvent.kind == "signature.uploaded")).all())
    return len(revisions_of(ctx, document_id)), uploads


def test_a_correct_plugin_signature_is_accepted_and_advances_the_step(demo: Context, pdf_checks) -> None:
    ctx = demo
    document_id = submit(ctx)
    adviser = person(ctx, "adviser", 0)
    head = revisions_of(ctx, document_id)[-1]
    signed = plugin_sign(ctx, adviser.username, head, "adviser_1")

    outcome = plugin_upload.accept_signed_upload(ctx, adviser, document_id, "advise", signed,
                                                 comment="Đồng ý (ký bằng plugin)")

    assert outcome.status == "completed" and outcome.revision_index == 2
    chain = revisions_of(ctx, document_id)
    assert chain[-1] == signed and signed.startswith(chain[-2])
    with ctx.db.session() as session:
        row = session.scalar(select(Revision).where(Revision.sha256 == sha256_hex(signed)))
        assert row.kind == "upload" and row.field == "adviser_1" and row.certificate_id is not None
    assert stored(ctx, document_id) == (3, 1)
    for status in pdf_checks.pyhanko(signed):
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
        assert status.docmdp_ok is not False
    # esign's own verifier expects the uploaded signature like any other
    report = verification.verify_document(ctx, document_id)
    assert report.verdict == Verdict.VALID, report.reasons
    # uploading the same file again (a double click) is the same signature, not a second one
    again = plugin_upload.accept_signed_upload(ctx, adviser, document_id, "advise", signed)
    assert again.revision_index == 2 and again.message == "Already completed"
    assert stored(ctx, document_id) == (3, 1)
    # the second adviser signs in esign as usual on top of it: the step then moves on to the chair
    signing.request_signature(ctx, person(ctx, "adviser", 1), document_id, "advise")
    assert state_of(ctx, document_id) == "approve"


@pytest.mark.parametrize("case", ["content", "wrong_field", "other_officer", "earlier_byte", "two_signatures",
                                  "not_pdf"])
def test_an_upload_that_is_not_exactly_the_step_signature_is_refused(demo: Context, case: str) -> None:
    ctx = demo
    document_id = submit(ctx)
    adviser, other = person(ctx, "adviser", 0), person(ctx, "adviser", 1)
    head = revisions_of(ctx, document_id)[-1]
    expected: tuple[type[EsignError], str]
    if case == "content":
        data = plugin_sign(ctx, adviser.username, head, "adviser_1", edit=stamp_text_on_page)
        expected = (UploadRefused, "changes the document beyond adding the signature")
    elif case == "wrong_field":
        data = plugin_sign(ctx, adviser.username, head, "adviser_2")
        expected = (UploadRefused, "in the field adviser_2; this step signs the field adviser_1")
    elif case == "other_officer":
        data = plugin_sign(ctx, other.username, head, "adviser_1")
        expected = (CertificateRefused, "not registered to you")
    elif case == "earlier_byte":
        signed = bytearray(plugin_sign(ctx, adviser.username, head, "adviser_1"))
        at = head.index(b"/Producer") if b"/Producer" in head else len(head) // 2
        signed[at + 1] ^= 0x20  # one byte of the stored revision, e.g. /producer
        data = bytes(signed)
        expected = (UploadRefused, f"first {len(head)} bytes differ")
    elif case == "two_signatures":
        once = plugin_sign(ctx, adviser.username, head, "adviser_1")
        data = plugin_sign(ctx, adviser.username, once, "adviser_2")
        expected = (UploadRefused, "2 new signatures")
    else:
        data = b"PK\x03\x04 a signed Word file, not a PDF" + b"\x00" * 200
        expected = (InvalidPdf, "not a PDF")

    with pytest.raises(expected[0], match=expected[1]):
        plugin_upload.accept_signed_upload(ctx, adviser, document_id, "advise", data)

    assert stored(ctx, document_id) == (2, 0)
    assert state_of(ctx, document_id) == "advise"


def test_the_chairs_plugin_signature_carries_the_lock_of_its_field(demo: Context, pdf_checks) -> None:
    ctx = demo
    document_id = submit(ctx)
    for i in range(2):
        signing.request_signature(ctx, person(ctx, "adviser", i), document_id, "advise")
    chair = person(ctx, "chair")
    signed = plugin_sign(ctx, chair.username, revisions_of(ctx, document_id)[-1], "chair")

    plugin_upload.accept_signed_upload(ctx, chair, document_id, "approve", signed)

    assert state_of(ctx, document_id) == "issue"
    signing.request_signature(ctx, person(ctx, "clerk"), document_id, "issue")
    final = revisions_of(ctx, document_id)[-1]
    for status in pdf_checks.pyhanko(final):
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
        assert status.docmdp_ok is not False


def test_the_drafters_plugin_signature_must_certify_the_document(demo: Context) -> None:
    ctx = demo
    from esign.services import documents
    from esign.services.demo import EXAMPLE_MEMO

    officer = person(ctx, "officer")
    document_id = documents.compose_document(ctx, officer, EXAMPLE_MEMO)
    r0 = revisions_of(ctx, document_id)[-1]
    approval = plugin_sign(ctx, officer.username, r0, "drafter")
    with pytest.raises(UploadRefused, match="certification"):
        plugin_upload.accept_signed_upload(ctx, officer, document_id, "submit", approval,
                                           advisers=[person(ctx, "adviser", 0).username])

    certified = plugin_sign(ctx, officer.username, r0, "drafter", certify=True)
    plugin_upload.accept_signed_upload(ctx, officer, document_id, "submit", certified,
                                       advisers=[person(ctx, "adviser", 0).username])
    assert state_of(ctx, document_id) == "advise"
    signing.request_signature(ctx, person(ctx, "adviser", 0), document_id, "advise")
    assert state_of(ctx, document_id) == "approve"
