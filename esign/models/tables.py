from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from esign.models.base import Base, utcnow

ROLES = ("officer", "adviser", "chair", "clerk", "auditor", "admin")


class Unit(Base):
    """A ward or commune People's Committee (UBND phường/xã)."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    #: "ỦY BAN NHÂN DÂN PHƯỜNG BẾN NGHÉ"
    name: Mapped[str] = mapped_column(String(200))
    #: "ỦY BAN NHÂN DÂN QUẬN 1", printed above the agency name
    parent_name: Mapped[str] = mapped_column(String(200), default="")
    #: place in the date line: "Bến Nghé, ngày 28 tháng 11 năm 2026"
    place: Mapped[str] = mapped_column(String(100), default="")
    #: suffix of document numbers: "12/TTr-UBND"
    number_suffix: Mapped[str] = mapped_column(String(32), default="UBND")

    users: Mapped[list[User]] = relationship(back_populates="unit")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    #: job title printed in the signature block: "PHÓ CHỦ TỊCH"
    title: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str] = mapped_column(String(8), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: raised when the officer logs out or the password changes: older sessions end
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: the TOTP secret of the authenticator app, encrypted with a key derived from the
    #: app's secret key; empty: no TOTP
    totp_secret: Mapped[str] = mapped_column(String(200), default="", server_default="")
    #: the last TOTP time step accepted: a code is never accepted twice
    totp_last_step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    unit: Mapped[Unit] = relationship(back_populates="users")
    role_rows: Mapped[list[UserRole]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", back_populates="user"
    )
    certificates: Mapped[list[Certificate]] = relationship(
        back_populates="user", foreign_keys="Certificate.user_id"
    )

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(r.role for r in self.role_rows)


class UserRole(Base):
    __tablename__ = "user_roles"
    __table_args__ = (CheckConstraint(f"role IN {ROLES!r}", name="known_role"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)

    user: Mapped[User] = relationship(back_populates="role_rows")


class Certificate(Base):
    """A certificate bound to an officer (token, mobile) or to a unit (agency seal)."""

    __tablename__ = "certificates"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (unit_id IS NULL)", name="one_owner"),
        UniqueConstraint("backend", "credential"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    #: set for the agency seal, which belongs to the unit, not to a person
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    #: token | mobile | seal
    device: Mapped[str] = mapped_column(String(16))
    backend: Mapped[str] = mapped_column(String(16))
    #: the backend's name for the key (PKCS#12 name, token key label, CSC credential id)
    credential: Mapped[str] = mapped_column(String(200))
    der: Mapped[bytes] = mapped_column(LargeBinary)
    #: PEM of the intermediates up to (not including) the root, embedded in signatures
    chain_pem: Mapped[str] = mapped_column(Text, default="")
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    subject: Mapped[str] = mapped_column(String(500))
    issuer: Mapped[str] = mapped_column(String(500))
    serial: Mapped[str] = mapped_column(String(80))
    not_before: Mapped[datetime]
    not_after: Mapped[datetime]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User | None] = relationship(back_populates="certificates", foreign_keys=[user_id])


class Blob(Base):
    """Content-addressed bytes; the content lives in the blob store under its sha256."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (Index("ix_documents_unit_updated", "unit_id", "updated_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    #: random code in the public verification URL (the QR code)
    public_code: Mapped[str] = mapped_column(String(16), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    #: "TTr" (tờ trình), "BC" (báo cáo), "QĐ" (quyết định)
    doc_type: Mapped[str] = mapped_column(String(16), default="TTr")
    #: "composed" from a template or "uploaded"
    source: Mapped[str] = mapped_column(String(16))
    #: the memo's content as JSON, for composed documents (re-rendered for a new version)
    content_json: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    number: Mapped[str | None] = mapped_column(String(64), unique=True)
    issued_on: Mapped[date | None] = mapped_column(Date)
    #: bumped by every write that changes the document's chain or state; the
    #: UPDATE that bumps it is also the lock that serialises signing
    lock_version: Mapped[int] = mapped_column(Integer, default=0)

    unit: Mapped[Unit] = relationship()
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    versions: Mapped[list[DocumentVersion]] = relationship(
        back_populates="document", order_by="DocumentVersion.number"
    )
    workflow: Mapped[WorkflowInstance] = relationship(back_populates="document", uselist=False)


class DocumentVersion(Base):
    """One PDF chain. Returning a document for revision starts a new version."""

    __tablename__ = "document_versions"
    __table_args__ = (UniqueConstraint("document_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: why the previous version was returned
    reason: Mapped[str] = mapped_column(Text, default="")
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)

    document: Mapped[Document] = relationship(back_populates="versions")
    revisions: Mapped[list[Revision]] = relationship(
        back_populates="version", order_by="Revision.index"
    )


class Revision(Base):
    """Revision k of a version's PDF; a byte prefix of revision k+1."""

    __tablename__ = "revisions"
    # one revision per (version, index): a second writer on the same base fails here
    __table_args__ = (UniqueConstraint("version_id", "index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("document_versions.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    size: Mapped[int] = mapped_column(Integer)
    #: initial | signature | timestamp | upload
    kind: Mapped[str] = mapped_column(String(16))
    field: Mapped[str | None] = mapped_column(String(64))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    version: Mapped[DocumentVersion] = relationship(back_populates="revisions")
    created_by: Mapped[User | None] = relationship()
    certificate: Mapped[Certificate | None] = relationship()


class WorkflowInstance(Base):
    __tablename__ = "workflow_instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), unique=True)
    definition_id: Mapped[str] = mapped_column(String(64))
    definition_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]

    document: Mapped[Document] = relationship(back_populates="workflow")
    steps: Mapped[list[StepRecord]] = relationship(
        back_populates="instance", order_by="StepRecord.id"
    )


class StepRecord(Base):
    """One person's part in one step: assigned, then done, returned or reassigned."""

    __tablename__ = "step_records"
    __table_args__ = (
        # an officer's open steps in their unit, in due order, with the state the meeting count
        # filters on: the inbox page, its count and the navigation's counts read only this index
        Index("ix_step_records_open", "assignee_id", "status", "unit_id", "due_at", "id", "state"),
        # the officer's latest step (the live cursor) and every document they held a step on
        Index("ix_step_records_assignee", "assignee_id", "id", "document_id"),
        # who may see a document: the steps one holds on someone's behalf
        Index("ix_step_records_principal", "principal_id", "document_id",
              postgresql_where=text("principal_id IS NOT NULL"), sqlite_where=text("principal_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("workflow_instances.id"), index=True)
    #: the instance's document and its unit, copied so that an officer's steps are read
    #: from one index without joining instances and documents (migration 0007)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("document_versions.id"))
    state: Mapped[str] = mapped_column(String(32))
    assignee_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: the person on whose behalf the assignee acts (delegation), if any
    principal_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    #: KT. | TL. | TUQ. | Q. | TM. | "" (own authority)
    authority: Mapped[str] = mapped_column(String(8), default="")
    #: open | done | returned | rejected | reassigned | cancelled
    status: Mapped[str] = mapped_column(String(16), default="open")
    action: Mapped[str | None] = mapped_column(String(32))
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    revision_id: Mapped[int | None] = mapped_column(ForeignKey("revisions.id"))

    instance: Mapped[WorkflowInstance] = relationship(back_populates="steps")
    assignee: Mapped[User] = relationship(foreign_keys=[assignee_id])
    principal: Mapped[User | None] = relationship(foreign_keys=[principal_id])
    revision: Mapped[Revision | None] = relationship()


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("document_versions.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: the action the comment went with (advise, return, reject...), or "" for a note
    action: Mapped[str] = mapped_column(String(32), default="")
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    author: Mapped[User] = relationship()


class Delegation(Base):
    """Authority given by a principal to a delegate for a role, for a period."""

    __tablename__ = "delegations"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    delegate_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    authority: Mapped[str] = mapped_column(String(8))
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    principal: Mapped[User] = relationship(foreign_keys=[principal_id])
    delegate: Mapped[User] = relationship(foreign_keys=[delegate_id])


class SignatureRequest(Base):
    """Everything between prepare and finish of one signature, so it survives a restart."""

    __tablename__ = "signature_requests"
    __table_args__ = (Index("ix_signature_requests_open", "document_id", "status"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("document_versions.id"))
    step_id: Mapped[int] = mapped_column(ForeignKey("step_records.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("certificates.id"))
    action: Mapped[str] = mapped_column(String(32))
    field: Mapped[str] = mapped_column(String(64))
    backend: Mapped[str] = mapped_column(String(16))
    #: the revision the signature was prepared on; finishing on any other head is refused
    base_revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id"))
    #: blob of the prepared PDF (base revision + placeholder); its bytes must not change
    prepared_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"))
    #: the rest of esign.signing.deferred.Prepared, as JSON
    prepared_json: Mapped[str] = mapped_column(Text)
    #: DER of the CMS signed attributes: what the device signs
    tbs: Mapped[bytes] = mapped_column(LargeBinary)
    #: action arguments kept for finish (comment, number and date, authority) as JSON
    args_json: Mapped[str] = mapped_column(Text, default="{}")
    #: prepared | pending | completed | failed | expired | cancelled
    status: Mapped[str] = mapped_column(String(16), default="prepared")
    backend_ref: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str] = mapped_column(Text, default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    result_revision_id: Mapped[int | None] = mapped_column(ForeignKey("revisions.id"))

    document: Mapped[Document] = relationship()
    certificate: Mapped[Certificate] = relationship()
    step: Mapped[StepRecord] = relationship()


class NumberSequence(Base):
    """The register of issued numbers per unit, year and document type."""

    __tablename__ = "number_sequences"

    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class AuditEvent(Base):
    """Append-only, hash-chained: hash = sha256(prev_hash || canonical event)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"), index=True)
    kind: Mapped[str] = mapped_column(String(48))
    #: canonical JSON (sorted keys, no spaces)
    data: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    actor: Mapped[User | None] = relationship()


class AuditHead(Base):
    """A single row naming the chain's last event; appending locks it."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
