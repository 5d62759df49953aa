"""Metrics of the incident loop, as 12345 practice defines them.

* volume — reports taken (merged duplicates count as repeats, not as new cases)
* 按期办结率 on_time_rate — closed cases closed by their deadline / closed cases with a deadline
* handling hours — registration (立案) to closing, mean and median
* 满意率 satisfaction_rate — 满意 + 基本满意 / rated cases
* 重复率 repeat_rate — merged repeat reports / all reports
* 退单率 return_rate — cases returned by a department at least once / dispatched cases
* 先行联系率 first_contact_rate — dispatched cases whose reporter was called within 24 h / dispatched cases
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from citybase.core.timeutil import as_utc, utcnow
from citybase.geo import service as geo
from citybase.ops.catalogue import service as catalogue
from citybase.ops.metrics.repository import MetricsRepository
from citybase.ops.workflow.states import DONE, Status
from citybase.registry import service as registry


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _names(session: Session, by: str) -> dict[Any, str]:
    if by == "department":
        return {d.id: d.name for d in registry.list_departments(session=session)}
    if by in ("street", "grid"):
        return {a.id: a.name for a in geo.list_areas(session=session, level=by)}
    if by == "category":
        return catalogue.category_names(session=session)
    return {}


def compute(*, session: Session, by: str = "department", since: datetime | None = None,
            until: datetime | None = None) -> list[dict[str, Any]]:
    """One row of metrics per group (department, street, grid, category, channel or all) for reports
    taken in [since, until), busiest group first."""
    key = {"department": 4, "street": 5, "grid": 6, "category": 3, "channel": 2, "all": None}[by]
    groups: dict[Any, list[tuple]] = defaultdict(list)
    for row in MetricsRepository(session).rows(since=since, until=until):
        groups[row[key] if key is not None else "all"].append(tuple(row))
    names = _names(session, by)
    out = []
    for gkey, rows in groups.items():
        reports = len(rows)
        merged = sum(1 for r in rows if r[1] == Status.MERGED)
        cases = [r for r in rows if r[1] != Status.MERGED]
        closed = [r for r in cases if r[1] == Status.CLOSED and r[10] is not None]
        with_deadline = [r for r in closed if r[7] is not None]
        on_time = sum(1 for r in with_deadline if as_utc(r[10]) <= as_utc(r[7]))
        hours = [(as_utc(r[10]) - as_utc(r[8])).total_seconds() / 3600 for r in closed if r[8] is not None]
        rated = [r for r in cases if r[12]]
        dispatched = [r for r in cases if r[9] is not None]
        contacted = sum(1 for r in dispatched if r[11] is not None and as_utc(r[11]) - as_utc(r[9]) <= timedelta(hours=24))
        out.append({
            "key": gkey, "name": names.get(gkey, str(gkey)), "reports": reports, "volume": len(cases),
            "open": sum(1 for r in cases if r[1] not in DONE), "closed": len(closed),
            "on_time_rate": _ratio(on_time, len(with_deadline)),
            "mean_handling_hours": round(statistics.fmean(hours), 2) if hours else None,
            "median_handling_hours": round(statistics.median(hours), 2) if hours else None,
            "satisfaction_rate": _ratio(sum(1 for r in rated if r[12] in ("满意", "基本满意")), len(rated)),
            "repeat_rate": _ratio(merged, reports),
            "return_rate": _ratio(sum(1 for r in dispatched if (r[13] or 0) > 0), len(dispatched)),
            "first_contact_rate": _ratio(contacted, len(dispatched)),
        })
    out.sort(key=lambda r: -r["reports"])
    return out


def hotspots(*, session: Session, days: int = 30, limit: int = 10) -> dict[str, list[dict[str, Any]]]:
    """The grids with most reports in the last ``days``, and (grid, category) pairs seen 3+ times."""
    since = utcnow() - timedelta(days=days)
    rows = MetricsRepository(session).grid_categories(since=since)
    grids = Counter(g for g, _ in rows)
    pairs = Counter((g, c) for g, c in rows)
    gnames = {a.id: (a.code, a.name) for a in geo.list_areas(session=session, level="grid")}
    cnames = catalogue.category_names(session=session)
    return {
        "grids": [{"grid_id": g, "code": gnames.get(g, ("", ""))[0], "name": gnames.get(g, ("", ""))[1], "reports": n}
                  for g, n in grids.most_common(limit)],
        "recurring": [{"grid_id": g, "grid": gnames.get(g, ("", ""))[1], "category_code": c,
                       "category": cnames.get(c, c), "reports": n}
                      for (g, c), n in pairs.most_common(limit) if n >= 3],
    }


def count_by_status(*, session: Session) -> dict[str, int]:
    """How many incidents are in each status (for the screens)."""
    return MetricsRepository(session).count_by_status()
