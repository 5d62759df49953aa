"""The temporal representation of an entity (CIM 009 §4.5.7–4.5.19): every instance of its history,
``temporalValues`` (value–time pairs) or ``aggregatedValues`` (totalCount, distinctCount, sum, avg, min, max,
stddev, sumsq per ``aggrPeriodDuration``), all computed from the rows the repository returned."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request

from citybase.core.timeutil import as_utc
from citybase.twin.errors import BadRequestData, InvalidRequest
from citybase.twin.ldcontext import Resolver
from citybase.twin.models import TwinHistory
from citybase.twin.representation import compact_instance, iso

AGGREGATES = ("totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq")
DURATION = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
PLURAL = {"Property": "values", "GeoProperty": "values", "Relationship": "objects", "LanguageProperty": "languageMaps",
          "VocabProperty": "vocabs", "JsonProperty": "jsons", "ListProperty": "valueLists",
          "ListRelationship": "objectLists"}
SINGLE = {"Property": "value", "GeoProperty": "value", "Relationship": "object", "LanguageProperty": "languageMap",
          "VocabProperty": "vocab", "JsonProperty": "json", "ListProperty": "valueList", "ListRelationship": "objectList"}


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration (years as 365 days and months as 30: aggregation periods, not calendars)."""
    m = DURATION.match(text.strip()) if text else None
    if not m or text.strip() in ("P", "PT"):
        raise BadRequestData(f"aggrPeriodDuration must be an ISO 8601 duration such as PT1H or P1D, not {text[:30]!r}")
    y, mo, w, d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return timedelta(days=y * 365 + mo * 30 + w * 7 + d, hours=h, minutes=mi, seconds=s)


def _time(row: TwinHistory, prop: str) -> datetime | None:
    t = row.observed_at if prop == "observedAt" else row.recorded_at
    return as_utc(t) if t is not None else None


FORMATS = ("normalized", "temporalValues", "aggregatedValues", "simplified", "keyValues")
OPTIONS = frozenset({"temporalValues", "aggregatedValues", "sysAttrs", "keyValues", "simplified", "normalized",
                     "concise"})


def check_request(request: Request) -> None:
    """The temporal representation asked for is one the standard has (checked before anything is read)."""
    p = request.query_params
    opts = {o.strip() for v in p.getlist("options") for o in v.split(",") if o.strip()}
    if opts - OPTIONS:
        raise InvalidRequest(f"unknown options {', '.join(sorted(opts - OPTIONS))[:100]} for a temporal query")
    if p.get("format") is not None and p["format"] not in FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(FORMATS)}")


@dataclass
class Page:
    """What temporal pagination (CIM 009 v1.8 §6.3.10) left of a temporal answer: each entity's rows within
    the time range, the attributes the range emptied (shown with no instance, so a client sees them and asks for
    the next range), and the ``Content-Range`` header (None when nothing was cut)."""

    rows: list[list[TwinHistory]]
    emptied: list[dict[str, str]]
    content_range: str | None = None


def paginate(entities: list[list[TwinHistory]], *, prop: str, last_n: int | None, timerel: str | None,
             time_at: datetime | None, end_time_at: datetime | None, limit: int) -> Page:
    """Cut a temporal answer to at most ``limit`` instances of each attribute (and datasetId) by time.

    Without lastN the answer runs forward in time: the range starts at timeAt (timerel after or between) or at
    the earliest instance shown, and ends at the earliest last instance among the attributes that were cut, so
    that no instance of any attribute inside the range is left out. With lastN (larger than the limit) it runs
    backward: from timeAt (before), endTimeAt (between) or the latest instance, down to the latest first
    instance among the cut attributes. The header is ``date-time <start>-<end>/<lastN or *>``."""
    unchanged = Page(entities, [{} for _ in entities])
    if last_n is not None and last_n <= limit:
        return unchanged  # lastN is the limit asked for
    backward = last_n is not None
    bounds: list[datetime] = []
    for rows in entities:
        series: dict[tuple[str, str | None], list[datetime]] = {}
        for row in rows:
            if (t := _time(row, prop)) is not None:
                series.setdefault((row.attr, row.dataset_id), []).append(t)
        for times in series.values():
            if len(times) > limit:
                times.sort()
                bounds.append(times[-limit] if backward else times[limit - 1])
    if not bounds:
        return unchanged
    end = max(bounds) if backward else min(bounds)

    def inside(row: TwinHistory) -> bool:
        t = _time(row, prop)
        return t is None or (t >= end if backward else t <= end)

    kept = [[row for row in rows if inside(row)] for rows in entities]
    emptied = []
    for before, after in zip(entities, kept, strict=True):
        left = {row.attr for row in after}
        emptied.append({row.attr: row.instance.get("type", "Property") for row in before if row.attr not in left})
    times = [t for rows in kept for row in rows if (t := _time(row, prop)) is not None]
    if backward:
        start = time_at if timerel == "before" else end_time_at if timerel == "between" else max(times)
    else:
        start = time_at if timerel in ("after", "between") else min(times)
    assert start is not None
    return Page(kept, emptied, f"date-time {iso(start)}-{iso(end)}/{last_n if backward else '*'}")


