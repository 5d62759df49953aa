"""Deadlines in working time on the State Council calendar (调休 included, via chinese-calendar).

A working day is 09:00–17:00 Asia/Shanghai on a day ``chinese_calendar.is_workday`` says is worked
(weekends swapped into working days count; holidays do not). ``n`` working days are ``n × 8``
working hours. Urgent incidents use natural hours instead. The light is yellow from 80 % of the
time used and red once the deadline has passed; suspension (挂起) pushes both marks back by the
time spent suspended."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import chinese_calendar

from citybase.core.timeutil import SHANGHAI, as_utc

DAY_START = time(9, 0)
DAY_END = time(17, 0)
WORKDAY_SECONDS = 8 * 3600
WARN_FRACTION = 0.8


def is_workday(d: date) -> bool:
    """True if the State Council calendar makes ``d`` a working day (raises outside its years)."""
    try:
        return chinese_calendar.is_workday(d)
    except NotImplementedError:
        return d.weekday() < 5  # beyond the published calendar: plain weekdays


def _day_bounds(d: date) -> tuple[datetime, datetime]:
    return datetime.combine(d, DAY_START, SHANGHAI), datetime.combine(d, DAY_END, SHANGHAI)


def add_working_seconds(start: datetime, seconds: float) -> datetime:
    """The instant at which ``seconds`` of working time have passed since ``start`` (UTC result)."""
    t = as_utc(start).astimezone(SHANGHAI)
    left = float(seconds)
    d = t.date()
    while True:
        if is_workday(d):
            open_, close = _day_bounds(d)
            begin = max(t, open_)
            if begin < close:
                room = (close - begin).total_seconds()
                if left <= room:
                    return as_utc(begin + timedelta(seconds=left))
                left -= room
        d += timedelta(days=1)
        t = datetime.combine(d, time(0, 0), SHANGHAI)


def working_seconds_between(start: datetime, end: datetime) -> float:
    """Working time between two instants (0 if end ≤ start)."""
    a, b = as_utc(start).astimezone(SHANGHAI), as_utc(end).astimezone(SHANGHAI)
    if b <= a:
        return 0.0
    total = timedelta()  # summed exactly (microseconds), made seconds once: a sum of floats drifts
    d = a.date()
    while d <= b.date():
        if is_workday(d):
            open_, close = _day_bounds(d)
            lo, hi = max(a, open_), min(b, close)
            if hi > lo:
                total += hi - lo
        d += timedelta(days=1)
    return total.total_seconds()


def plan(start: datetime, *, mode: str, budget_seconds: int) -> tuple[datetime, datetime]:
    """(warn_at, deadline_at) for a budget counted from ``start`` in ``natural`` or ``working`` time."""
    if mode == "natural":
        s = as_utc(start)
        return s + timedelta(seconds=budget_seconds * WARN_FRACTION), s + timedelta(seconds=budget_seconds)
    return (add_working_seconds(start, budget_seconds * WARN_FRACTION), add_working_seconds(start, budget_seconds))


def shift(mark: datetime, *, mode: str, paused_from: datetime, paused_to: datetime) -> datetime:
    """Push a deadline mark back by the time the clock was stopped (natural or working time)."""
    if mode == "natural":
        return as_utc(mark) + (as_utc(paused_to) - as_utc(paused_from))
    lost = working_seconds_between(paused_from, paused_to)
    return add_working_seconds(mark, lost) if lost else as_utc(mark)


def extend(deadline: datetime, *, mode: str, days: int) -> datetime:
    """The deadline after an approved extension of ``days`` (working days, or natural days when urgent)."""
    if mode == "natural":
        return as_utc(deadline) + timedelta(days=days)
    return add_working_seconds(deadline, days * WORKDAY_SECONDS)


def light(now: datetime, *, warn_at: datetime | None, deadline_at: datetime | None, closed: bool = False,
          suspended_at: datetime | None = None) -> str:
    """green / yellow / red for an open incident at ``now`` (grey when closed or without a deadline)."""
    if closed or deadline_at is None:
        return "grey"
    at = as_utc(suspended_at) if suspended_at else as_utc(now)  # a suspended clock stands still
    if at > as_utc(deadline_at):
        return "red"
    if warn_at is not None and at >= as_utc(warn_at):
        return "yellow"
    return "green"
