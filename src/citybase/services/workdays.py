"""Time limits in working days on the State Council calendar (调休 included, via chinese-calendar).

A service's time limit counts whole working days from the day after acceptance (受理当日不计); the part is
due at 17:00 Asia/Shanghai on its last working day. The light is yellow once the last working day (or the
last fifth of a longer limit) has begun, red after the deadline. A correction (补正) stops the clock: the
deadline moves on by the working days the part spent waiting for the applicant."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import chinese_calendar

from citybase.core.timeutil import SHANGHAI, as_utc

DUE_AT = time(17, 0)


def is_workday(d: date) -> bool:
    """True if the State Council calendar makes ``d`` a working day (plain weekdays beyond its years)."""
    try:
        return chinese_calendar.is_workday(d)
    except NotImplementedError:
        return d.weekday() < 5


def local_date(at: datetime) -> date:
    """The Shanghai calendar date of an instant."""
    return as_utc(at).astimezone(SHANGHAI).date()


def add_working_days(start: date, days: int) -> date:
    """The ``days``-th working day after ``start`` (``start`` itself when 0 and a working day, else the next)."""
    d = start
    if days <= 0:
        while not is_workday(d):
            d += timedelta(days=1)
        return d
    left = days
    while left:
        d += timedelta(days=1)
        if is_workday(d):
            left -= 1
    return d


def working_days_between(a: date, b: date) -> int:
    """Working days in (a, b]: how many working days pass from ``a`` to ``b`` (0 if b ≤ a)."""
    n, d = 0, a
    while d < b:
        d += timedelta(days=1)
        if is_workday(d):
            n += 1
    return n


def _counted_from(at: datetime, days: int) -> date:
    """The day a limit counts from: a 即办 item (0 days) taken in after hours is due the next working day."""
    local = as_utc(at).astimezone(SHANGHAI)
    return local.date() + timedelta(days=1) if days == 0 and local.time() >= DUE_AT else local.date()


def due(at: datetime, days: int) -> datetime:
    """The deadline (UTC) of a limit of ``days`` working days counted from acceptance at ``at``."""
    return as_utc(datetime.combine(add_working_days(_counted_from(at, days), days), DUE_AT, SHANGHAI))


def warn(at: datetime, days: int) -> datetime:
    """When the light turns yellow: the start of the last working day, or of the last fifth of the limit."""
    before = max(1, round(days * 0.2))
    start_day = add_working_days(_counted_from(at, days), max(0, days - before))
    return as_utc(datetime.combine(start_day, time(0, 0), SHANGHAI))


def shift(mark: datetime, *, paused_at: datetime, resumed_at: datetime) -> datetime:
    """A deadline mark moved on by the working days between a pause and its end."""
    lost = working_days_between(local_date(paused_at), local_date(resumed_at))
    if not lost:
        return as_utc(mark)
    local = as_utc(mark).astimezone(SHANGHAI)
    return as_utc(datetime.combine(add_working_days(local.date(), lost), local.time(), SHANGHAI))


def light(now: datetime, *, warn_at: datetime | None, deadline_at: datetime | None, open_: bool,
          paused_at: datetime | None = None) -> str:
    """green / yellow / red for an open part at ``now``; grey when finished or the clock has not started."""
    if not open_ or deadline_at is None:
        return "grey"
    at = as_utc(paused_at) if paused_at else as_utc(now)
    if at > as_utc(deadline_at):
        return "red"
    if warn_at is not None and at >= as_utc(warn_at):
        return "yellow"
    return "green"
