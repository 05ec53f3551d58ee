"""The unit report (page, CSV, PDF), escalation of overdue steps, and the officer's notifications."""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from esign.errors import EsignError
from esign.services import reminders, reports
from esign.web.helpers import esign_ctx, lang, me, translate_error

bp = Blueprint("reports", __name__)


def _period() -> tuple[date, date]:
    """The period of the query string (dd/mm/yyyy), by default this year up to today."""
    ctx = esign_ctx()
    today = ctx.now().astimezone(ZoneInfo(ctx.settings.app.timezone)).date()
    first_text, last_text = request.args.get("from", "").strip(), request.args.get("to", "").strip()
    first = reports.parse_date(first_text) if first_text else date(today.year, 1, 1)
    last = reports.parse_date(last_text) if last_text else today
    return first, last


def _query(first: date, last: date) -> dict[str, str]:
    return {"from": first.strftime("%d/%m/%Y"), "to": last.strftime("%d/%m/%Y")}


def _filename(report: reports.UnitReport, ext: str) -> str:
    return f"bao-cao-{report.period.first:%Y%m%d}-{report.period.last:%Y%m%d}.{ext}"


@bp.get("/reports")
@login_required
def index() -> Any:
    ctx = esign_ctx()
    first, last = _period()
    report = reports.unit_report(ctx, me(), first, last)
    overdue = reports.overdue_now(ctx, me())
    return render_template(
        "reports/index.html",
        report=report,
        query=_query(first, last),
        charts=[reports.step_chart(report, lang()), reports.month_chart(report, lang())],
        overdue=overdue,
        can_escalate=bool(me().roles & reminders.ESCALATING_ROLES),
    )


@bp.get("/reports/report.csv")
@login_required
def csv_export() -> Any:
    first, last = _period()
    report = reports.unit_report(esign_ctx(), me(), first, last)
    return Response(reports.report_csv(report).encode("utf-8"), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={_filename(report, 'csv')}"})


@bp.get("/reports/report.pdf")
@login_required
def pdf_export() -> Any:
    first, last = _period()
    report = reports.unit_report(esign_ctx(), me(), first, last)
    return Response(reports.report_pdf(report), mimetype="application/pdf",
                    headers={"Content-Disposition": f"inline; filename={_filename(report, 'pdf')}"})


@bp.post("/reports/escalate")
@login_required
def escalate() -> Any:
    step_id = request.form.get("step_id", type=int)
    try:
        if step_id is None:
            raise reports.ReportError("Choose a step to escalate")
        reminders.escalate(esign_ctx(), me(), step_id, to=request.form.get("assignee") or None,
                           comment=request.form.get("comment", ""))
        flash(_("The overdue step was handed over; the audit trail records it."), "success")
    except EsignError as e:
        if e.status >= 500:
            raise
        flash(translate_error(e), "error")
    period = {"from": request.form.get("period_from", ""), "to": request.form.get("period_to", "")}
    return redirect(url_for("reports.index", **{k: v for k, v in period.items() if v}))


@bp.get("/notifications")
@login_required
def notifications() -> Any:
    rows = reminders.notifications_of(esign_ctx(), me())
    return render_template("reports/notifications.html", rows=rows)


@bp.post("/notifications/read")
@login_required
def notifications_read() -> Any:
    reminders.mark_read(esign_ctx(), me())
    return redirect(url_for("reports.notifications"))


@bp.app_template_filter("vn_number")
def _vn_number(value: float | None, decimals: int = 0) -> str:
    return reports.vn_number(value, decimals)


@bp.app_template_filter("vn_hours")
def _vn_hours(value: float | None) -> str:
    text = reports.vn_hours(value)
    return text if lang() == "vi" else text.replace(" giờ", " h").replace(" ngày", " d")


@bp.app_context_processor
def _report_globals() -> dict[str, Any]:
    def unread_notifications() -> int:
        if not current_user or not current_user.is_authenticated:
            return 0
        return reminders.unread_count(esign_ctx(), me())

    def can_read_reports() -> bool:
        return bool(current_user and current_user.is_authenticated and me().roles & reports.REPORT_ROLES)

    return {"unread_notifications": unread_notifications, "can_read_reports": can_read_reports,
            "vn_percent": reports.vn_percent}
