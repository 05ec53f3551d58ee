"""Fixtures of the meeting-mode tests: esign-remote as a real process over SoftHSM2 tokens
(the fixtures of tests/remote), and a context whose ``csc`` backend signs through it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from esign.config import Settings
from esign.models import Certificate, DocumentVersion, Revision, User, WorkflowInstance
from esign.services import documents, signing
from esign.services.context import Context, make_backends
from esign.services.demo import EXAMPLE_MEMO, seed_people
from esign.services.migrate import upgrade
from esign.signing.csc import CscBackend
from tests.conftest import DEMO_PEOPLE, make_settings
from tests.remote.conftest import (  # noqa: F401 -- fixtures used by the tests here
    CLIENT_ID,
    CLIENT_SECRET,
    RemoteService,
    phone,
    remote_tokens,
    service,
)

CHAIR = "nguyenthiquynhtrieu"


def remote_settings(base: Path, pki: Path, db_url: str, service_url: str) -> Settings:
    return make_settings(
        base, pki, db_url,
        signing={"backends": ["softkey", "agent", "csc"], "seal_backend": "softkey"},
        csc={"base_url": service_url, "client_id": CLIENT_ID},
    )


def remote_context(settings: Settings, service_url: str) -> Context:
    """A new esign process, as far as signing is concerned: fresh backends, fresh database engine."""
    local = dataclasses.replace(settings, signing=dataclasses.replace(settings.signing, backends=("softkey", "agent")))
    backends = make_backends(local)
    backends["csc"] = CscBackend(service_url, CLIENT_ID, CLIENT_SECRET)
    return Context.create(settings, backends=backends)


@pytest.fixture
def meeting_settings(tmp_path: Path, dev_pki: Path, db_url: str, service: RemoteService) -> Settings:  # noqa: F811
    settings = remote_settings(tmp_path, dev_pki, db_url, service.url)
    upgrade(settings)
    return settings


@pytest.fixture
def mctx(meeting_settings: Settings, service: RemoteService) -> Iterator[Context]:  # noqa: F811
    """The demo ward on SQLite, then PostgreSQL; the chair's mobile certificate is in esign-remote."""
    ctx = remote_context(meeting_settings, service.url)
    seed_people(ctx, DEMO_PEOPLE)
    yield ctx
    ctx.close()


def person(ctx: Context, role: str, index: int = 0) -> User:
    with ctx.db.session() as session:
        people = [u for u in session.scalars(select(User).order_by(User.id)) if role in u.roles]
        return people[index]


def state_of(ctx: Context, document_id: int) -> str:
    with ctx.db.session() as session:
        return session.scalar(select(WorkflowInstance.state).where(WorkflowInstance.document_id == document_id))


def revisions_of(ctx: Context, document_id: int) -> list[bytes]:
    with ctx.db.session() as session:
        version = session.scalar(select(DocumentVersion).where(DocumentVersion.document_id == document_id)
                                 .order_by(DocumentVersion.number.desc()).limit(1))
        rows = session.scalars(select(Revision).where(Revision.version_id == version.id).order_by(Revision.index))
        return [ctx.blobs.read(r.sha256) for r in rows]


def memo_for_approval(ctx: Context, title: str) -> int:
    """A memo drafted and signed by the officer, then by an adviser (their key files): at the chair."""
    officer = person(ctx, "officer")
    document_id = documents.compose_document(ctx, officer, dataclasses.replace(EXAMPLE_MEMO, title=title))
    advisers = [person(ctx, "adviser", 0)]
    signing.request_signature(ctx, officer, document_id, "submit", advisers=[a.username for a in advisers])
    for i, adviser in enumerate(advisers):
        signing.request_signature(ctx, adviser, document_id, "advise", comment=f"Ý kiến {i + 1}: thống nhất")
    assert state_of(ctx, document_id) == "approve"
    return document_id


def mobile_backend_of(ctx: Context, user: User) -> Any:
    with ctx.db.session() as session:
        return session.scalar(select(Certificate.backend).where(Certificate.user_id == user.id,
                                                                Certificate.device == "mobile"))


#: revisions of a memo waiting for the chair: the blank one, the drafter's, the adviser's
AT_CHAIR = 3


@pytest.fixture
def sqlite_mctx(tmp_path: Path, dev_pki: Path, service: RemoteService) -> Iterator[Context]:  # noqa: F811
    """The same on SQLite only (the browser tests)."""
    settings = remote_settings(tmp_path, dev_pki, f"sqlite:///{tmp_path / 'esign.db'}", service.url)
    upgrade(settings)
    ctx = remote_context(settings, service.url)
    seed_people(ctx, DEMO_PEOPLE)
    yield ctx
    ctx.close()
