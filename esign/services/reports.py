"""The unit report: documents handled, on time, late, open and overdue, and where they wait.

Every figure is one SQL aggregate over indexed columns; no document is loaded
into Python. Definitions, for a unit and a period of local dates
[first, last] in the app's time zone (Asia/Ho_Chi_Minh):

- *received*: workflows started in the period;
- *handled*: workflows that ended (issued or rejected) in the period;
  *late* if any step record of the document, of any version, was completed
  after its due time (cancelled records excepted), else *on time*;
- *open* and *overdue*: a snapshot at the end of the period (or now, if the
  period has not ended): workflows started and not ended by then, and those of
  them with a step open then and past its due time. A step is open at T when
  ``assigned_at <= T`` and it was not completed by T;
- *time per step* and *per officer*: step records completed in the period by
  the assignee's own action (done, returned, rejected), elapsed time from
  assignment to completion (calendar time, not working time);
- *waiting now*: the steps open at the snapshot, the longest waiting first.

Numbers are written the Vietnamese way (16.335; 99,8 %), dates dd/mm/yyyy.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from esign.errors import EsignError, Forbidden
from esign.models import Document, StepRecord, Unit, User, WorkflowInstance
from esign.models.base import UTCDateTime
from esign.services.context import Context

#: who may read a unit's report (the unit-wide roles of esign.services.access)
REPORT_ROLES = frozenset({"chair", "clerk", "auditor", "admin"})
#: step records that ended by their assignee's own action
FINISHED = ("done", "returned", "rejected")
#: the longest period one report covers
MAX_DAYS = 3 * 366
WAITING_ROWS = 10


class ReportError(EsignError):
    """The report cannot be made as asked (a period the wrong way round, too long)."""

    status = 400
    code = "report"


# --- Vietnamese formats -----------------------------------------------------------------------


def vn_number(value: float | None, decimals: int = 0) -> str:
    """16335 -> "16.335"; 2.5 with one decimal -> "2,5"."""
    if value is None:
        return "–"
    text = f"{value:,.{decimals}f}"
    return text.replace(",", " ").replace(".", ",").replace(" ", ".")


def vn_percent(part: int, whole: int) -> str:
    """99,8 % (one decimal); "–" when there is nothing to count."""
    if not whole:
        return "–"
    if part == whole:
        return "100 %"
    if part == 0:
        return "0 %"
    # never round a late document into "100 %", nor an on-time one into "0 %"
    rate = min(max(100.0 * part / whole, 0.1), 99.9)
    return f"{vn_number(rate, 1)} %"


def vn_date(value: date | datetime | None, tz: ZoneInfo | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(tz) if tz else value
        return value.strftime("%d/%m/%Y %H:%M")
    return value.strftime("%d/%m/%Y")


def vn_hours(hours: float | None) -> str:
    """Elapsed time for people: "5,2 giờ" under two days, "3,4 ngày" from there."""
    if hours is None:
        return "–"
    if hours < 48:
        return f"{vn_number(hours, 1)} giờ"
    return f"{vn_number(hours / 24, 1)} ngày"


def parse_date(text: str) -> date:
    """dd/mm/yyyy (as people write it) or yyyy-mm-dd (as date inputs send it)."""
    text = text.strip()
    for fmt in ("%d/%m/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    raise ReportError("Write the date as dd/mm/yyyy, not %(text)s", text=text)


# --- the report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    first: date
    last: date
    tz: ZoneInfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, self.tz).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """Exclusive: midnight after the last day."""
        return datetime.combine(self.last + timedelta(days=1), time.min, self.tz).astimezone(UTC)

    def months(self) -> list[str]:
        out, y, m = [], self.first.year, self.first.month
        while (y, m) <= (self.last.year, self.last.month):
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out

    def label(self) -> str:
        return f"{vn_date(self.first)} – {vn_date(self.last)}"


@dataclass(frozen=True)
class StepFigure:
    state: str
    name: dict[str, str]
    count: int
    on_time: int
    avg_hours: float | None
    max_hours: float | None
    #: steps of this state open at the snapshot, overdue among them, their average wait so far
    waiting: int
    waiting_overdue: int
    waiting_avg_hours: float | None

    @property
    def late(self) -> int:
        return self.count - self.on_time


@dataclass(frozen=True)
class OfficerFigure:
    user_id: int
    name: str
    title: str
    count: int
    on_time: int
    avg_hours: float | None

    @property
    def late(self) -> int:
        return self.count - self.on_time


@dataclass(frozen=True)
class MonthFigure:
    month: str
    handled: int
    on_time: int

    @property
    def label(self) -> str:
        year, month = self.month.split("-")
        return f"{month}/{year}"

    @property
    def rate(self) -> float | None:
        return 100.0 * self.on_time / self.handled if self.handled else None


@dataclass(frozen=True)
class WaitingStep:
    step_id: int
    document_id: int
    title: str
    state: str
    state_name: dict[str, str]
    assignee: str
    assigned_at: datetime
    due_at: datetime | None
    hours: float
    overdue: bool


@dataclass(frozen=True)
class UnitReport:
    unit_id: int
    unit_name: str
    period: Period
    #: the moment of the open/overdue snapshot: the period's end, or now if earlier
    as_of: datetime
    generated_at: datetime
    received: int
    handled: int
    on_time: int
    issued: int
    rejected: int
    open: int
    overdue: int
    steps: list[StepFigure]
    officers: list[OfficerFigure]
    months: list[MonthFigure]
    waiting: list[WaitingStep]

    @property
    def late(self) -> int:
        return self.handled - self.on_time

    @property
    def on_time_rate(self) -> str:
        return vn_percent(self.on_time, self.handled)


def _seconds(session: Session, start: Any, end: Any) -> ColumnElement[float]:
    """end - start in seconds, on SQLite (julianday) and PostgreSQL (epoch)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date_part("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _local_month(session: Session, column: Any, tz: ZoneInfo, at: datetime) -> ColumnElement[str]:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone(tz.key, column), "YYYY-MM")
    # SQLite knows no zones; Vietnam has kept one offset (+07:00) since 1975
    offset = at.astimezone(tz).utcoffset() or timedelta()
    return func.strftime("%Y-%m", column, f"{int(offset.total_seconds() // 60):+d} minutes")


def _open_at(at: Any) -> ColumnElement[bool]:
    return and_(StepRecord.assigned_at <= at, or_(StepRecord.completed_at.is_(None), StepRecord.completed_at > at))


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else float(seconds) / 3600.0


def unit_report(ctx: Context, actor: User, first: date, last: date) -> UnitReport:
    """The report of ``actor``'s unit over the local dates [first, last]."""
    if not actor.roles & REPORT_ROLES:
        raise Forbidden("Reports are for the chair, the clerk, auditors and administrators")
    return build_report(ctx, actor.unit_id, first, last)


def build_report(ctx: Context, unit_id: int, first: date, last: date) -> UnitReport:
    """The report of any unit, without an access check: for the command line and for unit_report."""
    if last < first:
        raise ReportError("The period ends before it starts")
    if (last - first).days > MAX_DAYS:
        raise ReportError("A report covers at most three years")
    tz = ZoneInfo(ctx.settings.app.timezone)
    period = Period(first, last, tz)
    now = ctx.now()
    as_of = min(period.end, now)
    start, end = period.start, period.end
    with ctx.db.session() as session:
        unit = session.get(Unit, unit_id)
        if unit is None:
            raise ReportError("There is no such unit")
        in_unit = and_(Document.id == WorkflowInstance.document_id, Document.unit_id == unit.id)
        instances = select(WorkflowInstance).join(Document, in_unit)

        received = session.scalar(select(func.count()).select_from(
            instances.where(WorkflowInstance.started_at >= start, WorkflowInstance.started_at < end).subquery()))

        late_step = select(StepRecord.id).where(
            StepRecord.instance_id == WorkflowInstance.id, StepRecord.status != "cancelled",
            StepRecord.due_at.is_not(None), StepRecord.completed_at > StepRecord.due_at).exists()
        ended = and_(WorkflowInstance.ended_at >= start, WorkflowInstance.ended_at < end)
        month = _local_month(session, WorkflowInstance.ended_at, tz, start).label("month")
        by_month = session.execute(
            select(month, WorkflowInstance.state, func.count().label("n"),
                   func.sum(case((late_step, 0), else_=1)).label("on_time"))
            .join(Document, in_unit).where(ended).group_by(month, WorkflowInstance.state)
        ).all()
        months = {m: [0, 0] for m in period.months()}
        issued = rejected = 0
        for row in by_month:
            counts = months.setdefault(row.month, [0, 0])
            counts[0] += row.n
            counts[1] += int(row.on_time or 0)
            if row.state == "issued":
                issued += row.n
            elif row.state == "rejected":
                rejected += row.n
        month_figures = [MonthFigure(m, n, ok) for m, (n, ok) in sorted(months.items())]

        open_instance = and_(WorkflowInstance.started_at <= as_of,
                             or_(WorkflowInstance.ended_at.is_(None), WorkflowInstance.ended_at > as_of))
        as_of_param = literal(as_of, UTCDateTime())
        overdue_step = select(StepRecord.id).where(
            StepRecord.instance_id == WorkflowInstance.id, _open_at(as_of_param),
            StepRecord.due_at < as_of_param).exists()
        open_row = session.execute(
            select(func.count().label("n"), func.sum(case((overdue_step, 1), else_=0)).label("overdue"))
            .select_from(WorkflowInstance).join(Document, in_unit).where(open_instance)
        ).one()

        steps_of_unit = (select(StepRecord).join(WorkflowInstance, WorkflowInstance.id == StepRecord.instance_id)
                         .join(Document, in_unit))
        duration = _seconds(session, StepRecord.assigned_at, StepRecord.completed_at)
        step_on_time = func.sum(case((or_(StepRecord.due_at.is_(None),
                                          StepRecord.completed_at <= StepRecord.due_at), 1), else_=0))
        finished = and_(StepRecord.completed_at >= start, StepRecord.completed_at < end,
                        StepRecord.status.in_(FINISHED))
        per_state = {r.state: r for r in session.execute(
            steps_of_unit.with_only_columns(StepRecord.state, func.count().label("n"), step_on_time.label("on_time"),
                                            func.avg(duration).label("avg"), func.max(duration).label("max"))
            .where(finished).group_by(StepRecord.state))}
        waited = _seconds(session, StepRecord.assigned_at, as_of_param)
        waiting_state = {r.state: r for r in session.execute(
            steps_of_unit.with_only_columns(
                StepRecord.state, func.count().label("n"),
                func.sum(case((StepRecord.due_at < as_of_param, 1), else_=0)).label("overdue"),
                func.avg(waited).label("avg"))
            .where(_open_at(as_of_param)).group_by(StepRecord.state))}
        per_officer = session.execute(
            steps_of_unit.with_only_columns(StepRecord.assignee_id, func.count().label("n"),
                                            step_on_time.label("on_time"), func.avg(duration).label("avg"))
            .where(finished).group_by(StepRecord.assignee_id)).all()
        people = {u.id: u for u in session.scalars(select(User).where(
            User.id.in_([r.assignee_id for r in per_officer])))}
        officers = sorted(
            (OfficerFigure(r.assignee_id, people[r.assignee_id].full_name, people[r.assignee_id].title, r.n,
                           int(r.on_time or 0), _hours(r.avg)) for r in per_officer),
            key=lambda o: (-(o.avg_hours or 0), o.name))

        definition = ctx.workflows.latest(ctx.settings.workflows.default)
        names = {state: dict(spec.name) for state, spec in definition.states.items() if not spec.terminal}
        order = list(names) + sorted((set(per_state) | set(waiting_state)) - set(names))
        steps = []
        for state in order:
            done, wait = per_state.get(state), waiting_state.get(state)
            steps.append(StepFigure(
                state=state, name=names.get(state, {"vi": state, "en": state}),
                count=done.n if done else 0, on_time=int(done.on_time or 0) if done else 0,
                avg_hours=_hours(done.avg) if done else None, max_hours=_hours(done.max) if done else None,
                waiting=wait.n if wait else 0, waiting_overdue=int(wait.overdue or 0) if wait else 0,
                waiting_avg_hours=_hours(wait.avg) if wait else None))

        longest = session.execute(
            select(StepRecord.id, StepRecord.state, StepRecord.assigned_at, StepRecord.due_at,
                   Document.id.label("document_id"), Document.title, User.full_name)
            .join(WorkflowInstance, WorkflowInstance.id == StepRecord.instance_id).join(Document, in_unit)
            .join(User, User.id == StepRecord.assignee_id)
            .where(_open_at(as_of_param)).order_by(StepRecord.assigned_at, StepRecord.id).limit(WAITING_ROWS)
        ).all()
        waiting = [WaitingStep(r.id, r.document_id, r.title, r.state, names.get(r.state, {"vi": r.state}),
                               r.full_name, r.assigned_at, r.due_at,
                               (as_of - r.assigned_at).total_seconds() / 3600,
                               r.due_at is not None and r.due_at < as_of) for r in longest]

        handled = sum(m.handled for m in month_figures)
        return UnitReport(
            unit_id=unit.id, unit_name=unit.name, period=period, as_of=as_of, generated_at=now,
            received=received or 0, handled=handled, on_time=sum(m.on_time for m in month_figures),
            issued=issued, rejected=rejected, open=open_row.n or 0, overdue=int(open_row.overdue or 0),
            steps=steps, officers=officers, months=month_figures, waiting=waiting,
        )


def overdue_now(ctx: Context, actor: User, limit: int = 50) -> list[WaitingStep]:
    """Open steps of ``actor``'s unit past their due time now, the longest overdue first (to escalate)."""
    if not actor.roles & REPORT_ROLES:
        raise Forbidden("Reports are for the chair, the clerk, auditors and administrators")
    now = ctx.now()
    definition = ctx.workflows.latest(ctx.settings.workflows.default)
    names = {state: dict(spec.name) for state, spec in definition.states.items()}
    with ctx.db.session() as session:
        rows = session.execute(
            select(StepRecord.id, StepRecord.state, StepRecord.assigned_at, StepRecord.due_at,
                   Document.id.label("document_id"), Document.title, User.full_name)
            .join(WorkflowInstance, WorkflowInstance.id == StepRecord.instance_id)
            .join(Document, Document.id == WorkflowInstance.document_id)
            .join(User, User.id == StepRecord.assignee_id)
            .where(Document.unit_id == actor.unit_id, StepRecord.status == "open", StepRecord.due_at < now,
                   StepRecord.state == WorkflowInstance.state)
            .order_by(StepRecord.due_at, StepRecord.id).limit(limit)
        ).all()
    return [WaitingStep(r.id, r.document_id, r.title, r.state, names.get(r.state, {"vi": r.state}), r.full_name,
                        r.assigned_at, r.due_at, (now - r.assigned_at).total_seconds() / 3600, True) for r in rows]


# --- charts: one geometry, drawn as SVG in the page and with fpdf2 in the PDF -----------------


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    """A bar chart in abstract units: (0, 0) top left, ``width`` x ``height``."""

    title: str
    width: float
    height: float
    #: the plot area: left, top, right, bottom
    plot: tuple[float, float, float, float]
    bars: list[Bar]
    #: horizontal grid lines: (y, label)
    ticks: list[tuple[float, str]]


def bar_chart(title: str, items: Sequence[tuple[str, float, str]], *, top: float | None = None,
              width: float = 640, height: float = 260, tick_format: Any = vn_number) -> Chart:
    """Bars for (label, value, text) items, scaled to ``top`` (default: the largest value, rounded up)."""
    left, right, upper, lower = 56.0, width - 12.0, 44.0, height - 36.0
    largest = max((v for _, v, _ in items), default=0.0)
    top = top or _nice_ceiling(largest)
    step = (right - left) / max(len(items), 1)
    bars = []
    for i, (label, value, text) in enumerate(items):
        h = (lower - upper) * (value / top) if top else 0.0
        bar_w = step * 0.6
        bars.append(Bar(label, value, text, left + i * step + (step - bar_w) / 2, lower - h, bar_w, h))
    ticks = [(lower - (lower - upper) * k / 5, tick_format(top * k / 5)) for k in range(6)]
    return Chart(title, width, height, (left, upper, right, lower), bars, ticks)


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    # five grid intervals: a ceiling whose fifth is a round number
    for factor in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= factor * magnitude:
            return float(factor * magnitude)
    return float(10 * magnitude)


def step_chart(report: UnitReport, lang: str = "vi") -> Chart:
    items = [(s.name.get(lang) or s.name.get("vi", s.state), s.avg_hours or 0.0, vn_hours(s.avg_hours))
             for s in report.steps]
    title = "Thời gian xử lý trung bình mỗi bước" if lang == "vi" else "Average time per step"
    return bar_chart(title, items, tick_format=lambda v: vn_number(v, 0 if v == int(v) else 1) + " h")


def month_chart(report: UnitReport, lang: str = "vi") -> Chart:
    items = [(m.label, m.rate or 0.0, vn_percent(m.on_time, m.handled)) for m in report.months]
    title = "Tỷ lệ đúng hạn theo tháng" if lang == "vi" else "On-time rate by month"
    return bar_chart(title, items, top=100.0, tick_format=lambda v: f"{vn_number(v)} %")


# --- CSV --------------------------------------------------------------------------------------


def report_csv(report: UnitReport) -> str:
    """The report as CSV for spreadsheets set to Vietnamese: ';' between fields, decimal comma."""
    out = io.StringIO()
    w = csv.writer(out, delimiter=";", lineterminator="\r\n")
    tz = report.period.tz
    w.writerow(["Báo cáo", report.unit_name])
    w.writerow(["Kỳ báo cáo", vn_date(report.period.first), vn_date(report.period.last)])
    w.writerow(["Số liệu tại thời điểm", vn_date(report.as_of, tz)])
    w.writerow([])
    w.writerow(["Chỉ tiêu", "Số lượng"])
    for label, value in (("Tiếp nhận", report.received), ("Đã xử lý", report.handled),
                         ("Đúng hạn", report.on_time), ("Trễ hạn", report.late),
                         ("Đã phát hành", report.issued), ("Không phê duyệt", report.rejected),
                         ("Đang xử lý", report.open), ("Quá hạn", report.overdue)):
        w.writerow([label, value])
    w.writerow(["Tỷ lệ đúng hạn (%)", _plain(100 * report.on_time / report.handled if report.handled else None)])
    w.writerow([])
    w.writerow(["Bước", "Số lượt xử lý", "Đúng hạn", "Trễ hạn", "Trung bình (giờ)", "Lâu nhất (giờ)",
                "Đang chờ", "Đang chờ quá hạn", "Đang chờ trung bình (giờ)"])
    for s in report.steps:
        w.writerow([s.name.get("vi", s.state), s.count, s.on_time, s.late, _plain(s.avg_hours),
                    _plain(s.max_hours), s.waiting, s.waiting_overdue, _plain(s.waiting_avg_hours)])
    w.writerow([])
    w.writerow(["Cán bộ", "Chức danh", "Số lượt xử lý", "Đúng hạn", "Trễ hạn", "Trung bình (giờ)"])
    for o in report.officers:
        w.writerow([o.name, o.title, o.count, o.on_time, o.late, _plain(o.avg_hours)])
    w.writerow([])
    w.writerow(["Tháng", "Đã xử lý", "Đúng hạn", "Tỷ lệ đúng hạn (%)"])
    for m in report.months:
        w.writerow([m.label, m.handled, m.on_time, _plain(m.rate)])
    w.writerow([])
    w.writerow(["Văn bản chờ lâu nhất", "Bước", "Người xử lý", "Giao lúc", "Hạn", "Đã chờ (giờ)", "Quá hạn"])
    for x in report.waiting:
        w.writerow([x.title, x.state_name.get("vi", x.state), x.assignee, vn_date(x.assigned_at, tz),
                    vn_date(x.due_at, tz), _plain(x.hours), "có" if x.overdue else "không"])
    return "\ufeff" + out.getvalue()


def _plain(value: float | None) -> str:
    """A number a spreadsheet reads back: two decimals, decimal comma, no grouping."""
    return "" if value is None else f"{value:.2f}".replace(".", ",")


# --- PDF --------------------------------------------------------------------------------------

BLUE = (31, 78, 140)
RED = (178, 34, 34)
GREY = (110, 110, 110)


def report_pdf(report: UnitReport) -> bytes:
    """The report as an A4 PDF in Vietnamese (Noto Serif), with both charts drawn as vectors."""
    from fpdf import FPDF

    from esign.signing.layout import font_file

    tz = report.period.tz
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(True, margin=15)
    pdf.set_margins(18, 15, 18)
    pdf.add_font("NotoSerif", "", str(font_file("Regular")))
    pdf.add_font("NotoSerif", "B", str(font_file("Bold")))
    pdf.set_title(f"Báo cáo {report.unit_name} {report.period.label()}")
    pdf.set_creator("esign")
    pdf.add_page()
    pdf.set_font("NotoSerif", "B", 11)
    pdf.multi_cell(0, 5, report.unit_name, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    pdf.set_font("NotoSerif", "B", 14)
    pdf.multi_cell(0, 7, "BÁO CÁO TÌNH HÌNH XỬ LÝ VĂN BẢN", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("NotoSerif", "", 10)
    pdf.multi_cell(0, 5, f"Từ ngày {vn_date(report.period.first)} đến ngày {vn_date(report.period.last)}",
                   align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*GREY)
    pdf.multi_cell(0, 5, f"Số liệu tại thời điểm {vn_date(report.as_of, tz)} (giờ Việt Nam)", align="C",
                   new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.ln(4)

    _pdf_table(pdf, ["Tiếp nhận", "Đã xử lý", "Đúng hạn", "Trễ hạn", "Đang xử lý", "Quá hạn"],
               [[vn_number(v) for v in (report.received, report.handled, report.on_time, report.late,
                                        report.open, report.overdue)]], bold_first=False)
    pdf.set_font("NotoSerif", "B", 11)
    pdf.cell(0, 7, f"Tỷ lệ giải quyết đúng hạn: {vn_number(report.on_time)}/{vn_number(report.handled)} "
                   f"({report.on_time_rate})", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)

    _pdf_chart(pdf, step_chart(report), BLUE)
    _pdf_chart(pdf, month_chart(report), (46, 125, 50))

    _pdf_heading(pdf, "Thời gian xử lý theo bước")
    _pdf_table(pdf, ["Bước", "Lượt xử lý", "Đúng hạn", "Trễ hạn", "Trung bình", "Đang chờ", "Quá hạn"],
               [[s.name.get("vi", s.state), vn_number(s.count), vn_number(s.on_time), vn_number(s.late),
                 vn_hours(s.avg_hours), vn_number(s.waiting), vn_number(s.waiting_overdue)]
                for s in report.steps])
    _pdf_heading(pdf, "Thời gian xử lý theo cán bộ")
    _pdf_table(pdf, ["Cán bộ", "Lượt xử lý", "Đúng hạn", "Trễ hạn", "Tỷ lệ", "Trung bình"],
               [[o.name, vn_number(o.count), vn_number(o.on_time), vn_number(o.late),
                 vn_percent(o.on_time, o.count), vn_hours(o.avg_hours)] for o in report.officers],
               widths=[54, 22, 22, 22, 22, 32])
    _pdf_heading(pdf, "Văn bản chờ lâu nhất")
    if report.waiting:
        _pdf_table(pdf, ["Văn bản", "Bước", "Người xử lý", "Hạn", "Đã chờ"],
                   [[w.title[:60], w.state_name.get("vi", w.state), w.assignee, vn_date(w.due_at, tz),
                     vn_hours(w.hours)] for w in report.waiting], widths=[62, 20, 34, 34, 24], size=8)
    else:
        pdf.set_font("NotoSerif", "", 10)
        pdf.cell(0, 6, "Không có văn bản nào đang chờ.", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("NotoSerif", "", 8)
    pdf.set_text_color(*GREY)
    pdf.ln(3)
    pdf.multi_cell(0, 4, "Thời gian xử lý tính theo giờ thực tế từ lúc giao đến lúc hoàn thành; hạn xử lý tính "
                         "theo ngày, giờ làm việc, trừ ngày nghỉ lễ, Tết. Lập bởi esign lúc "
                         f"{vn_date(report.generated_at, tz)}.", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def _pdf_heading(pdf: Any, text: str) -> None:
    pdf.ln(3)
    pdf.set_font("NotoSerif", "B", 11)
    pdf.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")


def _pdf_table(pdf: Any, header: list[str], rows: list[list[str]], *, widths: list[float] | None = None,
               bold_first: bool = True, size: int = 9) -> None:
    full = pdf.w - pdf.l_margin - pdf.r_margin
    if widths is None:
        first = full * (0.28 if bold_first else 1 / len(header))
        rest = (full - first) / max(len(header) - 1, 1)
        widths = [first] + [rest] * (len(header) - 1)
    pdf.set_font("NotoSerif", "B", size)
    pdf.set_fill_color(232, 238, 247)
    for text, width in zip(header, widths, strict=True):
        pdf.cell(width, 6, text, border=1, align="C", fill=True)
    pdf.ln()
    pdf.set_font("NotoSerif", "", size)
    for row in rows:
        for i, (text, width) in enumerate(zip(row, widths, strict=True)):
            pdf.cell(width, 6, text, border=1, align="L" if i == 0 and bold_first else "R")
        pdf.ln()


def _pdf_chart(pdf: Any, chart: Chart, colour: tuple[int, int, int]) -> None:
    full = pdf.w - pdf.l_margin - pdf.r_margin
    scale = full / chart.width
    height = chart.height * scale
    if pdf.get_y() + height + 4 > pdf.h - pdf.b_margin:
        pdf.add_page()
    x0, y0 = pdf.l_margin, pdf.get_y()
    pdf.set_font("NotoSerif", "B", 10)
    pdf.set_xy(x0, y0)
    pdf.cell(full, 6, chart.title, align="C")
    left, _top, right, bottom = chart.plot
    pdf.set_font("NotoSerif", "", 7)
    pdf.set_draw_color(210, 210, 210)
    pdf.set_line_width(0.2)
    for y, label in chart.ticks:
        pdf.line(x0 + left * scale, y0 + y * scale, x0 + right * scale, y0 + y * scale)
        pdf.set_xy(x0, y0 + y * scale - 2)
        pdf.cell(left * scale - 1.5, 4, label, align="R")
    pdf.set_fill_color(*colour)
    for bar in chart.bars:
        if bar.height > 0:
            pdf.rect(x0 + bar.x * scale, y0 + bar.y * scale, bar.width * scale, bar.height * scale, style="F")
        pdf.set_xy(x0 + (bar.x - 20) * scale, y0 + (bar.y - 14) * scale)
        pdf.cell((bar.width + 40) * scale, 4, bar.text, align="C")
        pdf.set_xy(x0 + (bar.x - 20) * scale, y0 + (bottom + 6) * scale)
        pdf.cell((bar.width + 40) * scale, 4, bar.label, align="C")
    pdf.set_draw_color(80, 80, 80)
    pdf.line(x0 + left * scale, y0 + bottom * scale, x0 + right * scale, y0 + bottom * scale)
    pdf.set_xy(x0, y0 + height + 2)
