"""Time limits in working days on the State Council calendar, the lights, and the clock stopped by 补正."""

from __future__ import annotations

from datetime import date, datetime

from citybase.core.timeutil import SHANGHAI
from citybase.services import workdays


def sh(y: int, m: int, d: int, h: int = 10) -> datetime:
    return datetime(y, m, d, h, 0, tzinfo=SHANGHAI)


def test_working_days_skip_the_national_day_holiday_and_count_the_swapped_sunday():
    # 2025: 1–8 October off; Sunday 28 September and Saturday 11 October worked (调休)
    assert workdays.add_working_days(date(2025, 9, 26), 1) == date(2025, 9, 28)
    assert workdays.add_working_days(date(2025, 9, 30), 1) == date(2025, 10, 9)
    assert workdays.add_working_days(date(2025, 10, 9), 2) == date(2025, 10, 11)
    assert workdays.working_days_between(date(2025, 9, 30), date(2025, 10, 9)) == 1


def test_the_deadline_is_17_00_on_the_last_working_day_and_acceptance_day_does_not_count():
    due = workdays.due(sh(2025, 9, 30), 3)
    assert due.astimezone(SHANGHAI) == sh(2025, 10, 11, 17)
    assert workdays.due(sh(2025, 12, 1), 0).astimezone(SHANGHAI) == sh(2025, 12, 1, 17)  # 即办: the same day
    assert workdays.due(sh(2025, 12, 5, 20), 0).astimezone(SHANGHAI) == sh(2025, 12, 8, 17)  # Friday night: Monday


def test_the_light_turns_yellow_on_the_last_day_red_after_the_deadline_and_stands_still_while_paused():
    start = sh(2025, 12, 1)  # a Monday
    due, warn = workdays.due(start, 5), workdays.warn(start, 5)
    assert workdays.light(sh(2025, 12, 2), warn_at=warn, deadline_at=due, open_=True) == "green"
    assert workdays.light(sh(2025, 12, 8), warn_at=warn, deadline_at=due, open_=True) == "yellow"
    assert workdays.light(sh(2025, 12, 8, 18), warn_at=warn, deadline_at=due, open_=True) == "red"
    assert workdays.light(sh(2025, 12, 9), warn_at=warn, deadline_at=due, open_=True,
                          paused_at=sh(2025, 12, 3)) == "green"
    assert workdays.light(sh(2025, 12, 9), warn_at=warn, deadline_at=due, open_=False) == "grey"


def test_a_correction_moves_the_deadline_by_the_working_days_it_took():
    due = workdays.due(sh(2025, 12, 1), 5)  # Monday 8 December 17:00
    moved = workdays.shift(due, paused_at=sh(2025, 12, 3), resumed_at=sh(2025, 12, 8))  # 3 working days
    assert moved.astimezone(SHANGHAI) == sh(2025, 12, 11, 17)
    assert workdays.shift(due, paused_at=sh(2025, 12, 3, 9), resumed_at=sh(2025, 12, 3, 16)) == due