def render_temporal(ident: dict[str, Any], rows: list[TwinHistory], r: Resolver, request: Request,
                    pick: set[str] | None = None, omit: set[str] | None = None,
                    emptied: dict[str, str] | None = None) -> dict[str, Any]:
    p = request.query_params
    opts = {o.strip() for v in p.getlist("options") for o in v.split(",")}
    fmt = p.get("format")
    sys_attrs = "sysAttrs" in opts
    prop = p.get("timeproperty", "observedAt")
    types = [r.compact(t) for t in ident.get("type", [])]
    out: dict[str, Any] = {"id": ident["id"], "type": types[0] if len(types) == 1 else types}
    groups: dict[str, dict[str | None, list[TwinHistory]]] = {}
    for row in rows:
        groups.setdefault(row.attr, {}).setdefault(row.dataset_id, []).append(row)
    aggregated = fmt == "aggregatedValues" or (fmt is None and "aggregatedValues" in opts)
    temporal_values = fmt == "temporalValues" or (fmt is None and "temporalValues" in opts)
    if aggregated:
        methods = [m.strip() for m in (p.get("aggrMethods") or "").split(",") if m.strip()]
        if not methods:
            raise BadRequestData(f"options=aggregatedValues needs aggrMethods (any of {', '.join(AGGREGATES)})")
        bad = [m for m in methods if m not in AGGREGATES]
        if bad:
            raise BadRequestData(f"unknown aggrMethods {', '.join(bad)}; known: {', '.join(AGGREGATES)}")
        period = parse_duration(p["aggrPeriodDuration"]) if p.get("aggrPeriodDuration") else None
        start = _param_time(p.get("timeAt"))
    for iri, by_dataset in groups.items():
        shown = []
        for dataset, group in by_dataset.items():
            if aggregated:
                item = aggregate(group, methods, period, prop, start)
            elif temporal_values:
                kind = group[0].instance.get("type", "Property")
                pairs = [[_value_of(row.instance, r), _stamp(row, prop)] for row in group]
                item = {"type": kind, PLURAL.get(kind, "values"): pairs}
            else:
                for row in group:
                    inst = compact_instance(row.instance, r, fmt="normalized", sys_attrs=sys_attrs, lang=None)
                    inst["instanceId"] = row.instance_id
                    if row.deleted:
                        inst["deletedAt"] = iso(row.recorded_at)
                    if sys_attrs:
                        inst["modifiedAt"] = iso(row.recorded_at)
                    shown.append(inst)
                continue
            if dataset is not None:
                item["datasetId"] = dataset
            shown.append(item)
        if aggregated or temporal_values:
            out[r.compact(iri)] = shown[0] if len(shown) == 1 else shown
        else:
            out[r.compact(iri)] = shown
    for iri, kind in (emptied or {}).items():  # attributes temporal pagination left without an instance
        if aggregated:
            out[r.compact(iri)] = {"type": kind, **{m: [] for m in methods}}
        elif temporal_values:
            out[r.compact(iri)] = {"type": kind, PLURAL.get(kind, "values"): []}
        else:
            out[r.compact(iri)] = []
    if pick:
        out = {k: v for k, v in out.items() if k in pick}
    if omit:
        out = {k: v for k, v in out.items() if k not in omit}
    return out


def _stamp(row: TwinHistory, prop: str) -> str | None:
    """The instance's time as it was given (observedAt), or as recorded."""
    if prop == "observedAt" and isinstance(row.instance.get("observedAt"), str):
        return row.instance["observedAt"]
    t = _time(row, prop)
    return iso(t) if t else None


def _param_time(text: str | None) -> datetime | None:
    from citybase.twin.representation import parse_time

    return parse_time(text, "timeAt") if text else None


def _value_of(inst: dict[str, Any], r: Resolver) -> Any:
    """The value of an instance in a temporalValues pair: plain for Property, Relationship and GeoProperty,
    wrapped in its member for the others ({"languageMap": …}, {"json": …}, {"vocab": …}) as CIM 009 §4.5.9 has it."""
    kind = inst.get("type", "Property")
    key = SINGLE.get(kind, "value")
    v = inst.get(key)
    if kind == "VocabProperty":
        v = [r.compact(x) for x in v] if isinstance(v, list) else r.compact(v)
    if kind in ("LanguageProperty", "JsonProperty", "VocabProperty", "ListProperty", "ListRelationship"):
        return {key: v}
    return v


def aggregate(rows: list[TwinHistory], methods: list[str], period: timedelta | None, prop: str,
              start: datetime | None) -> dict[str, Any]:
    """Aggregates per period: each method → [[result, periodStart, periodEnd], ...]."""
    timed = [(t, row) for row in rows if (t := _time(row, prop)) is not None]
    out: dict[str, Any] = {"type": rows[0].instance.get("type", "Property") if rows else "Property"}
    if not timed:
        return {**out, **{m: [] for m in methods}}
    first = start or timed[0][0]
    last = timed[-1][0]
    buckets: dict[int, list[tuple[datetime, TwinHistory]]] = {}
    if period is None or period.total_seconds() <= 0:
        buckets[0] = timed
        span = (last - first) + timedelta(microseconds=1)
    else:
        span = period
        for t, row in timed:
            buckets.setdefault(int((t - first) / period), []).append((t, row))
    for m in methods:
        series = []
        for k in sorted(buckets):
            items = buckets[k]
            lo = first + span * k
            hi = lo + span
            series.append([_apply(m, [row for _, row in items]), iso(lo), iso(hi)])
        out[m] = series
    return out


def _apply(method: str, rows: list[TwinHistory]) -> Any:
    if method == "totalCount":
        return len(rows)
    if method == "distinctCount":
        return len({json.dumps(r.instance.get("value", r.instance.get("object")), sort_keys=True) for r in rows})
    nums = [r.number for r in rows if r.number is not None]
    if not nums:
        return None
    if method == "sum":
        return sum(nums)
    if method == "avg":
        return sum(nums) / len(nums)
    if method == "min":
        return min(nums)
    if method == "max":
        return max(nums)
    if method == "sumsq":
        return sum(x * x for x in nums)
    mean = sum(nums) / len(nums)
    return math.sqrt(sum((x - mean) ** 2 for x in nums) / len(nums))  # stddev (population)
