"""The home page: what needs my action, and the documents I can see, a page of each."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request
from flask_login import login_required

from esign.services import overview
from esign.web.helpers import esign_ctx, label_of, me

bp = Blueprint("inbox", __name__)

#: documents per page of the list; a phone screen shows a few, a desk screen a page
PAGE_SIZE = 25
#: open steps per page of "needs my action"
TASKS_PAGE_SIZE = 20


def _page_arg(name: str) -> int:
    value = request.args.get(name, 1, type=int) or 1
    return min(max(value, 1), 10_000)


@bp.get("/")
@login_required
def home() -> Any:
    ctx = esign_ctx()
    states = overview.state_names(ctx)
    state = request.args.get("state") or None
    if state not in states:
        state = None
    view = overview.inbox_page(ctx, me(), tasks_page=_page_arg("tasks"), tasks_per_page=TASKS_PAGE_SIZE,
                               state=state, page=_page_arg("page"), per_page=PAGE_SIZE)
    return render_template(
        "inbox.html",
        items=view.tasks,
        tasks_total=view.tasks_total,
        tasks_page=view.tasks_page,
        tasks_pages=max(-(-view.tasks_total // TASKS_PAGE_SIZE), 1),
        tasks_more=view.tasks_more,
        rows=view.rows,
        more=view.more,
        page=view.page,
        states=states,
        state_labels={code: label_of(names, code) for code, names in states.items()},
        state=state,
        can_draft="officer" in me().roles,
    )
