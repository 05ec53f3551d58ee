"""Working days and hours, for step deadlines. Pure arithmetic; only the loader reads a file.

Deadlines count **working time**: the hours of working days (not a weekend day,
not a public holiday, or a make-up working day) between the opening hours,
by default 07:30-11:30 and 13:30-17:00 in Asia/Ho_Chi_Minh (7.5 hours a day).
A deadline is the earliest moment at which that much working time has passed:

- ``add_working_hours(start, n)``: n hours of working time after ``start``;
  a start outside working hours counts from the next opening.
- ``add_working_days(start, n)``: n whole working days of working time, i.e.
  the same time of day n working days later (Mon 10:00 + 1 = Tue 10:00); a
  start before opening or after closing counts whole days, ending at closing
  time (Mon 18:00 + 1 = Tue 17:00; Sat 09:00 + 1 = Mon 17:00), and a start in
  the lunch break ends before lunch (Mon 12:00 + 1 = Tue 11:30): the due time is
  always the earliest moment the working time has passed.

Results are aware datetimes in the calendar's zone; ``start`` may be in any
zone (UTC from the database) but must be aware.

``workflows/calendar-vn.toml`` lists the holidays, by example::

    timezone = "Asia/Ho_Chi_Minh"                    # optional, this default
    weekend = ["saturday", "sunday"]                 # optional, this default
    hours = [["07:30", "11:30"], ["13:30", "17:00"]] # optional, this default

    [[holidays]]
    name = { vi = "Tết Dương lịch", en = "New Year's Day" }
    dates = [2026-01-01]              # or from = 2026-02-14 and to = 2026-02-22 (inclusive)

    [[workdays]]                      # a weekend day worked to make up for a bridge day (làm bù)
    name = { vi = "Làm bù ngày 2/5", en = "Make-up day for 2 May" }
    dates = [2025-04-26]
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from esign.errors import DefinitionError, WorkflowError
from esign.workflow.definition import Deadline, Label

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: date.weekday() numbers of Saturday and Sunday
WEEKEND = frozenset({5, 6})
HOURS = ((time(7, 30), time(11, 30)), (time(13, 30), time(17, 0)))
TIMEZONE = "Asia/Ho_Chi_Minh"
#: the longest run of days one holiday entry may span; longer is taken for a typo
MAX_SPAN_DAYS = 14


@dataclass(frozen=True)
class WorkingCalendar:
    """Working days and opening hours in one time zone."""

    holidays: frozenset[date] = frozenset()
    weekend: frozenset[int] = WEEKEND
    hours: tuple[tuple[time, time], ...] = HOURS
    tz: tzinfo = dataclasses.field(default_factory=lambda: ZoneInfo(TIMEZONE))
    #: weekend days that are worked (làm bù), announced with some holidays
    workdays: frozenset[date] = frozenset()
    #: the name of each holiday and make-up day, for display
    names: Mapping[date, Label] = dataclasses.field(
        default_factory=lambda: MappingProxyType({}), compare=False
    )

    def __post_init__(self) -> None:
        if not self.hours:
            raise ValueError("a working calendar needs opening hours")
        end = time.min
        for opens, closes in self.hours:
            if not end <= opens < closes:
                raise ValueError(
                    "opening hours must be increasing, non-overlapping periods within a day"
                )
            end = closes
        if not self.weekend < frozenset(range(7)):
            raise ValueError("the weekend must leave at least one working weekday")
        if self.holidays & self.workdays:
            raise ValueError("a day cannot be both a holiday and a make-up working day")

    @property
    def day_length(self) -> timedelta:
        """Working time in one working day (7.5 hours by default)."""
        return sum((_between(a, b) for a, b in self.hours), timedelta())

    def is_working_day(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() not in self.weekend and day not in self.holidays

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """The moment ``n`` working days of working time after ``start``."""
        return self._advance(start, n * self.day_length, n, "working days")

    def add_working_hours(self, start: datetime, n: int) -> datetime:
        """The moment ``n`` hours of working time after ``start``."""
        return self._advance(start, timedelta(hours=n), n, "working hours")

    def due_at(self, start: datetime, deadline: Deadline) -> datetime:
        """When a step assigned at ``start`` with ``deadline`` falls due."""
        if deadline.working_days is not None:
            return self.add_working_days(start, deadline.working_days)
        assert deadline.working_hours is not None  # Deadline holds exactly one
        return self.add_working_hours(start, deadline.working_hours)

    def _advance(self, start: datetime, amount: timedelta, n: int, unit: str) -> datetime:
        if start.tzinfo is None or start.utcoffset() is None:
            raise WorkflowError(
                "A deadline needs a time with its time zone, not %(start)s", start=start.isoformat()
            )
        if type(n) is not int or n < 0:
            raise WorkflowError(
                "Cannot add %(n)s %(unit)s: give a whole number, 0 or more", n=n, unit=unit
            )
        cursor = start.astimezone(self.tz)
        if not amount:
            return cursor
        remaining = amount
        for begin, end in self._periods(cursor):
            available = end - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable: _periods never ends")

    def _periods(self, cursor: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The working periods from ``cursor`` on, the first one cut at ``cursor``."""
        day = cursor.date()
        while True:
            if self.is_working_day(day):
                for opens, closes in self.hours:
                    begin = datetime.combine(day, opens, self.tz)
                    end = datetime.combine(day, closes, self.tz)
                    begin = max(begin, cursor)
                    if begin < end:
                        yield begin, end
            day += timedelta(days=1)


