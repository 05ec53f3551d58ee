"""Verification of documents esign issued: the PDF's own checks plus the workflow check.

For a stored document the verifier is also told what the database recorded:
who signed which field in which order, with which certificate, and the hash of
every stored revision. A signer, role or order that differs, or bytes that do
not match the stored revisions, lower the verdict.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from esign.errors import NotFound
from esign.models import Certificate, Document, Revision, StepRecord
from esign.services.context import Context
from esign.services.documents import SIGNATURE_KINDS, current_version, head_revision
from esign.verify import (
    Expectation,
    ExpectedSignature,
    Report,
    TrustStore,
    verify_isolated,
    verify_pdf,
)
from esign.verify.audit import AuditSummary, write_summaries
from esign.workflow.definition import Definition


def trust_store(ctx: Context) -> TrustStore:
    """The configured roots (and nothing else), built once per context."""
    store = getattr(ctx, "_trust_store", None)
    if store is None:
        store = TrustStore.from_pem_files(ctx.settings.pki.trust_roots)
        ctx._trust_store = store  # type: ignore[attr-defined]
    return store


def expectation_for(session: Session, ctx: Context, document: Document) -> Expectation:
    """What the database says about the document's current version."""
    version = current_version(session, document)
    definition: Definition = ctx.workflows.get(document.workflow.definition_id,
                                               document.workflow.definition_version)
    revisions = session.scalars(select(Revision).where(Revision.version_id == version.id)
                                .order_by(Revision.index)).all()
    steps = {s.revision_id: s for s in session.scalars(select(StepRecord).where(
        StepRecord.version_id == version.id, StepRecord.revision_id.is_not(None)))}
    expected = []
    for revision in revisions:
        if revision.kind not in SIGNATURE_KINDS or revision.certificate_id is None:
            continue
        certificate = session.get(Certificate, revision.certificate_id)
        step = steps.get(revision.id)
        role = definition.states[step.state].role if step is not None else ""
        expected.append(ExpectedSignature(field=revision.field or "", fingerprint=certificate.fingerprint,
                                          role=role or ""))
    return Expectation(signatures=tuple(expected), revision_sha256=tuple(r.sha256 for r in revisions))


def verify_document(ctx: Context, document_id: int, *, data: bytes | None = None) -> Report:
    """Verify a stored document, or ``data`` (an uploaded copy) against what it should be.

    Uploaded bytes are untrusted: they are checked in a worker process with
    time and memory limits.
    """
    with ctx.db.session() as session:
        document = session.get(Document, document_id)
        if document is None:
            raise NotFound("This document does not exist")
        expected = expectation_for(session, ctx, document)
        stored = None if data is not None else ctx.blobs.read(
            head_revision(session, current_version(session, document)).sha256)
    if data is not None:
        return verify_isolated(data, trust_store(ctx), expected=expected)
    return verify_pdf(stored, trust_store(ctx), expected=expected)


#: reports of stored documents kept per context, keyed by the head revision's sha256
_CACHED_REPORTS = 256


def verify_document_cached(ctx: Context, document_id: int) -> Report:
    """``verify_document`` for a page many people open (the QR page): one verification per head revision.

    A revision's bytes never change, and neither do the database's records of it
    once it is the head; a new signature makes a new head and a new key.
    """
    with ctx.db.session() as session:
        document = session.get(Document, document_id)
        if document is None:
            raise NotFound("This document does not exist")
        head = head_revision(session, current_version(session, document)).sha256
    cache: OrderedDict[tuple[int, str], Report] | None = getattr(ctx, "_report_cache", None)
    lock: threading.Lock | None = getattr(ctx, "_report_lock", None)
    if cache is None or lock is None:
        cache, lock = OrderedDict(), threading.Lock()
        ctx._report_cache, ctx._report_lock = cache, lock  # type: ignore[attr-defined]
    key = (document_id, head)
    with lock:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    report = verify_document(ctx, document_id)
    if report.file_sha256 != head:
        return report  # signed meanwhile: the next visit caches the new head
    with lock:
        cache[key] = report
        while len(cache) > _CACHED_REPORTS:
            cache.popitem(last=False)
    return report


def verify_upload(ctx: Context, data: bytes) -> Report:
    """Verify a PDF nobody vouches for (the auditor's upload), in a worker with limits."""
    return verify_isolated(data, trust_store(ctx))


# --- bulk audit of the database --------------------------------------------------------------


@lru_cache(maxsize=4)
def _worker_trust(roots: tuple[str, ...]) -> TrustStore:
    return TrustStore.from_pem_files([Path(p) for p in roots])


def _verify_job(job: tuple[int, str, Expectation, tuple[str, ...]]) -> tuple[int, Report]:
    document_id, blob_path, expected, roots = job
    return document_id, verify_pdf(Path(blob_path).read_bytes(), _worker_trust(roots), expected=expected)


def audit_database(ctx: Context, out_dir: Path, *, jobs: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> AuditSummary:
    """Verify the current revision of every document, with the workflow check, on all cores."""
    roots = tuple(str(p) for p in ctx.settings.pki.trust_roots)
    work = []
    with ctx.db.session() as session:
        for document in session.scalars(select(Document).order_by(Document.id)):
            head = head_revision(session, current_version(session, document))
            work.append((document.id, str(ctx.blobs.path(head.sha256)),
                         expectation_for(session, ctx, document), roots))
    started = time.perf_counter()
    results: list[tuple[Path, Report]] = []
    with ProcessPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        for done, (document_id, report) in enumerate(pool.map(_verify_job, work, chunksize=8), 1):
            results.append((Path(f"document-{document_id}.pdf"), report))
            if progress:
                progress(done, len(work))
    return write_summaries(results, out_dir, time.perf_counter() - started)
