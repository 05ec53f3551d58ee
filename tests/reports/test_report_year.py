"""The unit report on a generated year of about 16,000 documents, checked against an independent count."""

from __future__ import annotations

import time as timer
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from esign.models import Unit, User
from esign.services import reports
from esign.services.context import Context
from esign.services.demo import DEMO_UNIT

from .conftest import _ward
from .generate import expected_report, generate_year

NOW = datetime(2026, 12, 31, 8, 0, tzinfo=UTC)  # 15:00 in Hà Nội, the last working day of 2026
DOCUMENTS = 16_000


def _chair(ctx: Context) -> User:
    with ctx.db.session() as session:
        return next(u for u in session.scalars(select(User).order_by(User.id)) if "chair" in u.roles)


def _unit_id(ctx: Context) -> int:
    with ctx.db.session() as session:
        return session.scalar(select(Unit.id).where(Unit.code == DEMO_UNIT["code"]))


def _check(report: reports.UnitReport, expected: dict[str, object]) -> None:
    for name in ("received", "handled", "on_time", "issued", "rejected", "open", "overdue"):
        assert getattr(report, name) == expected[name], name
    months = {m.month: [m.handled, m.on_time] for m in report.months if m.handled}
    assert months == expected["months"]
    steps = {s.state: (s.count, s.on_time, s.avg_hours) for s in report.steps if s.count}
    assert steps.keys() == expected["steps"].keys()
    for state, (n, ok, avg) in expected["steps"].items():
        assert steps[state][:2] == (n, ok), state
        assert steps[state][2] == pytest.approx(avg, rel=1e-6), state
    officers = {o.user_id: (o.count, o.on_time, o.avg_hours) for o in report.officers}
    assert officers.keys() == expected["officers"].keys()
    for user_id, (n, ok, avg) in expected["officers"].items():
        assert officers[user_id][:2] == (n, ok)
        assert officers[user_id][2] == pytest.approx(avg, rel=1e-6)
    assert {s.state: s.waiting for s in report.steps if s.waiting} == expected["waiting"]
    assert (report.waiting[0].step_id if report.waiting else None) == expected["longest"]


@pytest.fixture(scope="module")
def year(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """16,000 documents of 2026 on SQLite, generated once for the module."""
    ctx = _ward(tmp_path_factory.mktemp("year"), None)
    ctx.clock = lambda: NOW
    started = timer.perf_counter()
    generated = generate_year(ctx, _unit_id(ctx), DOCUMENTS, now=NOW)
    print(f"generated {len(generated.docs)} documents, {len(generated.steps)} steps "
          f"in {timer.perf_counter() - started:.1f} s")
    yield ctx, generated
    ctx.close()


def test_report_of_a_generated_year_matches_an_independent_count(year) -> None:  # type: ignore[no-untyped-def]
    ctx, generated = year
    unit_id = _unit_id(ctx)
    chair = _chair(ctx)
    started = timer.perf_counter()
    report = reports.unit_report(ctx, chair, date(2026, 1, 1), date(2026, 12, 31))
    elapsed = timer.perf_counter() - started
    print(f"year report in {elapsed:.2f} s: {report.handled} handled, {report.on_time_rate} on time")
    expected = expected_report(generated, unit_id, date(2026, 1, 1), date(2026, 12, 31))
    assert report.received == DOCUMENTS
    assert report.handled > 15_000 and 0 < report.late < report.handled and report.open > 0
    _check(report, expected)
    assert elapsed < 5


def test_report_of_the_tet_quarter_is_a_snapshot_at_its_end(year) -> None:  # type: ignore[no-untyped-def]
    ctx, generated = year
    report = reports.unit_report(ctx, _chair(ctx), date(2026, 1, 1), date(2026, 3, 31))
    assert report.as_of == datetime(2026, 3, 31, 17, 0, tzinfo=UTC)
    assert [m.month for m in report.months] == ["2026-01", "2026-02", "2026-03"]
    _check(report, expected_report(generated, _unit_id(ctx), date(2026, 1, 1), date(2026, 3, 31)))
    assert report.open > 0  # documents in progress at the end of March, done since


def test_report_on_both_databases_matches_the_count(ward: Context) -> None:
    """A small generated year, with a second ward whose documents must not be counted."""
    from esign.services import users

    ward.clock = lambda: NOW
    unit_id = _unit_id(ward)
    with ward.db.session() as session:
        other = users.create_unit(session, "tandinh", "ỦY BAN NHÂN DÂN PHƯỜNG TÂN ĐỊNH")
        for username, role in (("o1", "officer"), ("a1", "adviser"), ("c1", "chair"), ("k1", "clerk")):
            from esign.models import UserRole

            session.add(User(unit=other, username=username, full_name=username, password_hash="!",
                             role_rows=[UserRole(role=role)]))
        other_id = other.id
    generated = generate_year(ward, unit_id, 400, now=NOW, seed=7)
    generate_year(ward, other_id, 150, now=NOW, seed=8)
    report = reports.unit_report(ward, _chair(ward), date(2026, 1, 1), date(2026, 12, 31))
    assert report.received == 400
    _check(report, expected_report(generated, unit_id, date(2026, 1, 1), date(2026, 12, 31)))
    quarter = reports.unit_report(ward, _chair(ward), date(2026, 4, 1), date(2026, 6, 30))
    _check(quarter, expected_report(generated, unit_id, date(2026, 4, 1), date(2026, 6, 30)))


def test_only_unit_wide_roles_read_the_report_and_the_period_must_make_sense(ward: Context) -> None:
    from esign.errors import Forbidden

    with ward.db.session() as session:
        officer = session.scalar(select(User).where(User.username == "nguyenvana"))
    with pytest.raises(Forbidden):
        reports.unit_report(ward, officer, date(2026, 1, 1), date(2026, 12, 31))
    with pytest.raises(reports.ReportError):
        reports.unit_report(ward, _chair(ward), date(2026, 2, 1), date(2026, 1, 1))
    empty = reports.unit_report(ward, _chair(ward), date(2026, 1, 1), date(2026, 1, 31))
    assert (empty.handled, empty.on_time_rate, empty.open) == (0, "–", 0)


@pytest.mark.parametrize(("value", "text"), [(16335, "16.335"), (1234567, "1.234.567"), (0, "0"), (999, "999")])
def test_numbers_are_written_the_vietnamese_way(value: int, text: str) -> None:
    assert reports.vn_number(value) == text


def test_percentages_keep_one_decimal_and_never_round_to_a_whole() -> None:
    assert reports.vn_percent(16335, 16335) == "100 %"
    assert reports.vn_percent(16302, 16335) == "99,8 %"
    assert reports.vn_percent(16334, 16335) == "99,9 %"
    assert reports.vn_percent(1, 16335) == "0,1 %"
    assert reports.vn_percent(0, 5) == "0 %"
    assert reports.vn_percent(0, 0) == "–"
    assert reports.vn_number(2.25, 1) == "2,2" or reports.vn_number(2.25, 1) == "2,3"
    assert reports.vn_hours(5.25) == "5,2 giờ" or reports.vn_hours(5.25) == "5,3 giờ"
    assert reports.vn_hours(72) == "3,0 ngày"


def test_dates_are_read_as_people_write_them() -> None:
    assert reports.parse_date("05/02/2026") == date(2026, 2, 5)
    assert reports.parse_date("2026-02-05") == date(2026, 2, 5)
    with pytest.raises(reports.ReportError):
        reports.parse_date("02-05-2026")