def _between(a: time, b: time) -> timedelta:
    return datetime.combine(date.min, b) - datetime.combine(date.min, a)


# --- loading -------------------------------------------------------------------

_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)\Z")


def load_calendar(path: str | Path) -> WorkingCalendar:
    """Read ``calendar-vn.toml``; DefinitionError names the file and the key of any problem."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise DefinitionError(
            "%(file)s: cannot be read: %(reason)s", file=str(path), reason=e.strerror or str(e)
        ) from e
    except tomllib.TOMLDecodeError as e:
        raise DefinitionError(
            "%(file)s: is not valid TOML: %(reason)s", file=str(path), reason=str(e)
        ) from e
    return _CalendarReader(str(path)).calendar(data)


class _CalendarReader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str, *args: object) -> NoReturn:
        raise DefinitionError(
            "%(file)s: %(key)s: %(problem)s",
            file=self.source,
            key=key,
            problem=problem % args if args else problem,
        )

    def keys(
        self, table: object, key: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        if not isinstance(table, dict):
            self.fail(key or "top level", "expected a table")
        for name in table:
            if name not in allowed:
                self.fail(
                    f"{key}.{name}" if key else name,
                    "unknown key (expected one of %s)",
                    ", ".join(allowed),
                )
        for name in required:
            if name not in table:
                self.fail(f"{key}.{name}" if key else name, "missing")
        return table

    def calendar(self, data: dict[str, Any]) -> WorkingCalendar:
        self.keys(data, "", ("timezone", "weekend", "hours", "holidays", "workdays"))
        tz = self.timezone(data.get("timezone", TIMEZONE))
        weekend = self.weekend(data.get("weekend", [WEEKDAYS[d] for d in sorted(WEEKEND)]))
        hours = self.hours(data["hours"]) if "hours" in data else HOURS
        names: dict[date, Label] = {}
        where: dict[date, str] = {}
        holidays = self.days(data.get("holidays", []), "holidays", names, where)
        workdays = self.days(data.get("workdays", []), "workdays", names, where)
        for day in sorted(workdays):
            if day.weekday() not in weekend:
                self.fail(
                    where[day],
                    "%s is a %s, already a working day",
                    day.isoformat(),
                    WEEKDAYS[day.weekday()],
                )
        return WorkingCalendar(
            holidays=frozenset(holidays),
            weekend=weekend,
            hours=hours,
            tz=tz,
            workdays=frozenset(workdays),
            names=MappingProxyType(names),
        )

    def timezone(self, value: object) -> tzinfo:
        if not isinstance(value, str):
            self.fail("timezone", "expected a zone name such as %r", TIMEZONE)
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail("timezone", "unknown time zone %r", value)

    def weekend(self, value: object) -> frozenset[int]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail("weekend", "expected a list of weekday names")
        days = set()
        for i, name in enumerate(value):
            if name not in WEEKDAYS:
                self.fail(f"weekend[{i}]", "%r is not one of %s", name, ", ".join(WEEKDAYS))
            days.add(WEEKDAYS.index(name))
        if len(days) != len(value) or len(days) == 7:
            self.fail("weekend", "list each weekday once, and leave at least one working weekday")
        return frozenset(days)

    def hours(self, value: object) -> tuple[tuple[time, time], ...]:
        if not isinstance(value, list) or not value:
            self.fail("hours", 'expected a list of ["HH:MM", "HH:MM"] periods')
        periods = []
        end = time.min
        for i, period in enumerate(value):
            if not (isinstance(period, list) and len(period) == 2):
                self.fail(f"hours[{i}]", 'expected ["HH:MM", "HH:MM"]')
            opens, closes = (self.clock(p, f"hours[{i}][{j}]") for j, p in enumerate(period))
            if not end <= opens < closes:
                self.fail(f"hours[{i}]", "periods must be increasing and must not overlap")
            periods.append((opens, closes))
            end = closes
        return tuple(periods)

    def clock(self, value: object, key: str) -> time:
        match = _HHMM.match(value) if isinstance(value, str) else None
        if match is None:
            self.fail(key, 'expected a time "HH:MM", not %r', value)
        return time(int(match[1]), int(match[2]))

    def days(
        self, value: object, table: str, names: dict[date, Label], where: dict[date, str]
    ) -> set[date]:
        if not isinstance(value, list):
            self.fail(table, "expected an array of tables ([[%s]])", table)
        out: set[date] = set()
        for i, raw in enumerate(value):
            key = f"{table}[{i}]"
            entry = self.keys(raw, key, ("name", "dates", "from", "to"), ("name",))
            name = self.label(entry["name"], f"{key}.name")
            if "dates" in entry:
                if "from" in entry or "to" in entry:
                    self.fail(key, "give either dates or from and to")
                if not isinstance(entry["dates"], list) or not entry["dates"]:
                    self.fail(f"{key}.dates", "expected a non-empty list of dates (2026-01-01)")
                days = [self.day(d, f"{key}.dates[{j}]") for j, d in enumerate(entry["dates"])]
            elif "from" in entry and "to" in entry:
                first, last = (
                    self.day(entry["from"], f"{key}.from"),
                    self.day(entry["to"], f"{key}.to"),
                )
                if not first <= last:
                    self.fail(f"{key}.to", "%s is before %s", last.isoformat(), first.isoformat())
                if (last - first).days >= MAX_SPAN_DAYS:
                    self.fail(
                        f"{key}.to",
                        "a holiday of more than %d days is surely a typo",
                        MAX_SPAN_DAYS,
                    )
                days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
            else:
                self.fail(key, "give dates, or from and to")
            for day in days:
                if day in where:
                    self.fail(key, "%s is already listed in %s", day.isoformat(), where[day])
                where[day] = key
                names[day] = name
                out.add(day)
        return out

    def day(self, value: object, key: str) -> date:
        if not isinstance(value, date) or isinstance(value, datetime):
            self.fail(key, "expected a date written 2026-01-01 (no quotes, no time), not %r", value)
        return value

    def label(self, value: object, key: str) -> Label:
        table = self.keys(value, key, ("vi", "en"), ("vi", "en"))
        for lang in ("vi", "en"):
            if not isinstance(table[lang], str) or not table[lang].strip():
                self.fail(f"{key}.{lang}", "expected a non-empty string")
        return Label(vi=table["vi"], en=table["en"])
