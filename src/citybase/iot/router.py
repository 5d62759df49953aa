"""HTTP API of the IoT domain under /api/v1/iot: device types, devices (provisioning one by one or in bulk,
decommissioning, their map, readings and health), the HTTP ingest (device credentials, no user), alarms
(acknowledge, clear), dead letters and feeds (前端分流)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Body, Depends, Query, Request
from sqlalchemy.orm import Session

from citybase.core.errors import InvalidInput
from citybase.core.i18n import Msg
from citybase.core.schemas import FilterText, Id, Page, PageNo, PageSize
from citybase.iot import service
from citybase.iot.schemas import (
    AlarmRead,
    DeadLetterRead,
    DeviceDetail,
    DeviceProvisioned,
    DeviceRead,
    DeviceTypeRead,
    DeviceWrite,
    FeedCreated,
    FeedRead,
    FeedWrite,
    HealthRead,
    IngestOutcome,
    MessageOutcome,
    ProvisionResult,
    ReadingIn,
    ReadingRead,
    RefusalRead,
    coarse,
)
from citybase.iot.types import DEVICE_TYPES
from citybase.security.deps import allow, get_session
from citybase.security.roles import PUBLIC, STAFF
from citybase.security.service import Principal

router = APIRouter(prefix="/iot", tags=["iot"])
READERS = STAFF
OPERATORS = ("admin", "dispatcher", "handler")  # acknowledge and clear alarms
MANAGERS = ("admin",)  # provision and decommission devices, manage feeds
MAX_MESSAGES = 5000
STATE = "^(online|offline|decommissioned)$"


def _precise(p: Principal) -> bool:
    return p.sees_pii


@router.get("/types", response_model=list[DeviceTypeRead], summary="The device types, their attributes and rules")
def list_types(_: Principal = Depends(allow(*READERS))) -> list[DeviceTypeRead]:
    return [DeviceTypeRead.of(t) for t in DEVICE_TYPES.values()]


@router.get("/devices", response_model=Page[DeviceRead], summary="Devices, paged")
def list_devices(type: FilterText | None = Query(None, description="a device type code"),
                 state: str | None = Query(None, pattern=STATE), department_id: Id | None = None,
                 area: FilterText | None = Query(None, description="a grid code or the prefix of an area's codes"),
                 q: FilterText | None = Query(None, description="part of the id or name"), page: PageNo = 1,
                 page_size: PageSize = 50, p: Principal = Depends(allow(*READERS)),
                 session: Session = Depends(get_session, scope="function")) -> Page[DeviceRead]:
    rows, total = service.list_devices(session=session, type_code=type, state=state, department_id=department_id,
                                       area=area, q=q, page=page, page_size=page_size)
    return Page(items=[DeviceRead.of(d, precise=_precise(p)) for d in rows], total=total, page=page,
                page_size=page_size)


@router.post("/devices", response_model=ProvisionResult, status_code=201,
             summary="Provision devices (one or a list; all or none); each secret is shown once")
def provision(body: DeviceWrite | list[DeviceWrite] = Body(...), _: Principal = Depends(allow(*MANAGERS)),
              session: Session = Depends(get_session, scope="function")) -> ProvisionResult:
    items = body if isinstance(body, list) else [body]
    if not items or len(items) > 10000:
        raise InvalidInput(Msg('give 1 to 10000 devices'), fix=Msg('Split a larger list, or use `citybase iot import`.'))
    made = service.provision(session=session, devices=[service.NewDevice(
        device_id=i.device_id, type_code=i.type, lon=i.lon, lat=i.lat, model=i.model, name=i.name,
        department=i.department, secret=i.secret) for i in items])
    return ProvisionResult(created=[DeviceProvisioned(**DeviceRead.of(d, precise=True).model_dump(), secret=s)
                                    for d, s in made])


@router.get("/devices.geojson", summary="Devices on the map (GeoJSON points with id, type and state)")
def device_map(type: FilterText | None = None, state: str | None = Query(None, pattern=STATE),
               department_id: Id | None = None, p: Principal = Depends(allow(*READERS)),
               session: Session = Depends(get_session, scope="function")) -> dict:
    fc = service.device_map(session=session, type_code=type, state=state, department_id=department_id)
    if not _precise(p):
        for f in fc["features"]:
            lon, lat = f["geometry"]["coordinates"]
            f["geometry"]["coordinates"] = list(coarse(f["properties"]["type"], lon, lat, False))
    return fc


@router.get("/health", response_model=list[HealthRead], summary="Device health: offline share by type and department")
def health(_: Principal = Depends(allow(*READERS)),
           session: Session = Depends(get_session, scope="function")) -> list[HealthRead]:
    return [HealthRead(**h) for h in service.health(session=session)]


@router.get("/devices/{device_id}", response_model=DeviceDetail, summary="A device, its latest values and readings")
def get_device(device_id: str, attr: FilterText | None = None, since: datetime | None = None,
               limit: int = Query(500, ge=1, le=5000), p: Principal = Depends(allow(*READERS)),
               session: Session = Depends(get_session, scope="function")) -> DeviceDetail:
    d = service.get_device(session=session, device_id=device_id[:64])
    rows = service.readings(session=session, device=d, attr=attr, since=since, limit=limit)
    reads = [ReadingRead.of(r.attr, r.observed_at, r.value if r.text is None else r.text) for r in rows]
    latest: dict[str, ReadingRead] = {}
    for r in reads:
        latest.setdefault(r.attr, r)
    return DeviceDetail(device=DeviceRead.of(d, precise=_precise(p)), latest=latest, readings=reads)


@router.post("/devices/{device_id}/decommission", response_model=DeviceRead, summary="Decommission a device")
def decommission(device_id: str, _: Principal = Depends(allow(*MANAGERS)),
                 session: Session = Depends(get_session, scope="function")) -> DeviceRead:
    return DeviceRead.of(service.decommission(session=session, device_id=device_id[:64]), precise=True)


@router.post("/devices/{device_id}/secret", response_model=DeviceProvisioned,
             summary="A new secret for a device (the old one stops working); shown once")
def rotate(device_id: str, _: Principal = Depends(allow(*MANAGERS)),
           session: Session = Depends(get_session, scope="function")) -> DeviceProvisioned:
    secret = service.rotate_secret(session=session, device_id=device_id[:64])
    d = service.get_device(session=session, device_id=device_id[:64])
    return DeviceProvisioned(**DeviceRead.of(d, precise=True).model_dump(), secret=secret)


@router.post("/readings", response_model=IngestOutcome,
             summary="HTTP ingest: messages of devices (docs/iot.md), each with its device and token",
             responses={422: {"description": "every message was refused (each kept in the dead letters)"}})
def ingest(request: Request, body: list[ReadingIn] = Body(..., max_length=MAX_MESSAGES),
           _: Principal = Depends(allow(PUBLIC)), session: Session = Depends(get_session, scope="function")) -> IngestOutcome:
    messages = [service.Message(device=m.device, payload=m.model_dump(exclude={"device"}, exclude_none=True) | {"device": m.device},
                                via="http") for m in body]
    res = service.ingest(session=session, messages=messages)
    out = IngestOutcome(accepted=res.accepted, duplicates=res.duplicates, refused=res.refused,
                        alarms_raised=res.alarms_raised, alarms_cleared=res.alarms_cleared,
                        messages=[MessageOutcome(device=m.device, accepted=m.accepted, duplicates=m.duplicates,
                                                 refused=[RefusalRead(**r) for r in m.refused]) for m in res.messages])
    if body and res.accepted == 0 and res.duplicates == 0:
        session.commit()  # the refusals are kept in the dead letters before the error is answered
        first = next((r for m in res.messages for r in m.refused), {"reason": ""})
        raise InvalidInput(Msg('every message was refused; the first: {reason}', reason=first["reason"]),
                           fix=Msg('Check each device id and token, and each reading against GET /api/v1/iot/types.'),
                           outcome=out.model_dump(mode="json"))
    return out


@router.get("/alarms", response_model=Page[AlarmRead], summary="Alarms, newest first")
def list_alarms(state: str | None = Query(None, pattern="^(open|active|acknowledged|cleared)$"),
                device: FilterText | None = None, severity: str | None = Query(None, pattern="^(critical|major|minor|warning)$"),
                department_id: Id | None = None, page: PageNo = 1, page_size: PageSize = 50,
                p: Principal = Depends(allow(*READERS)),
                session: Session = Depends(get_session, scope="function")) -> Page[AlarmRead]:
    rows, total = service.list_alarms(session=session, state=state, device_id=device, severity=severity,
                                      department_id=department_id, page=page, page_size=page_size)
    return Page(items=_alarm_reads(session, p, rows), total=total, page=page, page_size=page_size)


def _alarm_reads(session: Session, p: Principal, rows: list) -> list[AlarmRead]:
    devices = service.devices_of(session=session, pks=[a.device_pk for a in rows])
    incidents = service.incidents_of(session=session, alarm_ids=[a.id for a in rows])
    return [AlarmRead.of(a, devices[a.device_pk], precise=_precise(p), incident=incidents.get(str(a.id))) for a in rows]


@router.get("/alarms/{alarm_id}", response_model=AlarmRead, summary="One alarm")
def get_alarm(alarm_id: Id, p: Principal = Depends(allow(*READERS)),
              session: Session = Depends(get_session, scope="function")) -> AlarmRead:
    return _alarm_reads(session, p, [service.get_alarm(session=session, alarm_id=alarm_id)])[0]


@router.post("/alarms/{alarm_id}/acknowledge", response_model=AlarmRead, summary="Acknowledge an active alarm")
def acknowledge(alarm_id: Id, p: Principal = Depends(allow(*OPERATORS)),
                session: Session = Depends(get_session, scope="function")) -> AlarmRead:
    a = service.acknowledge(session=session, alarm_id=alarm_id, by=p.username)
    return _alarm_reads(session, p, [a])[0]


@router.post("/alarms/{alarm_id}/clear", response_model=AlarmRead, summary="Clear an alarm by hand (repaired)")
def clear(alarm_id: Id, p: Principal = Depends(allow(*OPERATORS)),
          session: Session = Depends(get_session, scope="function")) -> AlarmRead:
    a = service.clear(session=session, alarm_id=alarm_id, by=p.username)
    return _alarm_reads(session, p, [a])[0]


@router.get("/dead-letters", response_model=Page[DeadLetterRead], summary="Refused messages and readings, newest first")
def dead_letters(device: FilterText | None = None, reason: FilterText | None = Query(None, description="a reason code"),
                 page: PageNo = 1, page_size: PageSize = 50, _: Principal = Depends(allow(*READERS)),
                 session: Session = Depends(get_session, scope="function")) -> Page[DeadLetterRead]:
    rows, total = service.dead_letters(session=session, device_id=device, reason_code=reason, page=page,
                                       page_size=page_size)
    return Page(items=[DeadLetterRead.of(d) for d in rows], total=total, page=page, page_size=page_size)


@router.get("/dead-letters/counts", response_model=dict[str, int], summary="Dead letters by reason code")
def dead_letter_counts(_: Principal = Depends(allow(*READERS)),
                       session: Session = Depends(get_session, scope="function")) -> dict[str, int]:
    return service.dead_letter_counts(session=session)


@router.get("/feeds", response_model=list[FeedRead], summary="Feeds of readings to departments (前端分流)")
def list_feeds(_: Principal = Depends(allow(*MANAGERS)),
               session: Session = Depends(get_session, scope="function")) -> list[FeedRead]:
    return [FeedRead.of(f) for f in service.list_feeds(session=session)]


@router.post("/feeds", response_model=FeedCreated, status_code=201, summary="Route a department's readings to its system")
def create_feed(body: FeedWrite, _: Principal = Depends(allow(*MANAGERS)),
                session: Session = Depends(get_session, scope="function")) -> FeedCreated:
    f = service.create_feed(session=session, name=body.name, department=body.department, type_code=body.type,
                            area_code=body.area_code, url=body.url)
    return FeedCreated(**FeedRead.of(f).model_dump(), secret=f.secret)


@router.delete("/feeds/{feed_id}", status_code=204, summary="Stop a feed")
def delete_feed(feed_id: Id, _: Principal = Depends(allow(*MANAGERS)),
                session: Session = Depends(get_session, scope="function")) -> None:
    service.delete_feed(session=session, feed_id=feed_id)
