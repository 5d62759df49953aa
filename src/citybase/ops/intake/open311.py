"""Open311 GeoReport v2 over the incident loop, mounted at /open311/v2 (wiki.open311.org/GeoReport_v2).

A service is a category (service_code = the 5-digit category code) and a service request is an incident
(service_request_id = its code). Every method answers in XML or JSON as the spec shows; errors use the
spec's error list with the HTTP status the spec names (404 unknown resource, 403 api_key, 400 anything
else the client sent), 503 with ``Retry-After`` when the database or the bus is down for a moment, or our
problem+json when the client asks for ``application/problem+json``. POST needs an ``api_key``, which is
a citybase API token; form bodies are UTF-8 as the spec says. A POST is done once: a retry with the same
``Idempotency-Key``, or the same report resubmitted by the same account within ``RESUBMIT_WINDOW``, gets the
first answer. Beyond the spec: ``page``/``page_size`` and
``extensions=true`` (timeline notes and the detailed status), the extensions most servers implement."""

from __future__ import annotations

import codecs
import io
import json
import logging
import math
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import unquote_to_bytes
from xml.sax.saxutils import escape

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from python_multipart.multipart import parse_form
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from citybase.bus import Context
from citybase.core.errors import CitybaseError, Forbidden, InvalidInput, NotFound, Unauthenticated
from citybase.core.i18n import Msg, render, translate
from citybase.core.masking import mask_text
from citybase.core.schemas import INT32_MAX, MAX_PAGE
from citybase.core.timeutil import SHANGHAI, as_utc, utcnow
from citybase.kernel import faults, idempotency, outbox
from citybase.ops.catalogue import service as catalogue
from citybase.ops.catalogue.defaults import CATEGORIES
from citybase.ops.catalogue.models import Category
from citybase.ops.intake import service
from citybase.ops.intake.repository import Open311Repository
from citybase.ops.workflow import deadlines
from citybase.ops.workflow.models import Incident, TimelineEntry
from citybase.ops.workflow.repository import IncidentRepository
from citybase.ops.workflow.service import Actor
from citybase.ops.workflow.states import DONE, Status
from citybase.registry import service as registry
from citybase.security.deps import AnsweringRoute, allow, allow_key, request_id
from citybase.security.roles import PUBLIC, ROLES
from citybase.security.service import Principal

log = logging.getLogger("citybase.open311")

PREFIX = "/open311/v2"
SPEC = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-21T00:00:00+08:00"  # when the services or their definitions last changed shape
FORMATS = {"xml": "text/xml; charset=utf-8", "json": "application/json; charset=utf-8"}
PROBLEM = "application/problem+json"
CLOSED = DONE  # an incident in these is a closed request; merged ones follow their parent
CLOSED_ACTIONS = ("close", "reject")
MAX_DESCRIPTION = service.MAX_DESCRIPTION  # the spec's 4,000 characters
MAX_BODY = 256 * 1024  # a POST carries text only (photos go by media_url): far below this
RESUBMIT_WINDOW = timedelta(minutes=10)  # the same report again from the same account is the same request
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
MAX_DAYS = 90  # the spec's longest start_date..end_date span, and the default window
MAX_PAGE_SIZE = 1000  # the spec's default response volume
MAX_IDS = 200
PRIORITY_VALUES = (("normal", "一般"), ("urgent", "紧急"), ("low", "不急"))
KEY_FIX = ("Send api_key=<your citybase API token>; an administrator issues one "
           "(POST /api/v1/users/{id}/tokens).")
