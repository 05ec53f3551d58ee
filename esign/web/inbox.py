"""The home page: what needs my action, and the documents I can see."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request
from flask_login import login_required

from esign.services import documents, overview
from esign.web.helpers import esign_ctx, me

bp = Blueprint("inbox", __name__)

PAGE_SIZE = 50


@bp.get("/")
@login_required
def home() -> Any:
    ctx = esign_ctx()
    states = overview.state_names(ctx)
    state = request.args.get("state") or None
    if state not in states:
        state = None
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    items = documents.inbox(ctx, me())
    rows = documents.list_documents(ctx, me(), state=state, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE)
    return render_template(
        "inbox.html",
        items=items,
        rows=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        page=page,
        states=states,
        state=state,
        can_draft="officer" in me().roles,
    )
