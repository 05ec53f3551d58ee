"""Fixtures of the report and reminder tests: a small ward without certificates, and memos whose
steps are opened by the real routing code (no PDF, no signing: these tests are about time)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from esign.models import Document, DocumentVersion, User, UserRole, WorkflowInstance
from esign.services import routing, users
from esign.services.context import Context
from esign.services.demo import DEMO_UNIT
from tests.conftest import make_settings

PEOPLE = (
    ("nguyenvana", "Nguyễn Văn An", "Chuyên viên Văn phòng", "officer", "an@ubnd.invalid"),
    ("tranthibinh", "Trần Thị Bình", "Công chức Tư pháp – Hộ tịch", "adviser", ""),
    ("lequangcuong", "Lê Quang Cường", "Công chức Địa chính – Xây dựng", "adviser", ""),
    ("nguyenthiquynhtrieu", "Nguyễn Thị Quỳnh Triều", "Chủ tịch", "chair", "trieu@ubnd.invalid"),
    ("hoangvanem", "Hoàng Văn Em", "Văn thư", "clerk", ""),
)


PASSWORD = "ward-password"


@functools.cache
def password_hash() -> str:
    """One argon2 hash for every test user: argon2 is slow on purpose."""
    return users.hash_password(PASSWORD)


def seed_ward(ctx: Context) -> None:
    """The people, inserted directly, all with the password PASSWORD."""
    with ctx.db.session() as session:
        unit = users.create_unit(session, **DEMO_UNIT)
        for username, name, title, role, email in PEOPLE:
            session.add(User(unit=unit, username=username, full_name=name, title=title, email=email,
                             password_hash=password_hash(), role_rows=[UserRole(role=role)]))


def user(ctx: Context, username: str) -> User:
    with ctx.db.session() as session:
        return session.scalar(select(User).where(User.username == username))


def open_memo(ctx: Context, title: str = "Về việc sửa chữa nhà văn hóa khu phố 3") -> tuple[int, int]:
    """A memo in its draft step, assigned now (ctx.now()) by routing.open_step; (document, step) ids."""
    now = ctx.now()
    definition = ctx.workflows.latest(ctx.settings.workflows.default)
    with ctx.db.session() as session:
        officer = session.scalar(select(User).where(User.username == "nguyenvana"))
        document = Document(unit_id=officer.unit_id, public_code=f"t{now.timestamp():.0f}{len(title)}",
                            title=title, source="composed", created_by_id=officer.id, created_at=now,
                            updated_at=now)
        session.add(document)
        session.flush()
        version = DocumentVersion(document_id=document.id, number=1, created_by_id=officer.id, created_at=now)
        instance = WorkflowInstance(document_id=document.id, definition_id=definition.id,
                                    definition_version=definition.version, state=definition.initial,
                                    started_at=now)
        session.add_all([version, instance])
        session.flush()
        step = routing.open_step(session, ctx, instance, version, definition, definition.initial, officer)
        return document.id, step.id


def _ward(tmp_path: Path, db_url: str | None) -> Context:
    from esign.services.migrate import upgrade

    settings = make_settings(tmp_path, tmp_path / "no-pki", db_url)
    upgrade(settings)
    ctx = Context.create(settings, backends={})
    seed_ward(ctx)
    return ctx


@pytest.fixture
def ward(tmp_path: Path, db_url: str) -> Iterator[Context]:
    """The demo ward's people (no certificates, no PKI), on SQLite and PostgreSQL."""
    ctx = _ward(tmp_path, db_url)
    yield ctx
    ctx.close()


@pytest.fixture
def sqlite_ward(tmp_path: Path) -> Iterator[Context]:
    ctx = _ward(tmp_path, None)
    yield ctx
    ctx.close()


@pytest.fixture
def memo_factory(ward: Context) -> Callable[..., tuple[int, int]]:
    return lambda **kw: open_memo(ward, **kw)
