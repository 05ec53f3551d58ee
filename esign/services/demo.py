"""The demo ward: its people, their development certificates and one finished memo.

Development only: every demo user's password is DEMO_PASSWORD and every key is
a file of the development PKI (the ``softkey`` backend), except the mobile
certificates when a remote signing service (``csc``) configured in ``[signing]
backends`` holds them (``make run`` runs esign-remote with them).
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from esign.errors import ConfigError, EsignError
from esign.models import Certificate, Document, Unit, User
from esign.services import audit, documents, signing, users
from esign.services.context import Context

log = logging.getLogger(__name__)

DEMO_PASSWORD = "demo-password"
DEMO_UNIT = {
    "code": "bennghe",
    "name": "ỦY BAN NHÂN DÂN PHƯỜNG BẾN NGHÉ",
    "parent_name": "ỦY BAN NHÂN DÂN QUẬN 1",
    "place": "Bến Nghé",
}
EXAMPLE_MEMO = documents.MemoInput(
    title="Về việc xin chủ trương sửa chữa nhà văn hóa khu phố 3",
    addressee="Ủy ban nhân dân phường Bến Nghé",
    body=(
        "Căn cứ Luật Tổ chức chính quyền địa phương ngày 19 tháng 6 năm 2015;\n"
        "Căn cứ tình hình thực tế tại khu phố 3, nhà văn hóa đã xuống cấp sau mùa mưa, "
        "mái tôn bị dột và hệ thống điện không bảo đảm an toàn;\n"
        "Văn phòng kính trình Ủy ban nhân dân phường xem xét, cho chủ trương sửa chữa nhà văn hóa "
        "khu phố 3 với kinh phí dự kiến 120.000.000 đồng từ nguồn ngân sách phường năm 2026.\n"
        "Kính trình Ủy ban nhân dân phường xem xét, quyết định."
    ),
    recipients=("Như trên;", "Lưu: VT, VP."),
)


@dataclass(frozen=True)
class Person:
    username: str
    full_name: str
    title: str
    roles: tuple[str, ...]


def load_people(path: Path) -> list[Person]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError("Cannot read the demo people from %(path)s", path=str(path)) from e
    people = []
    for entry in data.get("people", []):
        roles = entry.get("roles") or [entry["role"]]
        people.append(Person(entry["username"], entry["full_name"], entry.get("title", ""), tuple(roles)))
    return people


def seed_people(ctx: Context, people_file: Path) -> bool:
    """Create the demo unit, its people and their certificates once; False if present."""
    people = load_people(people_file)
    with ctx.db.session() as session:
        if session.scalar(select(Unit).where(Unit.code == DEMO_UNIT["code"])) is not None:
            return False
        unit = users.create_unit(session, **DEMO_UNIT)
        for person in people:
            user = users.create_user(session, None, unit=unit, username=person.username,
                                     full_name=person.full_name, password=DEMO_PASSWORD,
                                     roles=person.roles, title=person.title)
            if set(person.roles) & {"officer", "adviser", "chair", "clerk"}:
                users.bind_certificate(session, ctx, None, owner=user, device="token", backend="softkey",
                                       credential=f"{person.username}-token")
                credential = f"{person.username}-mobile"
                users.bind_certificate(session, ctx, None, owner=user, device="mobile",
                                       backend=_remote_holder(ctx, credential) or "softkey", credential=credential)
        users.bind_certificate(session, ctx, None, owner=unit, device="seal",
                               backend=ctx.settings.signing.seal_backend,
                               credential=ctx.settings.signing.seal_credential)
    return True


def _remote_holder(ctx: Context, credential: str) -> str | None:
    """The name of the configured remote signing service (csc) that holds ``credential``, if any."""
    from esign.signing.csc import CscBackend

    for name, backend in ctx.backends.items():
        if isinstance(backend, CscBackend) and name in ctx.settings.signing.backends:
            try:
                if credential in backend.credentials():
                    return name
            except EsignError as e:
                log.warning("the remote signing service %s does not answer: %s", name, e)
    return None


def use_remote_mobile_certificates(ctx: Context) -> list[str]:
    """Move the demo people's mobile certificates to the remote signing service that holds them.

    A demo seeded before the service was set up signs its mobile certificates
    with the development key files; once esign-remote holds the same keys, the
    bindings move to it (the certificate is the same). Returns the credentials moved.
    """
    moved: list[str] = []
    with ctx.db.session() as session:
        rows = session.scalars(select(Certificate).where(Certificate.device == "mobile",
                                                         Certificate.backend == "softkey",
                                                         Certificate.active)).all()
        for row in rows:
            holder = _remote_holder(ctx, row.credential)
            if holder is None or ctx.backend(holder).certificate(row.credential).cert.dump() != row.der:
                continue
            row.backend = holder
            audit.record(session, "certificate.moved", actor=None, unit_id=row.user.unit_id if row.user else None,
                         owner=row.user.username if row.user else "", device="mobile", backend=holder,
                         credential=row.credential, fingerprint=row.fingerprint)
            moved.append(row.credential)
    return moved


def seed_demo(ctx: Context, people_file: Path) -> tuple[bool, int | None]:
    """Seed the demo ward once and take the example memo through the whole chain.

    Returns (created, id of the finished example memo).
    """
    if not seed_people(ctx, people_file):
        for credential in use_remote_mobile_certificates(ctx):
            log.info("demo: %s now signs through the remote signing service", credential)
        with ctx.db.session() as session:
            example = session.scalar(select(Document.id).where(Document.title == EXAMPLE_MEMO.title)
                                     .order_by(Document.id).limit(1))
        return False, example
    return True, run_example(ctx)


def _first_with_role(ctx: Context, role: str) -> list[User]:
    with ctx.db.session() as session:
        return [u for u in session.scalars(select(User).where(User.active).order_by(User.id)) if role in u.roles]


def _token_certificate(ctx: Context, user: User) -> int:
    with ctx.db.session() as session:
        return session.scalar(select(Certificate.id).where(Certificate.user_id == user.id,
                                                           Certificate.device == "token"))


def run_example(ctx: Context) -> int:
    """Take one memo through the whole chain as the demo users; returns its id."""
    officer = _first_with_role(ctx, "officer")[0]
    advisers = _first_with_role(ctx, "adviser")[:2]
    chair = _first_with_role(ctx, "chair")[0]
    clerk = _first_with_role(ctx, "clerk")[0]
    document_id = documents.compose_document(ctx, officer, EXAMPLE_MEMO)
    signing.request_signature(ctx, officer, document_id, "submit",
                              certificate_id=_token_certificate(ctx, officer),
                              advisers=[a.username for a in advisers])
    opinions = ["Đồng ý với nội dung tờ trình.", "Thống nhất, đề nghị ưu tiên sửa hệ thống điện."]
    for adviser, opinion in zip(advisers, opinions, strict=False):
        signing.request_signature(ctx, adviser, document_id, "advise",
                                  certificate_id=_token_certificate(ctx, adviser), comment=opinion)
    signing.request_signature(ctx, chair, document_id, "approve", certificate_id=_token_certificate(ctx, chair))
    signing.request_signature(ctx, clerk, document_id, "issue")
    log.info("demo memo %s issued", document_id)
    return document_id
