"""Fixtures of the engine tests: the real definition and calendar, no app, no database."""

from __future__ import annotations

from pathlib import Path

import pytest

from esign.workflow.calendar import WorkingCalendar, load_calendar
from esign.workflow.definition import Definition, load_definition

WORKFLOWS = Path(__file__).resolve().parent.parent.parent / "workflows"
MEMO = WORKFLOWS / "advisory-memo.toml"


@pytest.fixture(scope="session")
def memo() -> Definition:
    return load_definition(MEMO)


@pytest.fixture(scope="session")
def calendar_vn() -> WorkingCalendar:
    return load_calendar(WORKFLOWS / "calendar-vn.toml")
