"""A generated year of documents, inserted in bulk (no signing), and an independent count of it.

``generate_year`` simulates each document through draft → advise → approve →
issue with random working times, some late steps, returns for revision,
rejections, reassignments, and documents still in progress at ``now``; it
keeps every row it inserts as plain Python records. ``expected_report``
counts those records with plain loops, following the definitions in
esign/services/reports.py, without SQL.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select

from esign.models import Document, DocumentVersion, StepRecord, User, UserRole, WorkflowInstance
from esign.services.context import Context

VN = ZoneInfo("Asia/Ho_Chi_Minh")
FINISHED = ("done", "returned", "rejected")


@dataclass
class Step:
    id: int
    instance_id: int
    version_id: int
    state: str
    assignee_id: int
    status: str
    assigned_at: datetime
    due_at: datetime | None
    completed_at: datetime | None


@dataclass
class Doc:
    id: int
    unit_id: int
    started_at: datetime
    ended_at: datetime | None = None
    state: str = "draft"
    steps: list[Step] = field(default_factory=list)


@dataclass
class Generated:
    docs: list[Doc]
    now: datetime

    @property
    def steps(self) -> list[Step]:
        return [s for d in self.docs for s in d.steps]


def _people(ctx: Context, unit_id: int) -> dict[str, list[int]]:
    with ctx.db.session() as session:
        rows = session.execute(select(User.id, UserRole.role).join(UserRole, UserRole.user_id == User.id)
                               .where(User.unit_id == unit_id).order_by(User.id)).all()
    people: dict[str, list[int]] = defaultdict(list)
    for user_id, role in rows:
        people[role].append(user_id)
    return people


def _next_id(ctx: Context, column) -> int:  # type: ignore[no-untyped-def]
    from sqlalchemy import func

    with ctx.db.session() as session:
        return (session.scalar(select(func.max(column))) or 0) + 1


def generate_year(ctx: Context, unit_id: int, count: int, *, year: int = 2026, now: datetime,
                  seed: int = 2026) -> Generated:
    """``count`` documents of ``unit_id`` started over ``year``, simulated up to ``now``, inserted in bulk."""
    rng = random.Random(seed)
    calendar = ctx.calendar
    definition = ctx.workflows.latest(ctx.settings.workflows.default)
    deadlines = {name: spec.deadline for name, spec in definition.states.items()}
    people = _people(ctx, unit_id)
    officer_ids, adviser_ids = people["officer"], people["adviser"]
    chair_id, clerk_id = people["chair"][0], people["clerk"][0]
    ids = {"doc": _next_id(ctx, Document.id), "version": _next_id(ctx, DocumentVersion.id),
           "instance": _next_id(ctx, WorkflowInstance.id), "step": _next_id(ctx, StepRecord.id)}
    first_day = date(year, 1, 1)
    working_days = [first_day + timedelta(days=i) for i in range(366 if year % 4 == 0 else 365)
                    if calendar.is_working_day(first_day + timedelta(days=i))]
    docs: list[Doc] = []
    versions: list[dict[str, object]] = []
    doc_rows: list[dict[str, object]] = []

    def new_version(doc: Doc, number: int, author: int, at: datetime) -> int:
        vid = ids["version"]
        ids["version"] += 1
        versions.append({"id": vid, "document_id": doc.id, "number": number, "created_by_id": author,
                         "created_at": at, "reason": "" if number == 1 else "Bổ sung căn cứ",
                         "superseded": False})
        return vid

    for n in range(count):
        day = rng.choice(working_days)
        minute = rng.randrange(7 * 60 + 30, 16 * 60 + 30)
        started = datetime.combine(day, time(minute // 60, minute % 60), VN).astimezone(UTC)
        if started >= now:
            started = now - timedelta(hours=rng.randrange(1, 200))
        doc = Doc(ids["doc"], unit_id, started)
        ids["doc"] += 1
        drafter = rng.choice(officer_ids)
        doc_rows.append({"id": doc.id, "unit_id": unit_id, "public_code": f"g{doc.id:09d}",
                         "title": f"Tờ trình số liệu {n + 1}", "doc_type": "TTr", "source": "composed",
                         "content_json": "", "created_by_id": drafter, "created_at": started,
                         "updated_at": started, "number": None, "issued_on": None, "lock_version": 0})
        instance_id = doc.id  # one instance per document, numbered alike
        version_number = 1
        version_id = new_version(doc, 1, drafter, started)
        t = started
        plan = ["draft", "advise", "approve", "issue"]
        stage = 0
        returned = False
        while True:
            state = plan[stage]
            if state == "draft":
                assignees = [drafter]
            elif state == "advise":
                assignees = rng.sample(adviser_ids, min(rng.choice((1, 1, 2)), len(adviser_ids)))
            elif state == "approve":
                assignees = [chair_id]
            else:
                assignees = [clerk_id]
            late_roll = rng.random()
            finished_at = []
            open_left = False
            for assignee in assignees:
                due = calendar.due_at(t, deadlines[state])
                allowed = due - t
                # most steps take part of their allowance; one in eighty overruns it
                if late_roll < 1 / 80:
                    spent = allowed + timedelta(hours=rng.uniform(0.5, 60))
                else:
                    spent = allowed * rng.uniform(0.05, 0.95)
                done_at = t + spent
                step = Step(ids["step"], instance_id, version_id, state, assignee, "open", t, due, None)
                ids["step"] += 1
                if state == "advise" and rng.random() < 0.03 and len(adviser_ids) > 1 and done_at <= now:
                    # handed over half-way to another adviser, who then finishes it
                    handover = t + spent / 2
                    step.status, step.completed_at = "reassigned", handover
                    doc.steps.append(step)
                    other = next(a for a in adviser_ids if a != assignee)
                    due2 = calendar.due_at(handover, deadlines[state])
                    step = Step(ids["step"], instance_id, version_id, state, other, "open", handover, due2, None)
                    ids["step"] += 1
                if done_at > now:
                    open_left = True
                else:
                    step.status, step.completed_at = "done", done_at
                    finished_at.append(done_at)
                doc.steps.append(step)
            doc.state = state
            if open_left:
                break
            t = max(finished_at) + timedelta(minutes=rng.randrange(1, 90))
            t = min(t, now)
            if state == "approve" and not returned and rng.random() < 0.04:
                doc.steps[-1].status = "returned"
                returned = True
                version_number += 1
                version_id = new_version(doc, version_number, drafter, t)
                stage = 0
                continue
            if state == "approve" and rng.random() < 0.03:
                doc.steps[-1].status = "rejected"
                doc.state, doc.ended_at = "rejected", doc.steps[-1].completed_at
                break
            if state == "issue":
                doc.state, doc.ended_at = "issued", doc.steps[-1].completed_at
                break
            stage += 1
        docs.append(doc)

    instance_rows = [{"id": d.id, "document_id": d.id, "definition_id": definition.id,
                      "definition_version": definition.version, "state": d.state, "started_at": d.started_at,
                      "ended_at": d.ended_at} for d in docs]
    step_rows = [{"id": s.id, "instance_id": s.instance_id, "document_id": d.id, "unit_id": d.unit_id,
                  "version_id": s.version_id, "state": s.state,
                  "assignee_id": s.assignee_id, "principal_id": None, "authority": "", "status": s.status,
                  "action": None, "assigned_at": s.assigned_at, "due_at": s.due_at,
                  "completed_at": s.completed_at, "revision_id": None} for d in docs for s in d.steps]
    with ctx.db.session() as session:
        for table, rows in ((Document, doc_rows), (DocumentVersion, versions), (WorkflowInstance, instance_rows),
                            (StepRecord, step_rows)):
            for i in range(0, len(rows), 5000):
                session.execute(insert(table), rows[i:i + 5000])
    return Generated(docs, now)


# --- the independent count --------------------------------------------------------------------


def _local_month(at: datetime) -> str:
    return at.astimezone(VN).strftime("%Y-%m")


def expected_report(gen: Generated, unit_id: int, first: date, last: date) -> dict[str, object]:
    start = datetime.combine(first, time.min, VN).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time.min, VN).astimezone(UTC)
    as_of = min(end, gen.now)
    docs = [d for d in gen.docs if d.unit_id == unit_id]

    def late(doc: Doc) -> bool:
        return any(s.status != "cancelled" and s.due_at is not None and s.completed_at is not None
                   and s.completed_at > s.due_at for s in doc.steps)

    def open_at(s: Step, at: datetime) -> bool:
        return s.assigned_at <= at and (s.completed_at is None or s.completed_at > at)

    out: dict[str, object] = {}
    out["received"] = sum(1 for d in docs if start <= d.started_at < end)
    handled = [d for d in docs if d.ended_at is not None and start <= d.ended_at < end]
    out["handled"] = len(handled)
    out["on_time"] = sum(1 for d in handled if not late(d))
    out["issued"] = sum(1 for d in handled if d.state == "issued")
    out["rejected"] = sum(1 for d in handled if d.state == "rejected")
    still_open = [d for d in docs if d.started_at <= as_of and (d.ended_at is None or d.ended_at > as_of)]
    out["open"] = len(still_open)
    out["overdue"] = sum(1 for d in still_open
                         if any(open_at(s, as_of) and s.due_at is not None and s.due_at < as_of for s in d.steps))
    months: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for d in handled:
        m = months[_local_month(d.ended_at)]  # type: ignore[arg-type]
        m[0] += 1
        m[1] += 0 if late(d) else 1
    out["months"] = dict(months)
    per_state: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    per_officer: dict[int, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for d in docs:
        for s in d.steps:
            if s.status in FINISHED and s.completed_at is not None and start <= s.completed_at < end:
                hours = (s.completed_at - s.assigned_at).total_seconds() / 3600
                ok = s.due_at is None or s.completed_at <= s.due_at
                for bucket in (per_state[s.state], per_officer[s.assignee_id]):
                    bucket[0] += 1
                    bucket[1] += ok
                    bucket[2] += hours
    out["steps"] = {k: (int(v[0]), int(v[1]), v[2] / v[0]) for k, v in per_state.items()}
    out["officers"] = {k: (int(v[0]), int(v[1]), v[2] / v[0]) for k, v in per_officer.items()}
    waiting = [s for d in docs for s in d.steps if open_at(s, as_of)]
    out["waiting"] = {state: sum(1 for s in waiting if s.state == state) for state in {s.state for s in waiting}}
    out["longest"] = min(waiting, key=lambda s: (s.assigned_at, s.id)).id if waiting else None
    return out
