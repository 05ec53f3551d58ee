"""The workflow check: a stored document against what the database recorded."""

from __future__ import annotations

from pathlib import Path

from esign.services import signing
from esign.services.context import Context
from esign.services.verification import audit_database, verify_document
from esign.verify import Verdict

from .test_chain import person, revisions_of, submit


def issue(ctx: Context) -> int:
    document_id = submit(ctx)
    for i in range(2):
        signing.request_signature(ctx, person(ctx, "adviser", i), document_id, "advise")
    signing.request_signature(ctx, person(ctx, "chair"), document_id, "approve")
    signing.request_signature(ctx, person(ctx, "clerk"), document_id, "issue")
    return document_id


def test_an_issued_document_matches_its_workflow_and_audit_trail(demo: Context, tmp_path: Path) -> None:
    ctx = demo
    document_id = issue(ctx)
    report = verify_document(ctx, document_id)
    assert report.verdict == Verdict.VALID, report.codes

    final = revisions_of(ctx, document_id)[-1]
    copy = verify_document(ctx, document_id, data=final)
    assert copy.verdict == Verdict.VALID, copy.codes

    summary = audit_database(ctx, tmp_path / "audit", jobs=2)
    assert summary.total == 1 and summary.by_verdict["VALID"] == 1
    assert (tmp_path / "audit" / "audit.csv").read_text().count("VALID") >= 1


def test_a_copy_that_is_not_the_stored_document_is_flagged(demo: Context) -> None:
    ctx = demo
    document_id = issue(ctx)
    chain = revisions_of(ctx, document_id)
    # an earlier, genuinely signed revision presented as the issued document
    earlier = verify_document(ctx, document_id, data=chain[2])
    assert earlier.verdict != Verdict.VALID
    # bytes added after the seal
    appended = verify_document(ctx, document_id, data=chain[-1] + b"\n% added later\n")
    assert appended.verdict in (Verdict.MODIFIED, Verdict.INVALID)
