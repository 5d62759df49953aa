"""Deadlines on the State Council calendar: holidays skipped, swapped working weekends (调休) counted."""

from datetime import UTC, datetime, timedelta

from citybase.core.timeutil import SHANGHAI
from citybase.ops.workflow import deadlines

DAY = deadlines.WORKDAY_SECONDS


def sh(*args):
    return datetime(*args, tzinfo=SHANGHAI)


def test_a_working_day_from_before_national_day_lands_after_the_holiday():
    # 2025: 1–8 October off; Sunday 28 September and Saturday 11 October worked.
    assert deadlines.add_working_seconds(sh(2025, 9, 30, 10), DAY) == sh(2025, 10, 9, 10).astimezone(UTC)


def test_a_swapped_working_sunday_counts():
    assert deadlines.add_working_seconds(sh(2025, 9, 26, 10), DAY) == sh(2025, 9, 28, 10).astimezone(UTC)
    assert deadlines.is_workday(sh(2025, 10, 11).date()) and not deadlines.is_workday(sh(2025, 10, 4).date())


def test_after_hours_reports_start_counting_next_morning():
    assert deadlines.add_working_seconds(sh(2025, 11, 21, 20), 3600) == sh(2025, 11, 24, 10).astimezone(UTC)


def test_working_time_between_skips_nights_and_weekends():
    assert deadlines.working_seconds_between(sh(2025, 11, 21, 16), sh(2025, 11, 24, 10)) == 2 * 3600


def test_warning_at_eighty_percent_and_red_past_the_deadline():
    start = sh(2025, 11, 24, 9)
    warn, due = deadlines.plan(start, mode="working", budget_seconds=DAY)
    assert (warn, due) == (sh(2025, 11, 24, 15, 24).astimezone(UTC), sh(2025, 11, 24, 17).astimezone(UTC))
    assert deadlines.light(sh(2025, 11, 24, 12), warn_at=warn, deadline_at=due) == "green"
    assert deadlines.light(sh(2025, 11, 24, 16), warn_at=warn, deadline_at=due) == "yellow"
    assert deadlines.light(sh(2025, 11, 24, 18), warn_at=warn, deadline_at=due) == "red"
    assert deadlines.light(sh(2025, 11, 24, 18), warn_at=warn, deadline_at=due, closed=True) == "grey"


def test_a_suspended_clock_stands_still_and_resuming_pushes_the_deadline():
    warn, due = deadlines.plan(sh(2025, 11, 24, 9), mode="working", budget_seconds=DAY)
    paused = sh(2025, 11, 24, 12)
    assert deadlines.light(sh(2025, 11, 26, 12), warn_at=warn, deadline_at=due, suspended_at=paused) == "green"
    moved = deadlines.shift(due, mode="working", paused_from=paused, paused_to=sh(2025, 11, 25, 12))
    assert moved == sh(2025, 11, 25, 17).astimezone(UTC)  # one working day of pause, one day later
    natural = deadlines.shift(due, mode="natural", paused_from=paused, paused_to=paused + timedelta(hours=3))
    assert natural == due + timedelta(hours=3)


def test_urgent_deadlines_run_through_the_night():
    warn, due = deadlines.plan(sh(2025, 10, 1, 23), mode="natural", budget_seconds=3600)
    assert due == sh(2025, 10, 2, 0).astimezone(UTC)


def test_an_extension_adds_working_days():
    assert deadlines.extend(sh(2025, 9, 30, 17), mode="working", days=1) == sh(2025, 10, 9, 17).astimezone(UTC)
