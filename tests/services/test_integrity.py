"""fsck finds what is wrong; backup and restore round-trip, across databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from esign.errors import ConfigError
from esign.models import Document, Revision
from esign.services.context import Context
from esign.services.integrity import backup, check_store, restore
from esign.services.migrate import upgrade

from .test_verification import issue


def test_fsck_is_clean_after_a_full_chain_and_finds_a_damaged_blob(demo: Context) -> None:
    ctx = demo
    issue(ctx)
    report = check_store(ctx)
    assert report.ok, report.problems
    assert report.documents == 1 and report.revisions == 6 and report.audit_events > 10

    with ctx.db.session() as session:
        digest = session.scalars(select(Revision.sha256).order_by(Revision.id)).all()[3]
    path = ctx.blobs.path(digest)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20
    path.write_bytes(bytes(data))
    damaged = check_store(ctx)
    assert not damaged.ok
    assert any(digest[:12] in p for p in damaged.problems), damaged.problems


def test_backup_restores_into_an_empty_database_and_fsck_passes(demo: Context, tmp_path: Path,
                                                                 dev_pki: Path) -> None:
    from tests.conftest import make_settings

    ctx = demo
    document_id = issue(ctx)
    archive = tmp_path / "esign-backup.tar.gz"
    counts = backup(ctx, archive)
    assert counts["revisions"] == 6 and counts["blob files"] >= 6

    # restore into a fresh SQLite store, whatever the source database was
    target_settings = make_settings(tmp_path / "restored", dev_pki)
    upgrade(target_settings)
    target = Context.create(target_settings)
    try:
        restored = restore(target, archive)
        assert restored["audit_events"] == counts["audit_events"]
        report = check_store(target)
        assert report.ok, report.problems
        with target.db.session() as session:
            assert session.get(Document, document_id).number == "1/TTr-UBND"
        with pytest.raises(ConfigError, match="empty database"):
            restore(target, archive)
    finally:
        target.close()
