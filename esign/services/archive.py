"""Archived documents: keep their long-term validation alive (PAdES B-LTA).

An issued document ends with a document timestamp. Its evidence lasts as long
as the certificate of the TSA that made the last timestamp; before that
certificate expires, a new document timestamp is added over the whole file
(with fresh revocation data for the previous one). ``esign ltv-refresh`` runs
:func:`refresh_ltv`, e.g. monthly from cron or the task queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from esign.errors import ConfigError, EsignError
from esign.models import Document, DocumentVersion, Revision
from esign.services import audit
from esign.services.context import Context
from esign.services.documents import append_revision, head_revision, lock_document, read_revision
from esign.signing import deferred

log = logging.getLogger(__name__)

#: renew this long before the last timestamp's certificate expires
DEFAULT_BEFORE_DAYS = 90


@dataclass(frozen=True)
class LtvRefresh:
    """What happened to one archived document."""

    document_id: int
    #: expiry of the certificate of the document's last timestamp (before any renewal)
    expires_at: datetime
    #: "refreshed", "due" (dry run) or "failed"
    outcome: str
    #: index of the new timestamp revision when refreshed
    revision_index: int | None = None
    message: str = ""


def _archived_heads(ctx: Context) -> list[tuple[int, int]]:
    """(document id, version id) of every current version whose head is a document timestamp."""
    last = (
        select(Revision.version_id, func.max(Revision.index).label("last"))
        .group_by(Revision.version_id)
        .subquery()
    )
    query = (
        select(DocumentVersion.document_id, DocumentVersion.id)
        .join(last, last.c.version_id == DocumentVersion.id)
        .join(Revision, (Revision.version_id == DocumentVersion.id) & (Revision.index == last.c.last))
        .where(DocumentVersion.superseded.is_(False), Revision.kind == "timestamp")
        .order_by(DocumentVersion.document_id)
    )
    with ctx.db.session() as session:
        return [(doc, version) for doc, version in session.execute(query)]


def refresh_ltv(ctx: Context, *, before_days: int = DEFAULT_BEFORE_DAYS, dry_run: bool = False) -> list[LtvRefresh]:
    """Add a document timestamp to every archived document whose last one expires within ``before_days``.

    Each document is renewed in its own transaction under its lock; a failure
    (TSA unreachable, last timestamp no longer valid) is reported for that
    document and the others go on.
    """
    timestamper = ctx.timestamper()
    if timestamper is None and not dry_run:
        raise ConfigError("[pki] tsa_url is empty: archived documents cannot be timestamped")
    horizon = ctx.now() + timedelta(days=before_days)
    results: list[LtvRefresh] = []
    for document_id, version_id in _archived_heads(ctx):
        with ctx.db.session() as session:
            version = session.get(DocumentVersion, version_id)
            expires = deferred.last_timestamp_expiry(read_revision(ctx, head_revision(session, version)))
        if expires is None or expires > horizon:
            continue
        if dry_run:
            results.append(LtvRefresh(document_id, expires, "due"))
            continue
        try:
            results.append(_refresh_one(ctx, document_id, version_id, expires))
        except EsignError as e:
            log.warning("document %s: LTV refresh failed: %s", document_id, e)
            results.append(LtvRefresh(document_id, expires, "failed", message=str(e)))
    return results


def _refresh_one(ctx: Context, document_id: int, version_id: int, expires: datetime) -> LtvRefresh:
    with ctx.db.session() as session:
        document: Document = lock_document(session, document_id)
        version = session.get(DocumentVersion, version_id)
        head = head_revision(session, version)
        timestamper = ctx.timestamper()
        assert timestamper is not None
        renewed = deferred.refresh_archival_timestamp(
            read_revision(ctx, head), timestamper, ctx.validation_context()
        )
        revision = append_revision(session, ctx, version, renewed, kind="timestamp", actor=None)
        audit.record(session, "document.timestamp_renewed", document=document, revision=revision.index,
                     sha256=revision.sha256, previous_expiry=expires.isoformat())
        return LtvRefresh(document_id, expires, "refreshed", revision_index=revision.index)
