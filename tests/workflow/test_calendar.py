"""Working-day and working-hour arithmetic with fixed datetimes (no clock), and the holiday file."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from esign.errors import DefinitionError, WorkflowError
from esign.workflow.calendar import WorkingCalendar, load_calendar
from esign.workflow.definition import Deadline

from .conftest import WORKFLOWS

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
PLAIN = WorkingCalendar()  # weekends only, no holidays


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=HCM)


# --- working days and hours ----------------------------------------------------------


def test_default_working_day_is_seven_and_a_half_hours() -> None:
    assert PLAIN.day_length == timedelta(hours=7, minutes=30)


def test_add_working_days_keeps_the_time_of_day() -> None:
    assert PLAIN.add_working_days(at(2025, 12, 1, 10), 2) == at(2025, 12, 3, 10)  # Mon -> Wed


def test_add_working_days_across_a_weekend() -> None:
    assert PLAIN.add_working_days(at(2025, 11, 28, 10), 1) == at(2025, 12, 1, 10)  # Fri -> Mon
    # Thu -> Tue
    assert PLAIN.add_working_days(at(2025, 11, 27, 15, 45), 3) == at(2025, 12, 2, 15, 45)


def test_add_working_days_from_a_weekend_counts_whole_days() -> None:
    # Sat -> Mon closing
    assert PLAIN.add_working_days(at(2025, 11, 29, 9), 1) == at(2025, 12, 1, 17)


def test_add_working_days_after_closing_counts_from_the_next_morning() -> None:
    assert PLAIN.add_working_days(at(2025, 12, 1, 18), 1) == at(2025, 12, 2, 17)


def test_add_working_days_before_opening_ends_at_closing_the_same_day() -> None:
    assert PLAIN.add_working_days(at(2025, 12, 1, 6), 1) == at(2025, 12, 1, 17)


def test_add_working_days_during_lunch_counts_from_the_afternoon() -> None:
    # 13:30 Mon to 11:30 Tue is one working day; the due time is the earliest moment
    assert PLAIN.add_working_days(at(2025, 12, 1, 12), 1) == at(2025, 12, 2, 11, 30)


def test_add_working_hours_skips_the_lunch_break() -> None:
    assert PLAIN.add_working_hours(at(2025, 12, 1, 10), 3) == at(2025, 12, 1, 15)


def test_add_working_hours_ending_at_closing_stays_that_day() -> None:
    assert PLAIN.add_working_hours(at(2025, 12, 1, 7, 30), 8) == at(2025, 12, 2, 8)
    assert PLAIN.add_working_hours(at(2025, 12, 1, 13, 30), 3) == at(2025, 12, 1, 16, 30)
    assert PLAIN.add_working_hours(at(2025, 12, 1, 16), 1) == at(2025, 12, 1, 17)


def test_add_working_hours_across_a_weekend() -> None:
    # Fri 16:00 + 8 h: one hour on Friday, then 4 + 3 on Monday
    assert PLAIN.add_working_hours(at(2025, 11, 28, 16), 8) == at(2025, 12, 1, 16, 30)


def test_start_in_utc_gives_a_due_time_in_vietnam() -> None:
    start = datetime(2025, 12, 1, 3, 0, tzinfo=UTC)  # 10:00 in Hà Nội
    due = PLAIN.add_working_days(start, 1)
    assert due == at(2025, 12, 2, 10)
    assert due.utcoffset() == timedelta(hours=7)
    assert due.isoformat() == "2025-12-02T10:00:00+07:00"


def test_start_in_another_fixed_offset_is_converted() -> None:
    start = datetime(2025, 12, 1, 12, 0, tzinfo=timezone(timedelta(hours=9)))  # 10:00 in Hà Nội
    assert PLAIN.add_working_hours(start, 1) == at(2025, 12, 1, 11)


def test_zero_adds_nothing() -> None:
    assert PLAIN.add_working_days(at(2025, 11, 29, 9), 0) == at(2025, 11, 29, 9)


def test_naive_start_is_refused() -> None:
    with pytest.raises(WorkflowError, match="time zone"):
        PLAIN.add_working_days(datetime(2025, 12, 1, 10), 1)


@pytest.mark.parametrize("n", [-1, 1.5, True])
def test_amount_must_be_a_whole_number(n: int) -> None:
    with pytest.raises(WorkflowError, match="whole number"):
        PLAIN.add_working_hours(at(2025, 12, 1, 10), n)


def test_due_at_follows_the_deadline_unit() -> None:
    start = at(2025, 12, 5, 16)  # Friday
    assert PLAIN.due_at(start, Deadline(working_days=2)) == at(2025, 12, 9, 16)
    assert PLAIN.due_at(start, Deadline(working_hours=8)) == at(2025, 12, 8, 16, 30)


def test_custom_hours_and_weekend() -> None:
    six_days = WorkingCalendar(weekend=frozenset({6}), hours=((time(8), time(12)),))
    assert six_days.add_working_hours(at(2025, 11, 29, 11), 2) == at(2025, 12, 1, 9)  # Sat -> Mon


def test_calendar_refuses_overlapping_hours_and_a_weekend_of_seven_days() -> None:
    with pytest.raises(ValueError):
        WorkingCalendar(hours=((time(8), time(12)), (time(11), time(13))))
    with pytest.raises(ValueError):
        WorkingCalendar(weekend=frozenset(range(7)))


# --- the Vietnamese holidays ----------------------------------------------------------


def test_add_working_days_across_tet_2026(calendar_vn: WorkingCalendar) -> None:
    # Tết Bính Ngọ: off Sat 14/2 to Sun 22/2/2026
    assert calendar_vn.add_working_days(at(2026, 2, 13, 10), 1) == at(2026, 2, 23, 10)
    assert calendar_vn.add_working_days(at(2026, 2, 12, 15), 2) == at(2026, 2, 23, 15)


def test_add_working_hours_across_tet_2026(calendar_vn: WorkingCalendar) -> None:
    assert calendar_vn.add_working_hours(at(2026, 2, 13, 16), 8) == at(2026, 2, 23, 16, 30)


def test_due_at_for_a_step_assigned_on_the_eve_of_tet_2026(calendar_vn: WorkingCalendar) -> None:
    start = datetime(2026, 2, 13, 2, 0, tzinfo=UTC)  # Fri 09:00 in Hà Nội
    assert calendar_vn.due_at(start, Deadline(working_days=3)) == at(2026, 2, 25, 9)


@pytest.mark.parametrize("day", [date(2026, 2, 16) + timedelta(days=k) for k in range(5)])
def test_tet_2026_weekdays_are_not_working_days(calendar_vn: WorkingCalendar, day: date) -> None:
    assert not calendar_vn.is_working_day(day)


@pytest.mark.parametrize(
    "new_year", [date(2025, 1, 29), date(2026, 2, 17), date(2027, 2, 6), date(2028, 1, 26)]
)
def test_lunar_new_year_and_its_neighbours_are_off(
    calendar_vn: WorkingCalendar, new_year: date
) -> None:
    for k in range(-1, 4):
        day = new_year + timedelta(days=k)
        assert not calendar_vn.is_working_day(day), day


# each statutory holiday, or the working day that makes up for it when it falls on a weekend
STATUTORY = {
    "1/1": ["2025-01-01", "2026-01-01", "2027-01-01", "2028-01-03"],
    "Giỗ Tổ": ["2025-04-07", "2026-04-27", "2027-04-16", "2028-04-04"],
    "30/4": ["2025-04-30", "2026-04-30", "2027-04-30", "2028-05-02"],
    "1/5": ["2025-05-01", "2026-05-01", "2027-05-03", "2028-05-01"],
    "2/9": ["2025-09-02", "2026-09-02", "2027-09-02", "2028-09-04"],
}


@pytest.mark.parametrize(
    "day", [date.fromisoformat(d) for days in STATUTORY.values() for d in days]
)
def test_statutory_holidays_2025_to_2028_are_off(calendar_vn: WorkingCalendar, day: date) -> None:
    assert not calendar_vn.is_working_day(day)


def test_quoc_khanh_has_an_adjacent_day_off_each_year(calendar_vn: WorkingCalendar) -> None:
    for year in (2025, 2026, 2027, 2028):
        off = [d for d in (date(year, 9, 1), date(year, 9, 3)) if not calendar_vn.is_working_day(d)]
        assert off, year


def test_make_up_saturday_2025_is_a_working_day(calendar_vn: WorkingCalendar) -> None:
    assert calendar_vn.is_working_day(date(2025, 4, 26))
    assert not calendar_vn.is_working_day(date(2025, 5, 2))
    # Fri 25/4 10:00 + 1 working day: the make-up Saturday
    assert calendar_vn.add_working_days(at(2025, 4, 25, 10), 1) == at(2025, 4, 26, 10)


def test_holiday_names_are_kept_for_display(calendar_vn: WorkingCalendar) -> None:
    assert calendar_vn.names[date(2026, 2, 17)].vi == "Tết Nguyên Đán Bính Ngọ"
    assert calendar_vn.names[date(2025, 4, 26)].en.startswith("Make-up")


def test_ordinary_days_stay_working_days(calendar_vn: WorkingCalendar) -> None:
    assert calendar_vn.is_working_day(date(2026, 2, 23))
    assert not calendar_vn.is_working_day(date(2026, 2, 28))  # Saturday


# --- the loader refuses a broken file, naming file and key ------------------------------

GOOD = """\
[[holidays]]
name = { vi = "Tết Dương lịch", en = "New Year's Day" }
dates = [2026-01-01]
"""

BROKEN_CALENDAR = {
    "unknown_top_level_key": ("colour = 1\n" + GOOD, "colour", "unknown key"),
    "unknown_holiday_key": (GOOD + "kind = 'x'\n", "holidays[0].kind", "unknown key"),
    "date_as_text": (
        GOOD.replace("[2026-01-01]", '["2026-01-01"]'),
        "holidays[0].dates[0]",
        "expected a date",
    ),
    "datetime_not_date": (
        GOOD.replace("[2026-01-01]", "[2026-01-01T08:00:00]"),
        "holidays[0].dates[0]",
        "no time",
    ),
    "missing_name": ("[[holidays]]\ndates = [2026-01-01]\n", "holidays[0].name", "missing"),
    "neither_dates_nor_range": (
        '[[holidays]]\nname = { vi = "a", en = "b" }\n',
        "holidays[0]",
        "give dates",
    ),
    "dates_and_range": (
        GOOD + "from = 2026-01-01\nto = 2026-01-02\n",
        "holidays[0]",
        "either dates or from",
    ),
    "range_backwards": (
        '[[holidays]]\nname = { vi = "a", en = "b" }\nfrom = 2026-02-22\nto = 2026-02-14\n',
        "holidays[0].to",
        "is before",
    ),
    "range_too_long": (
        '[[holidays]]\nname = { vi = "a", en = "b" }\nfrom = 2026-02-01\nto = 2026-03-01\n',
        "holidays[0].to",
        "typo",
    ),
    "date_listed_twice": (
        GOOD + GOOD,
        "holidays[1]",
        "2026-01-01 is already listed in holidays[0]",
    ),
    "make_up_day_on_a_weekday": (
        '[[workdays]]\nname = { vi = "a", en = "b" }\ndates = [2026-01-05]\n',
        "workdays[0]",
        "already a working day",
    ),
    "make_up_day_that_is_a_holiday": (
        GOOD.replace("2026-01-01", "2026-01-03")
        + '[[workdays]]\nname = { vi = "a", en = "b" }\ndates = [2026-01-03]\n',
        "workdays[0]",
        "already listed in holidays[0]",
    ),
    "unknown_weekday": ('weekend = ["saturday", "sundae"]\n', "weekend[1]", "'sundae'"),
    "bad_hours": (
        'hours = [["07:30", "11:30"], ["11:00", "17:00"]]\n',
        "hours[1]",
        "must not overlap",
    ),
    "bad_clock": ('hours = [["7h30", "11:30"]]\n', "hours[0][0]", "HH:MM"),
    "unknown_timezone": ('timezone = "Asia/Saigon_City"\n', "timezone", "unknown time zone"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_CALENDAR))
def test_load_calendar_refuses_a_broken_file_naming_file_and_key(tmp_path: Path, case: str) -> None:
    text, key, fragment = BROKEN_CALENDAR[case]
    path = tmp_path / "calendar-vn.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DefinitionError) as err:
        load_calendar(path)
    assert str(err.value).startswith(f"{path}: {key}: ")
    assert fragment in str(err.value)


def test_load_calendar_names_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "calendar-vn.toml"
    path.write_text("[[holidays]\n", encoding="utf-8")
    with pytest.raises(DefinitionError, match="calendar-vn.toml: is not valid TOML"):
        load_calendar(path)


def test_load_calendar_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "calendar-vn.toml"
    path.write_text(GOOD, encoding="utf-8")
    calendar = load_calendar(path)
    assert calendar.holidays == frozenset({date(2026, 1, 1)})
    assert calendar == WorkingCalendar(holidays=frozenset({date(2026, 1, 1)}))


def test_the_shipped_calendar_file_loads(calendar_vn: WorkingCalendar) -> None:
    assert calendar_vn == load_calendar(WORKFLOWS / "calendar-vn.toml")
    assert {d.year for d in calendar_vn.holidays} == {2025, 2026, 2027, 2028}
