"""A deputy signs for the chair under a standing delegation (KT.)."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from esign.models import StepRecord, User
from esign.services import delegations, signing, users
from esign.services.context import Context

from .test_chain import person, revisions_of, submit


def test_a_deputy_signs_for_the_chair_with_kt(demo: Context, tmp_path: Path, pdf_checks) -> None:
    ctx = demo
    chair = person(ctx, "chair")
    now = ctx.now()
    with ctx.db.session() as session:
        deputy = users.get_user(session, "vominhduc")
        delegations.create_delegation(session, None, principal=session.get(User, chair.id), delegate=deputy,
                                      role="chair", authority="kt", valid_from=now - timedelta(hours=1),
                                      valid_until=now + timedelta(days=7))
    document_id = submit(ctx)
    for i in range(2):
        signing.request_signature(ctx, person(ctx, "adviser", i), document_id, "advise")
    with ctx.db.session() as session:
        step = session.scalar(select(StepRecord).where(StepRecord.state == "approve"))
        assert (step.assignee.username, step.principal_id, step.authority) == ("vominhduc", chair.id, "KT.")
        deputy = session.get(User, step.assignee_id)
    signing.request_signature(ctx, deputy, document_id, "approve")

    final = revisions_of(ctx, document_id)[-1]
    assert all(s.intact and s.valid for s in pdf_checks.pyhanko(final))
    path = tmp_path / "approved.pdf"
    path.write_bytes(final)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "KT. CHỦ TỊCH" in text and "PHÓ CHỦ TỊCH" in text and "Võ Minh Đức" in text