# What a status means to the public; the notes of a request's timeline (summaries in the reader's language).
STATUS_NOTES = {
    Status.RECEIVED: Msg("Received; a dispatcher will confirm the category and dispatch it"),
    Status.REGISTERED: Msg("Registered, waiting to be dispatched"),
    Status.DISPATCHED: Msg("Dispatched to the responsible department"),
    Status.HANDLING: Msg("The responsible department is handling it"),
    Status.VERIFYING: Msg("Handled, waiting for verification"),
}
NOTES: dict[str, tuple[str, Msg]] = {  # timeline action -> (note type, summary)
    "receive": ("opened", Msg("Request opened (受理)")),
    "register": ("activity", Msg("Registered, the deadline clock runs (立案)")),
    "dispatch": ("activity", Msg("Dispatched to the responsible department (派遣)")),
    "accept": ("activity", Msg("The department is handling it (处置)")),
    "return": ("activity", Msg("Returned to the dispatcher (退单)")),
    "complete_task": ("activity", Msg("A department finished its part")),
    "complete": ("activity", Msg("Handling finished, awaiting verification (核查)")),
    "verify": ("activity", Msg("Verified on site (核查通过)")),
    "verify_failed": ("activity", Msg("Not fixed on verification, sent back (核查未通过)")),
    "close": ("closed", Msg("Request closed (结案)")),
    "reject": ("closed", Msg("Request not taken up (不予立案)")),
    "merge": ("activity", Msg("Merged into an earlier request (合并)")),
    "absorb": ("activity", Msg("A duplicate report was merged into this request")),
    "suspend": ("activity", Msg("Suspended, the clock stops (挂起)")),
    "resume": ("activity", Msg("Resumed, the clock runs again")),
    "extension_requested": ("activity", Msg("More time requested (申请延期)")),
    "extension_approved": ("activity", Msg("Deadline extended (延期)")),
    "extension_refused": ("activity", Msg("Extension refused")),
    "first_contact": ("activity", Msg("The department contacted the reporter (先行联系)")),
    "rate": ("activity", Msg("Rated by the reporter")),
    "reopen": ("activity", Msg("Reopened for review (重新办理)")),
    "supervise": ("activity", Msg("Overdue, supervision raised (督办)")),
    "alarm_cleared": ("activity", Msg("The sensor's alarm cleared")),
}
_XML_ITEM = {"services": "service", "service_requests": "request", "attributes": "attribute",
             "values": "value", "endpoints": "endpoint", "formats": "format", "errors": "error",
             "notes": "note"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_XML_BAD = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ID = re.compile(r"[0-9A-Za-z_-]{1,40}")
_TOKEN = re.compile(r"[0-9a-f]{32}")
_W3C = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?")
_CJK = re.compile(r"[\u3400-\u9fff·]+")


class Open311Error(Exception):
    """An error to answer in the spec's format: HTTP status, what is wrong, and how to fix it."""

    def __init__(self, status: int, detail: str, fix: str | None = None, allow: list[str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.fix, self.allow = status, detail, fix, allow


# ---------------------------------------------------------------- errors and formats


def _classify(exc: Exception) -> tuple[int, str, str | None, str, str]:
    """(HTTP status, detail, fix, problem type, problem title) for any exception of an Open311 route."""
    down = faults.unavailable(exc)
    if down is not None:  # the server's fault, and passing: 503, never the client's 400
        log.warning("open311: 503: %s: %s", exc.__class__.__name__, str(exc).splitlines()[0] if str(exc) else "")
        return down.status, down.detail, down.fix, down.type, down.title
    if isinstance(exc, Open311Error):
        title = {403: "Forbidden", 404: "Not found", 405: "Method not allowed",
                 413: "Content too large"}.get(exc.status, "Bad request")
        return exc.status, exc.detail, exc.fix, "https://citybase.dev/problems/open311", title
    if isinstance(exc, Unauthenticated | Forbidden):
        return 403, exc.detail, exc.fix, exc.type, "Forbidden"
    if isinstance(exc, NotFound):
        return 404, exc.detail, exc.fix, exc.type, exc.title
    if isinstance(exc, CitybaseError):
        return 400, exc.detail, exc.fix, exc.type, exc.title
    if isinstance(exc, RequestValidationError):
        where = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]
        detail = "; ".join(where) or "invalid request"
        return 400, detail, "Correct those parameters.", "about:blank", "Bad request"
    if isinstance(exc, DataError):  # a value the database cannot hold (a NUL byte on PostgreSQL, …): sent by the client
        return 400, "a parameter holds a value this endpoint cannot take", "Send plain text and numbers.", \
            "about:blank", "Bad request"
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code, str(exc.detail), None, "about:blank", "HTTP error"
    log.exception("open311: unexpected error")
    return (500, "General service error: the server failed while handling this request",
            "This is a bug in citybase, not in your request; report it with the time and path.",
            "about:blank", "General service error")


def _format_of(request: Request) -> str:
    fmt = str(request.path_params.get("format", "")).lower()
    if not fmt:  # a path no route knows: the extension it ends with, as a route would read it
        fmt = request.url.path.rsplit(".", 1)[-1].lower() if "." in request.url.path.rsplit("/", 1)[-1] else ""
    return fmt if fmt in FORMATS else "json"


def error_response(request: Request, exc: Exception) -> Response:
    """The spec's error list (XML or JSON after the URL's format), or problem+json when it is asked for."""
    status, detail, fix, type_, title = _classify(exc)
    detail, fix, title = render(detail), render(fix), translate(title)  # in the request's language
    headers = {"Retry-After": str(faults.RETRY_AFTER)} if status == 503 else {}
    if status == 405 and isinstance(exc, Open311Error) and exc.allow:
        headers["Allow"] = ", ".join(exc.allow)
    if PROBLEM in request.headers.get("accept", ""):
        body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
        if fix:
            body["fix"] = fix
        body["instance"] = request.url.path
        return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)
    description = f"{detail.rstrip('.')}. {fix}" if fix else detail
    errors = [{"code": status, "description": description}]
    response = _respond(_format_of(request), "errors", errors, status=status)
    response.headers.update(headers)
    return response


class Open311Route(AnsweringRoute):
    """A route whose every failure, dependencies included, is answered in the Open311 error format."""

    def answer(self, request: Request, exc: Exception) -> Response:
        return error_response(request, exc)


def _format(fmt: str) -> str:
    f = fmt.lower()
    if f not in FORMATS:
        raise Open311Error(404, Msg('there is no format {fmt!r} here', fmt=fmt[:20]),
                           Msg('Append .xml or .json to the resource, e.g. {PREFIX}/services.xml.', PREFIX=PREFIX))
    return f


def _xml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(_XML_BAD.sub("", str(value)))


def _emit(out: list[str], tag: str, value: Any) -> None:
    if value is None:
        out.append(f"<{tag}/>")
    elif isinstance(value, dict):
        out.append(f"<{tag}>")
        for k, v in value.items():
            _emit(out, k, v)
        out.append(f"</{tag}>")
    elif isinstance(value, list | tuple):
        out.append(f"<{tag}>")
        for item in value:
            _emit(out, _XML_ITEM.get(tag, "item"), item)
        out.append(f"</{tag}>")
    else:
        out.append(f"<{tag}>{_xml_text(value)}</{tag}>")


def to_xml(root: str, value: Any) -> str:
    """The spec's schemaless XML: lists become repeated children (services → service, …)."""
    out = ['<?xml version="1.0" encoding="utf-8"?>\n']
    _emit(out, root, value)
    return "".join(out)


def _respond(fmt: str, root: str, data: Any, status: int = 200) -> Response:
    if fmt == "xml":
        body = to_xml(root, data)
    else:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return Response(body.encode("utf-8"), status_code=status, media_type=FORMATS[fmt])


@contextmanager
def _session(request: Request) -> Iterator[Session]:
    """A session for one call; whatever is not committed explicitly is rolled back on close."""
    session = request.app.state.sessions()
    try:
        yield session
    finally:
        session.close()


# ---------------------------------------------------------------- values


def _w3c(value: datetime | None) -> str | None:
    return as_utc(value).astimezone(SHANGHAI).isoformat(timespec="seconds") if value else None


def public_text(text: str | None) -> str | None:
    """Free text for the public feed, masked as for every reader without personal data (core.masking)."""
    return mask_text(text)


def _keywords(c: Category) -> str:
    seed = next((s for s in CATEGORIES if s.code == c.code), None)
    words = [c.name, *(seed.keywords if seed else ()), c.major_name]
    return ", ".join(dict.fromkeys(words))


def _limits(c: Category) -> str:
    return f"紧急 {c.urgent_hours} 小时、一般 {c.normal_days} 个工作日、不急 {c.low_days} 个工作日内办结"


def service_of(c: Category) -> dict[str, Any]:
    """A category as a GeoReport service."""
    kind = "部件" if c.kind == "component" else "事件"
    return {"service_code": c.code, "service_name": c.name,
            "description": f"{c.major_name} · {c.name}（{kind}）。{_limits(c)}。", "metadata": True,
            "type": "realtime", "keywords": _keywords(c), "group": c.major_name}


def definition_of(c: Category) -> dict[str, Any]:
    """The service definition: the attributes a request of this category takes."""
    priority = {"variable": True, "code": "priority", "datatype": "singlevaluelist", "required": False,
                "datatype_description": None, "order": 1,
                "description": "紧急程度 (priority): 一般 normal, 紧急 urgent, 不急 low; 不填为一般",
                "values": [{"key": k, "name": n} for k, n in PRIORITY_VALUES]}
    detail = {"variable": True, "code": "location_detail", "datatype": "string", "required": False,
              "datatype_description": "一行文字，至多 100 字", "order": 2,
              "description": "位置补充说明 (location detail), e.g. 3号楼东侧门口、路口西北角"}
    limits = {"variable": False, "code": "time_limits", "datatype": "text", "required": False,
              "datatype_description": None, "order": 3,
              "description": f"处置时限 (time limits): {_limits(c)}"}
    return {"service_code": c.code, "attributes": [priority, detail, limits]}


def _categories(session: Session) -> dict[str, Category]:
    return {c.code: c for c in catalogue.list_categories(session=session, include_inactive=True)}


def _category(session: Session, code: str, fmt: str) -> Category:
    c = catalogue.find_category(session=session, code=code) if re.fullmatch(r"\d{5}", code) else None
    if c is None or not c.active:
        raise Open311Error(404, Msg('service_code {code!r} was not found', code=code[:20]),
                           Msg('List the services with GET {PREFIX}/services.{fmt}; codes have 5 digits.', PREFIX=PREFIX, fmt=fmt))
    return c


class _Departments:
    def __init__(self, session: Session) -> None:
        self.session, self.names = session, {}

    def name(self, department_id: int | None) -> str | None:
        if department_id is None:
            return None
        if department_id not in self.names:
            try:
                dept = registry.get_department_by_id(session=self.session, department_id=department_id)
                self.names[department_id] = dept.name
            except NotFound:
                self.names[department_id] = None
        return self.names[department_id]


def _roots(session: Session, incidents: Iterable[Incident]) -> dict[int, Incident]:
    """Each incident's root: itself, or the one it was merged into followed to the end; by incident id."""
    known = {i.id: i for i in incidents}
    for _ in range(10):
        missing = {i.parent_id for i in known.values() if i.parent_id and i.parent_id not in known}
        if not missing:
            break
        known.update({i.id: i for i in IncidentRepository(session).incidents(missing)})
    roots: dict[int, Incident] = {}
    for inc in list(known.values()):
        root, hops = inc, 0
        while root.parent_id and root.parent_id in known and hops < 10:
            root, hops = known[root.parent_id], hops + 1
        roots[inc.id] = root
    return roots


def _timelines(session: Session, ids: Iterable[int], actions: tuple[str, ...] | None = None,
               ) -> dict[int, list[TimelineEntry]]:
    ids = sorted(set(ids))
    out: dict[int, list[TimelineEntry]] = {i: [] for i in ids}
    for e in Open311Repository(session).timelines(ids, actions):
        out[e.incident_id].append(e)
    return out


def _data(e: TimelineEntry) -> dict[str, Any]:
    try:
        d = json.loads(e.data or "{}")
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def _note(e: TimelineEntry, depts: _Departments) -> dict[str, Any]:
    type_, summary = NOTES.get(e.action, ("activity", e.action))
    summary = render(summary)
    d = _data(e)
    description = e.reason
    if e.action == "dispatch":
        description = depts.name(d.get("main_department_id"))
    elif e.action == "merge":
        description = render(Msg("merged into {code}", code=d.get("into")))
    elif e.action == "absorb":
        description = render(Msg("{code} merged in", code=d.get("merged")))
    elif e.action == "register" and d.get("deadline_at"):
        try:
            description = render(Msg("deadline {at}", at=_w3c(datetime.fromisoformat(d["deadline_at"]))))
        except (TypeError, ValueError):
            description = None
    elif e.action in ("complete", "complete_task"):
        description = d.get("result") or e.reason
    elif e.action == "rate":
        description = " ".join(x for x in (d.get("rating"), e.reason) if x) or None
    return {"datetime": _w3c(e.at), "summary": summary, "type": type_,
            "description": public_text(description)}


def _notice(inc: Incident, root: Incident, depts: _Departments) -> str | None:
    if root.id != inc.id:
        return render(Msg("A similar report nearby is already open; this one joins {code} and you will be told "
                          "when it is done.", code=root.code))
    if root.status in CLOSED:
        return None
    dept = depts.name(root.main_department_id)
    if root.status == Status.RECEIVED:
        if dept:
            return render(Msg("Received; a dispatcher will confirm the category and dispatch it (to {dept}, as "
                              "proposed).", dept=dept))
        return render(Msg("Received; a dispatcher will confirm the category and dispatch it."))
    if root.deadline_at is not None:
        due = as_utc(root.deadline_at).astimezone(SHANGHAI)
        return render(Msg("Handled by {dept}, due by {due:%Y-%m-%d %H:%M}.", dept=dept or Msg("the responsible department"),
                          due=due))
    return render(Msg("Handled by {dept}.", dept=dept)) if dept else None


def _status_notes(inc: Incident, root: Incident, closing: dict[int, list[TimelineEntry]]) -> str | None:
    merged = render(Msg("merged into {code}", code=root.code)) if root.id != inc.id else None
    if root.status in CLOSED:
        last = closing.get(root.id) or []
        reason = public_text(last[-1].reason) if last else None
        done = Msg("Closed") if root.status == Status.CLOSED else Msg("Not taken up")
        text = render(Msg("{outcome}: {reason}", outcome=done, reason=reason)) if reason else render(done)
    elif root.suspended_at is not None:
        text = render(Msg("Suspended, the clock stops"))
    else:
        text = render(STATUS_NOTES[root.status]) if root.status in STATUS_NOTES else None
    return "; ".join(x for x in (merged, text) if x) or None


def _media(request: Request, url: str | None) -> str | None:
    if url and url.startswith("/"):
        return str(request.base_url).rstrip("/") + url
    return url


def render_requests(request: Request, session: Session, incidents: list[Incident], *, extensions: bool,
                    ) -> list[dict[str, Any]]:
    """Incidents as GeoReport service requests (with notes and detailed status when ``extensions``)."""
    if not incidents:
        return []
    cats = _categories(session)
    roots = _roots(session, incidents)
    depts = _Departments(session)
    closing = _timelines(session, {r.id for r in roots.values() if r.status in CLOSED}, CLOSED_ACTIONS)
    timelines = {}
    if extensions:
        timelines = _timelines(session, {x.id for i in incidents for x in (i, roots[i.id])})
    out = []
    for inc in incidents:
        root = roots[inc.id]
        cat = cats.get(inc.category_code)
        r: dict[str, Any] = {
            "service_request_id": inc.code,
            "status": "closed" if root.status in CLOSED else "open",
            "status_notes": _status_notes(inc, root, closing),
            "service_name": cat.name if cat else None,
            "service_code": inc.category_code,
            "description": public_text(inc.description),
            "agency_responsible": depts.name(root.main_department_id),
            "service_notice": _notice(inc, root, depts),
            "requested_datetime": _w3c(inc.created_at),
            "updated_datetime": _w3c(max(as_utc(inc.updated_at), as_utc(root.updated_at))),
            "expected_datetime": _w3c(root.deadline_at),
            "address": public_text(inc.address_text),
            "address_id": inc.building_id,
            "zipcode": None,
            "lat": inc.lat,
            "long": inc.lon,
            "media_url": _media(request, inc.media_url),
        }
        if extensions:
            light = deadlines.light(utcnow(), warn_at=root.warn_at, deadline_at=root.deadline_at,
                                    closed=root.status in CLOSED, suspended_at=root.suspended_at)
            r["extended_attributes"] = {
                "detailed_status": root.status, "merged_into": root.code if root.id != inc.id else None,
                "channel": inc.channel, "priority": root.priority, "suspended": root.suspended_at is not None,
                "deadline_light": light, "repeat_count": root.repeat_count or 0}
            entries = list(timelines.get(inc.id, []))
            if root.id != inc.id:  # after the merge, the request it joined tells the story
                merged_at = max((as_utc(e.at) for e in entries if e.action == "merge"), default=None)
                entries += [e for e in timelines.get(root.id, [])
                            if merged_at and as_utc(e.at) >= merged_at and e.action != "absorb"]
            r["notes"] = [_note(e, depts) for e in entries]
        out.append(r)
    return out


# ---------------------------------------------------------------- request parameters


class _Fields:
    """Form and query fields; an empty value counts as absent (the spec's Optional Arguments)."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self.items = items

    def get(self, name: str) -> str | None:
        values = [v.strip() for k, v in self.items if k == name and v.strip()]
        return values[-1] if values else None

    def all(self, name: str) -> list[str]:
        """Every value of a repeatable, comma-delimited parameter."""
        return [p.strip() for k, v in self.items if k == name for p in v.split(",") if p.strip()]


def _text(f: _Fields, name: str, limit: int | None, *, lines: bool = False) -> str | None:
    v = f.get(name)
    if v is None:
        return None
    if _CONTROL.search(v) or (not lines and ("\n" in v or "\r" in v)):
        raise Open311Error(400, f"{name} contains control characters" + ("" if lines else " or line breaks"),
                           "Send plain UTF-8 text" + ("." if lines else " on one line."))
    if limit is not None and len(v) > limit:
        raise Open311Error(400, Msg('{name} is {value:,} characters long; this endpoint takes at most {limit:,}', name=name, value=len(v), limit=limit), Msg('Shorten it.'))
    return v


def _coordinate(f: _Fields, name: str, bound: float) -> float | None:
    raw = f.get(name)
    if raw is None:
        return None
    try:
        v = float(raw)
    except ValueError:
        raise Open311Error(400, Msg('{name} {raw!r} is not a number', name=name, raw=raw[:30]),
                           Msg('Send WGS-84 decimal degrees, e.g. lat=31.1667&long=121.4375.')) from None
    if not math.isfinite(v) or not -bound <= v <= bound:
        raise Open311Error(400, Msg('{name} {raw} is outside -{bound:g}…{bound:g}', name=name, raw=raw[:30], bound=bound),
                           Msg('Send WGS-84 decimal degrees, and check that lat and long are not swapped.'))
    return v


def _check_values(a: dict[str, Any], values: list[str]) -> None:
    name, datatype = a["code"], a["datatype"]
    if datatype != "multivaluelist" and len(values) > 1:
        raise Open311Error(400, Msg('attribute[{name}] was sent {value} times', name=name, value=len(values)), Msg('Send it once.'))
    if datatype in ("singlevaluelist", "multivaluelist"):
        keys = {str(v["key"]) for v in a["values"]}
        bad = [v for v in values if v not in keys]
        if bad:
            choices = ", ".join(f"{v['key']} ({v['name']})" for v in a["values"])
            raise Open311Error(400, Msg('attribute[{name}]={value!r} is not one of its values', name=name, value=bad[0][:30]),
                               Msg('Send a key: {choices}.', choices=choices))
    for v in values:
        if _CONTROL.search(v) or (datatype != "text" and ("\n" in v or "\r" in v)) or len(v) > 100:
            raise Open311Error(400, Msg('attribute[{name}] must be one line of text of at most 100 characters', name=name),
                               Msg('Shorten it, without control characters or line breaks.'))


def _attributes(f: _Fields, definition: dict[str, Any], fmt: str) -> dict[str, Any]:
    """attribute[code]=value (attribute[code][]=… for multivaluelist), checked against the definition."""
    given: dict[str, list[str]] = {}
    for key, value in f.items:
        m = re.fullmatch(r"attribute\[([^\[\]]*)\](\[\])?", key)
        if m:
            given.setdefault(m.group(1), []).extend([value.strip()] if value.strip() else [])
        elif key.startswith("attribute"):
            raise Open311Error(400, Msg('form field {key!r} is not of the form attribute[code]=value', key=key[:40]),
                               Msg('Send e.g. attribute[priority]=urgent (attribute[code][]=… for lists).'))
    attrs = {a["code"]: a for a in definition["attributes"] if a["variable"]}
    code = definition["service_code"]
    see = Msg("See GET {PREFIX}/services/{code}.{fmt}.", PREFIX=PREFIX, code=code, fmt=fmt)
    unknown = sorted(set(given) - set(attrs))
    if unknown:
        raise Open311Error(400, Msg('service {code} has no attribute {items}', code=code, items=', '.join(repr(u[:30]) for u in unknown)),
                           Msg('Its attributes are {items}. {see}', items=', '.join(attrs), see=see))
    out: dict[str, Any] = {}
    for a in sorted(attrs.values(), key=lambda a: a["order"]):
        values = given.get(a["code"], [])
        if not values:
            if a["required"]:
                raise Open311Error(400, Msg('attribute[{a}] is required for service {code}', a=a['code'], code=code),
                                   Msg('{a}. {see}', a=a['description'], see=see))
            continue
        _check_values(a, values)
        out[a["code"]] = values if a["datatype"] == "multivaluelist" else values[0]
    return out


def _reporter_name(first: str | None, last: str | None) -> str | None:
    if first and last and _CJK.fullmatch(first) and _CJK.fullmatch(last):
        name = last + first  # 张 + 三 → 张三
    else:
        name = " ".join(x for x in (first, last) if x)
    if len(name) > 32:
        raise Open311Error(400, Msg('first_name and last_name together are {value} characters; at most 32 fit', value=len(name)), Msg('Shorten the name.'))
    return name or None


def _parse_date(name: str, raw: str) -> datetime:
    s = raw.strip()
    if "T" in s and " " in s:
        s = s.replace(" ", "+")  # a '+' sent unencoded in a query string arrives as a space
    if not _W3C.fullmatch(s):
        raise Open311Error(400, Msg('{name} {raw!r} is not a W3C datetime', name=name, raw=raw[:40]),
                           Msg('Use e.g. 2026-01-01T00:00:00+08:00 or 2026-01-01T00:00:00Z (+ is %2B in a URL).'))
    try:
        value = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, Msg('{name} {raw!r} is not a valid date or time', name=name, raw=raw[:40]),
                           Msg('Check the month, day and hour, e.g. 2026-01-31T23:59:59+08:00.')) from None
    if len(s) == 10:  # a whole day: from its start, or up to its end for end_date
        value = datetime.combine(value.date(), time(0, 0))
        if name == "end_date":
            value += timedelta(days=1, microseconds=-1)
    if value.tzinfo is None:
        value = value.replace(tzinfo=SHANGHAI)  # no offset given: the district's local time
    return as_utc(value)


def _int(name: str, raw: str | None, lo: int, hi: int) -> int | None:
    if raw is None:
        return None
    if not re.fullmatch(r"\d{1,10}", raw) or not lo <= int(raw) <= hi:
        raise Open311Error(400, Msg('{name} {raw!r} is not a whole number from {lo} to {hi:,}', name=name, raw=raw[:20], lo=lo, hi=hi),
                           Msg('Send {name} as a plain number.', name=name))
    return int(raw)


def _flag(name: str, raw: str | None) -> bool:
    if raw is None:
        return False
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise Open311Error(400, Msg('{name} {raw!r} is not true or false', name=name, raw=raw[:20]), Msg('Send {name}=true or leave it out.', name=name))


# ---------------------------------------------------------------- routes

router = APIRouter(prefix=PREFIX, tags=["Open311 GeoReport v2"], route_class=Open311Route)


@router.get("/discovery.{format}", summary="Open311 service discovery", response_model=None)
def discovery(format: str, request: Request, _: Principal = Depends(allow(PUBLIC))) -> Response:
    """The service discovery document: where the GeoReport v2 endpoint is and what it speaks."""
    fmt = _format(format)
    base = str(request.base_url).rstrip("/") + PREFIX
    return _respond(fmt, "discovery", {
        "changeset": CHANGESET,
        "contact": "城运中心 (the city operations centre) runs this endpoint; "
                   "report problems with the time and URL.",
        "key_service": "The api_key is a citybase API token: an administrator issues one to your account "
                       "(POST /api/v1/users/{id}/tokens).",
        "endpoints": [{"specification": SPEC, "url": base, "changeset": CHANGESET, "type": "production",
                       "formats": ["text/xml", "application/json"]}]})


@router.get("/services.{format}", summary="GeoReport v2: the service list (categories)", response_model=None)
def services(format: str, request: Request, _: Principal = Depends(allow(PUBLIC))) -> Response:
    """Every active category as a service."""
    fmt = _format(format)
    with _session(request) as session:
        return _respond(fmt, "services", [service_of(c) for c in catalogue.list_categories(session=session)])


@router.get("/services/{service_code}.{format}", summary="GeoReport v2: a service definition",
            response_model=None)
def service_definition(service_code: str, format: str, request: Request,
                       _: Principal = Depends(allow(PUBLIC))) -> Response:
    """The attributes a request of one service takes."""
    fmt = _format(format)
    with _session(request) as session:
        return _respond(fmt, "service_definition", definition_of(_category(session, service_code, fmt)))


def _charset(content_type: str) -> str:
    """The body's charset: UTF-8 unless the Content-Type names another that Python knows."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            raw = value.strip().strip('"')
            try:
                return codecs.lookup(raw).name
            except LookupError:
                raise Open311Error(400, Msg('the charset {raw!r} of the body is not known', raw=raw[:30]),
                                   Msg('Send the form in UTF-8, as GeoReport v2 says.')) from None
    return "utf-8"  # GeoReport v2: "all data is assumed to be UTF-8"


def _decode(raw: bytes, charset: str, what: str) -> str:
    try:
        return raw.decode(charset)
    except UnicodeDecodeError as exc:
        raise Open311Error(400, Msg('{what} is not valid {value} (byte {value2})', what=what, value=charset.upper(), value2=exc.start + 1),
                           Msg('Send the form as UTF-8 text; percent-encode each byte of a character, e.g. 描 as %E6%8F%8F.')) from None


def form_fields(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The fields of an urlencoded or multipart form, decoded strictly (UTF-8 unless a charset says else);
    Open311Error 400 for a file, a malformed body or bytes that are not text in that charset."""
    ctype = content_type.split(";")[0].strip().lower()
    charset = _charset(content_type)
    if ctype == "application/x-www-form-urlencoded":
        out = []
        for pair in body.split(b"&"):
            if not pair:
                continue
            name, _, value = pair.partition(b"=")
            key = _decode(unquote_to_bytes(name.replace(b"+", b" ")), charset, "a field name")
            out.append((key, _decode(unquote_to_bytes(value.replace(b"+", b" ")), charset, f"field {key[:40]!r}")))
        return out
    fields: list[tuple[bytes, bytes]] = []
    files: list[bytes] = []
    try:
        parse_form({"Content-Type": content_type.encode("latin-1")}, io.BytesIO(body),
                   lambda f: fields.append((f.field_name or b"", f.value or b"")),
                   lambda f: files.append(f.field_name or b""))
    except (ValueError, UnicodeEncodeError) as exc:  # python-multipart's errors are ValueErrors
        raise Open311Error(400, Msg('the form body could not be read ({value})', value=str(exc)[:100]),
                           Msg('Send a well-formed urlencoded or multipart form.')) from None
    if files:
        name = _decode(files[0], charset, "a field name")
        raise Open311Error(400, Msg('form field {name!r} is a file; files are not accepted', name=name[:40]),
                           Msg('Put the photo at a public URL and send that URL as media_url.'))
    out = []
    for raw_name, raw_value in fields:
        key = _decode(raw_name, charset, "a field name")
        out.append((key, _decode(raw_value, charset, f"field {key[:40]!r}")))
    return out


async def read_params(request: Request) -> list[tuple[str, str]]:
    """The query and form fields of a POST (urlencoded or multipart, UTF-8, at most ``MAX_BODY``), read once;
    Open311Error for an unknown format, a body too large, not a form, or not text in its charset."""
    _format(str(request.path_params.get("format", "")))  # an unknown format is 404 before the body is read
    content_type = request.headers.get("content-type", "")
    ctype = content_type.split(";")[0].strip().lower()
    items = list(request.query_params.multi_items())
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise Open311Error(413, Msg('the body is larger than {value} KiB', value=MAX_BODY // 1024),
                               Msg('Send text fields only; put photos at a public URL and send it as media_url.'))
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        items += form_fields(content_type, body)
    elif ctype or body:
        raise Open311Error(400, Msg('the body is {value}, not a form', value=ctype or 'of no declared type'),
                           Msg('POST the fields as application/x-www-form-urlencoded (or multipart/form-data), as GeoReport v2 says.'))
    return items


def _key_refused(exc: Unauthenticated | None) -> Open311Error:
    """The spec's 403 for a missing api_key, or one that was not accepted (and why)."""
    if exc is None:
        return Open311Error(403, Msg('api_key is missing'), KEY_FIX)
    why = exc.detail  # a Msg: rendered in the reader's language inside this one
    return Open311Error(403, Msg('api_key was not accepted: {why}', why=why), KEY_FIX)


# Who may report: anyone with an account (a citybase token as api_key), whatever their role.
API_KEY = allow_key(*ROLES, name="api_key", params=read_params, refused=_key_refused)


@router.post("/requests.{format}", summary="GeoReport v2: report a problem (api_key required)",
             response_model=None)
async def create_request(format: str, request: Request, p: Principal = Depends(API_KEY)) -> Response:
    """Create a service request from a form (urlencoded or multipart, UTF-8); it enters the incident loop once
    per Idempotency-Key, and a resubmission of the same report within ``RESUBMIT_WINDOW`` answers the first."""
    return await run_in_threadpool(_create, request, _format(format), _Fields(request.state.params), p)


def _locate(session: Session, f: _Fields) -> tuple[service.Place, str | None]:
    """The request's place (address_id, else lat/long, else address_string: located once) and its address
    text as sent (or the building's), checked."""
    lat, lon = _coordinate(f, "lat", 90), _coordinate(f, "long", 180)
    if (lat is None) != (lon is None):
        raise Open311Error(400, Msg('{value} is missing: lat and long go together', value='long' if lon is None else 'lat'),
                           Msg('Send both lat and long, or an address_string or address_id instead.'))
    address = _text(f, "address_string", 200)
    building_id = _int("address_id", f.get("address_id"), 1, INT32_MAX)
    if building_id is None and lat is None and address is None:
        raise Open311Error(400, Msg('the request has no location'),
                           Msg('Send lat and long (WGS-84), an address_string, or an address_id.'))
    try:  # the building wins (the request takes its point and address), then the point, then the address
        place = service.locate_report(session=session, lon=lon, lat=lat, address=address, building_id=building_id)
    except (NotFound, InvalidInput):
        if building_id is not None:
            raise Open311Error(400, Msg('address_id {building_id} is not a building of this city', building_id=building_id),
                               Msg('Send lat and long or an address_string instead.')) from None
        if lat is not None:
            raise Open311Error(400, Msg('the point lat={lat}, long={lon} is outside the district served here', lat=lat, lon=lon),
                               Msg('Send a WGS-84 point inside the district (not GCJ-02 or BD-09), or an address_string.')) from None
        raise Open311Error(400, Msg('address_string {address!r} matches no building of the city', address=address[:60]),
                           Msg('Write the road and number, e.g. 漕溪北路101弄3号, or send lat and long.')) from None
    if place.building is not None and building_id is not None:
        address = address or place.building.address
    return place, address


def _command_error(exc: InvalidInput, f: _Fields) -> Open311Error:
    """The intake command's refusal of a field, in the terms of the request's parameters."""
    where = exc.extra.get("field")
    if where == "description":
        n = len(f.get("description") or "")
        return Open311Error(400, Msg('description is {n:,} characters long; this endpoint takes at most {MAX_DESCRIPTION:,}', n=n, MAX_DESCRIPTION=MAX_DESCRIPTION), Msg('Shorten it.'))
    if where == "reporter_phone":
        return Open311Error(400, Msg('phone {value!r} is not a mainland mobile or landline number', value=f.get('phone')),
                            Msg('Send 11 digits starting 13–19, or an area code and number such as 021-64871234; or leave phone out.'))
    return Open311Error(400, render(exc.detail) or "", render(exc.fix))


def _create(request: Request, fmt: str, f: _Fields, p: Principal) -> Response:
    key = idempotency.check_key(request.headers.get(idempotency.HEADER))
    with _session(request) as session:
        who = f"user:{p.user_id}" if p.user_id else p.actor
        if key:  # the client's own key: everything it sent (but the api_key) is the request
            fp = idempotency.fingerprint("POST", request.url.path, sorted(i for i in f.items if i[0] != "api_key"))
            if first := idempotency.lookup(session=session, principal=who, key=key, fingerprint=fp):
                return _replay(first)
        code = f.get("service_code")
        if code is None:
            raise Open311Error(400, Msg('service_code is missing'), Msg('Pick one from GET {PREFIX}/services.{fmt}.', PREFIX=PREFIX, fmt=fmt))
        cat = _category(session, code, fmt)
        attrs = _attributes(f, definition_of(cat), fmt)
        place, address = _locate(session, f)
        # its length is the intake command's check (MAX_DESCRIPTION), made once below
        description = _text(f, "description", None, lines=True) or f"{cat.name}（Open311 上报）"
        detail = attrs.get("location_detail")
        address_text = (f"{address}（{detail}）" if address else detail) if detail else address
        if address_text and len(address_text) > 200:
            raise Open311Error(400, Msg('address_string and attribute[location_detail] exceed 200 characters'),
                               Msg('Shorten them.'))
        name = _reporter_name(_text(f, "first_name", 32), _text(f, "last_name", 32))
        phone = _text(f, "phone", 20)
        media_url = _text(f, "media_url", 500)
        if media_url and not re.match(r"https?://[^\s/]+", media_url):
            raise Open311Error(400, Msg('media_url {media_url!r} is not an http(s) URL', media_url=media_url[:60]),
                               Msg('Send the public URL of the photo, e.g. https://example.org/photo.jpg.'))
        for other in ("email", "device_id", "account_id", "jurisdiction_id"):
            _text(f, other, 254)  # accepted and checked, not stored
        building_id = place.building.id if place.building is not None else None
        try:  # the report as every channel's: its checks are made here, once
            command = service.IntakeCommand(
                channel="open311", description=description, category_code=cat.code, lon=place.lon, lat=place.lat,
                address=address, building_id=building_id, address_text=address_text,
                priority=attrs.get("priority"), reporter_name=name, reporter_phone=phone, reporter_user_id=p.user_id,
                media_url=media_url)
        except InvalidInput as exc:
            raise _command_error(exc, f) from None
        ttl = idempotency.TTL
        if not key:  # no key: the same report from the same account, soon again, is a resubmission
            ttl = RESUBMIT_WINDOW
            fp = idempotency.fingerprint("POST", request.url.path, cat.code, command.description, place.lon,
                                         place.lat, address, building_id)
            key = f"open311-resubmission:{fp}"
            if first := idempotency.lookup(session=session, principal=who, key=key, fingerprint=fp, ttl=ttl):
                return _replay(first)
        outbox.bind_context(session, Context(id=request_id(request), user_id=str(p.user_id) if p.user_id else None))
        actor = Actor(name=p.actor, user_id=p.user_id, roles=p.roles, department_id=p.department_id)
        try:
            r = service.submit(session=session, command=command, place=place, actor=actor,
                               classifier=getattr(request.app.state, "classifier", None))
        except NotFound as exc:  # whatever the intake could not find came from this request
            raise Open311Error(400, exc.detail, exc.fix) from None
        inc = r.incident
        # The spec: token "should not be returned if service_request_id is returned"; ours is known at once.
        created = {"service_request_id": inc.code,
                   "service_notice": _notice(inc, _roots(session, [inc])[inc.id], _Departments(session)),
                   "account_id": None}
        response = _respond(fmt, "service_requests", [created])
        answer = idempotency.Answer(200, FORMATS[fmt], bytes(response.body))
        if first := idempotency.record(session=session, principal=who, key=key, fingerprint=fp, answer=answer,
                                       ttl=ttl):
            return _replay(first)  # the same request, answered first by a concurrent retry: ours is undone
        session.commit()  # the events are in the outbox: the relay publishes them, the client never waits on the bus
    return response


def _replay(answer: idempotency.Answer) -> Response:
    return Response(answer.body, status_code=answer.status_code, media_type=answer.media_type,
                    headers={"Idempotent-Replayed": "true"})


@router.get("/tokens/{token}.{format}", summary="GeoReport v2: the service_request_id of a token",
            response_model=None)
def token_lookup(token: str, format: str, request: Request,
                 _: Principal = Depends(allow(PUBLIC))) -> Response:
    """The request created with a token that POST returned."""
    fmt = _format(format)
    with _session(request) as session:
        inc = None
        if _TOKEN.fullmatch(token):
            inc = Open311Repository(session).by_token(token)
        if inc is None:
            raise Open311Error(404, Msg('no service request was created with token {token!r}', token=token[:40]),
                               Msg('Use the token that POST {PREFIX}/requests.{fmt} returned.', PREFIX=PREFIX, fmt=fmt))
        return _respond(fmt, "service_requests", [{"service_request_id": inc.code, "token": token}])


def _filtered(session: Session, f: _Fields, fmt: str) -> dict[str, Any]:
    """The checked filters service_code, status and start_date..end_date (the last 90 days by default)."""
    codes = f.all("service_code")
    cats = _categories(session)
    unknown = [c for c in codes if c not in cats]
    if unknown:
        raise Open311Error(400, Msg('service_code {value!r} is not a service of this endpoint', value=unknown[0][:20]),
                           Msg('List the services with GET {PREFIX}/services.{fmt}.', PREFIX=PREFIX, fmt=fmt))
    statuses = {s.lower() for s in f.all("status")}
    if statuses - {"open", "closed"}:
        bad = sorted(statuses - {"open", "closed"})[0]
        raise Open311Error(400, Msg('status {bad!r} is neither open nor closed', bad=bad[:20]),
                           Msg('Send status=open, closed or both.'))
    start_raw, end_raw = f.get("start_date"), f.get("end_date")
    start = _parse_date("start_date", start_raw) if start_raw else None
    end = _parse_date("end_date", end_raw) if end_raw else None
    span = timedelta(days=MAX_DAYS)
    if end is None:
        end = start + span if start else utcnow()
    if start is None:
        start = end - span
    if start > end:
        raise Open311Error(400, Msg('start_date {start_raw} is after end_date {end_raw}', start_raw=start_raw, end_raw=end_raw), Msg('Swap them.'))
    if end - start > span:
        raise Open311Error(400, Msg('start_date to end_date spans {days} days; GeoReport v2 allows at most {MAX_DAYS}', days=(end - start).days, MAX_DAYS=MAX_DAYS), Msg('Split the range into several queries.'))
    closed = (statuses == {"closed"}) if len(statuses) == 1 else None
    return {"start": start, "end": end, "codes": codes, "closed": closed}


@router.get("/requests.{format}", summary="GeoReport v2: service requests (filters, pages, extensions)",
            response_model=None)
def list_requests(format: str, request: Request, _: Principal = Depends(allow(PUBLIC))) -> Response:
    """Requests by id list, or by service, status and date range (last 90 days by default), newest first."""
    fmt = _format(format)
    f = _Fields(list(request.query_params.multi_items()))
    extensions = _flag("extensions", f.get("extensions"))
    ids = f.all("service_request_id")
    with _session(request) as session:
        if ids:  # the spec: service_request_id overrides every other argument
            if len(ids) > MAX_IDS:
                raise Open311Error(400, Msg('{value} service_request_id were asked for; at most {MAX_IDS} at once', value=len(ids), MAX_IDS=MAX_IDS), Msg('Split the list into several calls.'))
            wanted = [i for i in dict.fromkeys(ids) if _ID.fullmatch(i)]
            found = Open311Repository(session).by_codes(wanted)
            rows = [found[i] for i in wanted if i in found]
        else:
            filters = _filtered(session, f, fmt)
            page = _int("page", f.get("page"), 1, MAX_PAGE) or 1
            size = _int("page_size", f.get("page_size"), 1, MAX_PAGE_SIZE) or MAX_PAGE_SIZE
            rows = Open311Repository(session).requests(**filters, page=page, size=size)
        body = render_requests(request, session, rows, extensions=extensions)
        return _respond(fmt, "service_requests", body)


@router.get("/requests/{service_request_id}.{format}", summary="GeoReport v2: one service request",
            response_model=None)
def get_request(service_request_id: str, format: str, request: Request,
                _: Principal = Depends(allow(PUBLIC))) -> Response:
    """One request by its id (the incident code); extensions=true adds notes and the detailed status."""
    fmt = _format(format)
    extensions = _flag("extensions", _Fields(list(request.query_params.multi_items())).get("extensions"))
    with _session(request) as session:
        inc = None
        if _ID.fullmatch(service_request_id):
            inc = Open311Repository(session).by_code(service_request_id)
        if inc is None:
            raise Open311Error(404, Msg('there is no service request {service_request_id!r}', service_request_id=service_request_id[:40]),
                               Msg('Use the service_request_id that POST {PREFIX}/requests.{fmt} returned.', PREFIX=PREFIX, fmt=fmt))
        body = render_requests(request, session, [inc], extensions=extensions)
        return _respond(fmt, "service_requests", body)


@router.api_route("/{path:path}", methods=METHODS, include_in_schema=False, response_model=None)
def unknown(path: str, request: Request, _: Principal = Depends(allow(PUBLIC))) -> Response:
    """Any other path or method under the prefix: 404 or 405 in the spec's error format, not problem+json."""
    methods = sorted({m for r in router.routes if isinstance(r, APIRoute) and r.endpoint is not unknown
                      and r.matches(request.scope)[0] == Match.PARTIAL for m in (r.methods or ())})
    if methods:
        raise Open311Error(405, Msg('{method} is not allowed on {path}', method=request.method, path=request.url.path),
                           Msg('Use {items}.', items=' or '.join(methods)), allow=methods)
    raise Open311Error(404, Msg('there is no resource {value!r}', value=request.url.path[:80]),
                       Msg('See GET {PREFIX}/discovery.json for what this endpoint offers.', PREFIX=PREFIX))


__all__ = ["router", "Open311Error", "Open311Route", "to_xml", "render_requests", "definition_of",
           "service_of"]
