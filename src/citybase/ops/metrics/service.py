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

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from citybase.core.timeutil import utcnow
from citybase.geo import service as geo
from citybase.ops.catalogue import service as catalogue
from citybase.ops.metrics.repository import metrics_repository
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
    taken in [since, until), busiest group first (ties: the group reported first). Grouped in the
    database; reads only."""
    repo = metrics_repository(session)
    figures = repo.figures(by=by, since=since, until=until)
    handling = repo.handling(by=by, since=since, until=until) if any(f["closed"] for f in figures) else {}
    names = _names(session, by)
    out = []
    for f in sorted(figures, key=lambda f: (-f["reports"], f["first_id"])):
        gkey = f["key"]
        mean, median = handling.get(gkey, (None, None))
        out.append({
            "key": gkey, "name": names.get(gkey, str(gkey)), "reports": f["reports"], "volume": f["volume"],
            "open": f["open"], "closed": f["closed"],
            "on_time_rate": _ratio(f["on_time"], f["with_deadline"]),
            "mean_handling_hours": round(mean, 2) if mean is not None else None,
            "median_handling_hours": round(median, 2) if median is not None else None,
            "satisfaction_rate": _ratio(f["satisfied"], f["rated"]),
            "repeat_rate": _ratio(f["merged"], f["reports"]),
            "return_rate": _ratio(f["returned"], f["dispatched"]),
            "first_contact_rate": _ratio(f["contacted"], f["dispatched"]),
        })
    return out


def hotspots(*, session: Session, days: int = 30, limit: int = 10) -> dict[str, list[dict[str, Any]]]:
    """The grids with most reports in the last ``days``, and (grid, category) pairs seen 3+ times. Reads only."""
    since = utcnow() - timedelta(days=days)
    repo = metrics_repository(session)
    gnames = {a.id: (a.code, a.name) for a in geo.list_areas(session=session, level="grid")}
    cnames = catalogue.category_names(session=session)
    return {
        "grids": [{"grid_id": g, "code": gnames.get(g, ("", ""))[0], "name": gnames.get(g, ("", ""))[1], "reports": n}
                  for g, n in repo.hotspot_grids(since=since, limit=limit)],
        "recurring": [{"grid_id": g, "grid": gnames.get(g, ("", ""))[1], "category_code": c,
                       "category": cnames.get(c, c), "reports": n}
                      for g, c, n in repo.recurring(since=since, at_least=3, limit=limit)],
    }


def count_by_status(*, session: Session) -> dict[str, int]:
    """How many incidents are in each status (for the screens)."""
    return metrics_repository(session).count_by_status()
