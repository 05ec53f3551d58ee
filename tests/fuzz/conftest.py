"""Fuzzing fixtures: the app on the demo ward (SQLite) with a memo already signed by its
drafter, real signed PDFs to mutate, and the hypothesis profiles.

``ci`` (the default): a fixed number of derandomised examples per endpoint, so
that ``make test`` stays bounded. ``ESIGN_FUZZ=long`` (``make fuzz``): random
examples, ``ESIGN_FUZZ_EXAMPLES`` of them per endpoint (default 500).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from sqlalchemy import func, select

from esign.models import Certificate, Document, DocumentVersion, Revision, User
from esign.services import documents, signing
from esign.services.context import Context
from esign.services.demo import EXAMPLE_MEMO
from esign.signing import layout
from tests.web.conftest import csrf_token, login

_common = {"deadline": None, "database": None, "print_blob": True,
           "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large, HealthCheck.filter_too_much]}
settings.register_profile("ci", max_examples=int(os.environ.get("ESIGN_FUZZ_EXAMPLES", "25")), derandomize=True,
                          **_common)
settings.register_profile("long", max_examples=int(os.environ.get("ESIGN_FUZZ_EXAMPLES", "500")), **_common)
settings.load_profile(os.environ.get("ESIGN_FUZZ", "ci"))

#: executions per endpoint, printed at the end of the run
EXECUTIONS: Counter[str] = Counter()


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if EXECUTIONS:
        terminalreporter.write_line("fuzz executions: " + ", ".join(f"{k} {v}" for k, v in sorted(EXECUTIONS.items()))
                                    + f" (total {sum(EXECUTIONS.values())})")


#: a small hand-written PDF (one empty page), the smallest seed
MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
    b"xref\n0 4\n0000000000 65535 f \n0000000009 00000 n \n0000000052 00000 n \n0000000101 00000 n \n"
    b"trailer<</Size 4/Root 1 0 R>>\nstartxref\n164\n%%EOF\n"
)


@dataclass
class World:
    app: Flask
    ctx: Context
    document_id: int
    #: the memo as rendered, before esign's first update
    plain: bytes
    #: revision 0 (fields and QR) and revision 1 (signed by the drafter)
    r0: bytes
    r1: bytes

    def client(self, username: str) -> FlaskClient:
        client = self.app.test_client()
        login(client, username)
        client.csrf = csrf_token(client, "/")  # type: ignore[attr-defined]
        return client

    def count(self, model: type) -> int:
        with self.ctx.db.session() as session:
            return session.scalar(select(func.count()).select_from(model))

    def revisions(self) -> int:
        return self.count(Revision)

    def documents(self) -> int:
        return self.count(Document)

    def user(self, username: str) -> User:
        with self.ctx.db.session() as session:
            user = session.scalar(select(User).where(User.username == username))
            session.expunge(user)
            return user

    def certificate(self, username: str, device: str) -> Certificate:
        with self.ctx.db.session() as session:
            cert = session.scalar(select(Certificate).join(User).where(User.username == username,
                                                                       Certificate.device == device))
            session.expunge(cert)
            return cert


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, dev_pki: Path) -> Iterator[World]:
    """One demo ward (SQLite) for a whole module: each test judges what it changes by counting."""
    from esign.services.demo import seed_people
    from esign.web import create_app
    from tests.conftest import DEMO_PEOPLE, _context, make_settings

    ctx = _context(make_settings(tmp_path_factory.mktemp("fuzz"), dev_pki))
    seed_people(ctx, DEMO_PEOPLE)
    app = create_app(ctx=ctx)
    officer = World(app, ctx, 0, b"", b"", b"").user("nguyenvana")
    document_id = documents.compose_document(ctx, officer, EXAMPLE_MEMO)
    signing.request_signature(ctx, officer, document_id, "submit", advisers=["tranthibinh", "lequangcuong"])
    with ctx.db.session() as session:
        rows = list(session.scalars(select(Revision).join(DocumentVersion, Revision.version_id == DocumentVersion.id)
                                    .where(DocumentVersion.document_id == document_id).order_by(Revision.index)))
        r0, r1 = (ctx.blobs.read(r.sha256) for r in rows[:2])
    yield World(app, ctx, document_id, layout.original_of(r0), r0, r1)
    ctx.close()
