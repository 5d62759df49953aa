"""HTTP API of 一网通办 under ``/api/v1/services``: the catalogue (``items``), 一件事 (``bundles``),
``applications`` with one route per action of the state table on their parts, 好差评, ``kpis``.

A person sees and acts on their own applications only; clerks work their department's parts; window clerks
file for a person at the counter through the same routes. Staff reads of an application's form (personal
data) are audited, and so is every download of a file an applicant uploaded for a material."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from pathlib import Path as FilePath

from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile
from fastapi import Path as PathParam
from sqlalchemy.orm import Session

from citybase.core.schemas import FilterText, Id, Page, PageNo, PageSize
from citybase.core.timeutil import SHANGHAI
from citybase.security import audit
from citybase.security.deps import allow, get_session, request_id
from citybase.security.roles import PUBLIC
from citybase.security.service import Principal
from citybase.services import files, service, states
from citybase.services.schemas import (
    ApplicationRead,
    ApplicationStart,
    ApplicationSummary,
    BundleRead,
    BundleWrite,
    DraftWrite,
    ItemRead,
    ItemSummary,
    ItemWrite,
    MaterialFileRead,
    PartRead,
    RatingRead,
    RatingWrite,
    RectificationRead,
    RectifyWrite,
    StepWrite,
    TimelineRead,
)
from citybase.services.service import Actor

router = APIRouter(prefix="/services", tags=["一网通办 services"])
APPLICANTS = ("citizen", "window_clerk", "admin")
READERS = ("citizen", "window_clerk", "clerk", "admin")
CLERKS = ("clerk", "admin")
KPI_READERS = ("analyst", "admin", "clerk", "window_clerk")


def _names(session: Session) -> dict[int, str]:
    return service.department_names(session=session)


def actor_of(p: Principal) -> Actor:
    """The services actor a signed-in principal acts as (with the registry person and entity it is linked to)."""
    return Actor(name=p.actor, user_id=p.user_id, roles=p.roles, department_id=p.department_id,
                 person_id=p.person_id, legal_entity_id=p.legal_entity_id)


# ---------------------------------------------------------------- catalogue


@router.get("/items", response_model=Page[ItemSummary], summary="The service catalogue (政务服务事项)")
def list_items(department: FilterText | None = Query(None, description="department GB 32100 code"),
               kind: FilterText | None = None, name: FilterText | None = Query(None, description="part of the name"),
               online_level: FilterText | None = None, page: PageNo = 1, page_size: PageSize = 50,
               _: Principal = Depends(allow(PUBLIC)),
               session: Session = Depends(get_session, scope="function")) -> Page[ItemSummary]:
    rows, total = service.list_items(session=session, department=department, kind=kind, name=name,
                                     online_level=online_level, page=page, page_size=page_size)
    names = _names(session)
    return Page(items=[ItemSummary.of(i, v, names) for i, v in rows], total=total, page=page, page_size=page_size)


@router.get("/items/{code}", response_model=ItemRead, summary="One item (its current version, or ?version=)")
def get_item(code: FilterText, version: Id | None = None, _: Principal = Depends(allow(PUBLIC)),
             session: Session = Depends(get_session, scope="function")) -> ItemRead:
    return ItemRead.of(*service.get_item(session=session, code=code, version=version))


@router.get("/items/{code}/versions", response_model=list[ItemRead], summary="Every version of an item")
def item_versions(code: FilterText, _: Principal = Depends(allow(PUBLIC)),
                  session: Session = Depends(get_session, scope="function")) -> list[ItemRead]:
    item, _v = service.get_item(session=session, code=code)
    return [ItemRead.of(item, v) for v in service.item_versions(session=session, code=code)]


@router.post("/items", response_model=ItemRead, status_code=201, summary="Add an item (version 1)")
def create_item(body: ItemWrite, p: Principal = Depends(allow("admin")),
                session: Session = Depends(get_session, scope="function")) -> ItemRead:
    return ItemRead.of(*service.create_item(session=session, spec=body.spec(), actor=p.actor))


@router.put("/items/{code}", response_model=ItemRead, summary="Edit an item: its next version")
def update_item(code: FilterText, body: ItemWrite, p: Principal = Depends(allow("admin")),
                session: Session = Depends(get_session, scope="function")) -> ItemRead:
    return ItemRead.of(*service.update_item(session=session, code=code, spec={**body.spec(), "code": code},
                                            actor=p.actor))


def _bundle_read(session: Session, b, v, *, detail: bool) -> BundleRead:  # noqa: ANN001
    members = service.bundle_members(session=session, bundle=v)
    return BundleRead.of(b, v, members, service.bundle_plan(session=session, bundle=v), detail=detail,
                         names=_names(session))


@router.get("/bundles", response_model=list[BundleRead], summary="一件事 bundles, with what each saves")
def list_bundles(_: Principal = Depends(allow(PUBLIC)),
                 session: Session = Depends(get_session, scope="function")) -> list[BundleRead]:
    return [_bundle_read(session, b, v, detail=False) for b, v in service.list_bundles(session=session)]


@router.get("/bundles/{code}", response_model=BundleRead,
            summary="One bundle (its current version, or ?version=): merged form, materials, critical path")
def get_bundle(code: FilterText, version: Id | None = None, _: Principal = Depends(allow(PUBLIC)),
               session: Session = Depends(get_session, scope="function")) -> BundleRead:
    return _bundle_read(session, *service.get_bundle(session=session, code=code, version=version), detail=True)


@router.get("/bundles/{code}/versions", response_model=list[BundleRead],
            summary="Every version of a bundle, oldest first (members at the items' current versions)")
def bundle_versions(code: FilterText, _: Principal = Depends(allow(PUBLIC)),
                    session: Session = Depends(get_session, scope="function")) -> list[BundleRead]:
    b, _v = service.get_bundle(session=session, code=code)
    return [_bundle_read(session, b, v, detail=False) for v in service.bundle_versions(session=session, code=code)]


@router.post("/bundles", response_model=BundleRead, status_code=201, summary="Add a 一件事 bundle (version 1)")
def create_bundle(body: BundleWrite, p: Principal = Depends(allow("admin")),
                  session: Session = Depends(get_session, scope="function")) -> BundleRead:
    b, v = service.create_bundle(session=session, code=body.code, actor=p.actor, **body.spec())
    return _bundle_read(session, b, v, detail=True)


@router.put("/bundles/{code}", response_model=BundleRead,
            summary="Edit a bundle (members, dependencies, name, description): its next version")
def update_bundle(code: FilterText, body: BundleWrite, p: Principal = Depends(allow("admin")),
                  session: Session = Depends(get_session, scope="function")) -> BundleRead:
    b, v = service.update_bundle(session=session, code=code, actor=p.actor, **body.spec())
    return _bundle_read(session, b, v, detail=True)


@router.get("/workflow", summary="The state table of a department's part")
def workflow(_: Principal = Depends(allow(PUBLIC))) -> dict:
    return states.as_json()


# ---------------------------------------------------------------- applications


def _detail(request: Request, session: Session, p: Principal, app) -> ApplicationRead:  # noqa: ANN001
    a = actor_of(p)
    if not service.owns(a, app):  # staff see the applicant's personal data: audited
        audit.record(request.app.state.engine, actor=p.actor, roles=",".join(sorted(p.roles)),
                     action="read.services_application.form", subject_type="services_application",
                     subject_ids=[app.id], fields=["form"], request_id=request_id(request))
    rating, rect = service.rating_of(session=session, app=app)
    names = _names(session)
    items = service.item_names(session=session, app=app)
    return ApplicationRead(
        **ApplicationSummary.of(app).model_dump(), person_id=app.person_id, legal_entity_id=app.legal_entity_id,
        filed_by=app.filed_by, bundle=service.application_bundle(session=session, app=app),
        members=json.loads(app.members), form_schema=service.form_of(session=session, app=app),
        form=json.loads(app.form), prefilled=json.loads(app.prefilled),
        materials=service.materials_view(session=session, app=app) if app.status == "draft" else [],
        exemptions=json.loads(app.exemptions), consent=json.loads(app.consent),
        parts=[PartRead.of(x, service.light_of(x), names, items.get(x.item_code))
               for x in service.parts_of(session=session, app=app)],
        timeline=[TimelineRead.of(e) for e in service.timeline(session=session, app=app)],
        rating=RatingRead.of(rating, rect, service.GRADES[rating.grade]) if rating else None)


@router.get("/applications", response_model=Page[ApplicationSummary], summary="Applications you may see")
def list_applications(status: FilterText | None = None, mine: bool = False, page: PageNo = 1,
                      page_size: PageSize = 50, p: Principal = Depends(allow(*READERS)),
                      session: Session = Depends(get_session, scope="function")) -> Page[ApplicationSummary]:
    rows, total = service.list_applications(session=session, actor=actor_of(p), status=status, mine=mine,
                                            page=page, page_size=page_size)
    return Page(items=[ApplicationSummary.of(a) for a in rows], total=total, page=page, page_size=page_size)


@router.post("/applications", response_model=ApplicationRead, status_code=201,
             summary="Start a draft for a bundle or an item (prefilled from the registries)")
def start(request: Request, body: ApplicationStart, p: Principal = Depends(allow(*APPLICANTS)),
          session: Session = Depends(get_session, scope="function")) -> ApplicationRead:
    app = service.start(session=session, actor=actor_of(p), bundle=body.bundle, item=body.item,
                        applicant_kind=body.applicant_kind, person_id=body.person_id,
                        legal_entity_id=body.legal_entity_id)
    session.commit()
    return _detail(request, session, p, app)


@router.get("/applications/{application_id}", response_model=ApplicationRead, summary="One application")
def get_application(request: Request, application_id: Id, p: Principal = Depends(allow(*READERS)),
                    session: Session = Depends(get_session, scope="function")) -> ApplicationRead:
    app = service.get_application(session=session, actor=actor_of(p), application_id=application_id)
    return _detail(request, session, p, app)


@router.patch("/applications/{application_id}", response_model=ApplicationRead,
              summary="Keep answers, consents and attached materials of a draft")
def save_draft(request: Request, application_id: Id, body: DraftWrite, p: Principal = Depends(allow(*APPLICANTS)),
               session: Session = Depends(get_session, scope="function")) -> ApplicationRead:
    app = service.save_draft(session=session, actor=actor_of(p), application_id=application_id, form=body.form,
                             consent=body.consent, provided=body.provided)
    session.commit()
    return _detail(request, session, p, app)


@router.post("/applications/{application_id}/submit", response_model=ApplicationRead,
             summary="Submit a draft: the departments get their parts")
def submit(request: Request, application_id: Id, p: Principal = Depends(allow(*APPLICANTS)),
           session: Session = Depends(get_session, scope="function")) -> ApplicationRead:
    app = service.submit(session=session, actor=actor_of(p), application_id=application_id)
    session.commit()
    return _detail(request, session, p, app)


@router.post("/applications/{application_id}/withdraw", response_model=ApplicationRead, summary="Drop a draft")
def withdraw(request: Request, application_id: Id, p: Principal = Depends(allow(*APPLICANTS)),
             session: Session = Depends(get_session, scope="function")) -> ApplicationRead:
    app = service.withdraw(session=session, actor=actor_of(p), application_id=application_id)
    session.commit()
    return _detail(request, session, p, app)


def _make_action_route(action: str, t: states.Transition) -> None:
    def endpoint(request: Request, application_id: Id, part_id: Id, body: StepWrite | None = None,
                 p: Principal = Depends(allow(*t.roles)),
                 session: Session = Depends(get_session, scope="function")) -> ApplicationRead:
        b = body or StepWrite()
        service.act(session=session, actor=actor_of(p), application_id=application_id, part_id=part_id,
                    action=action, reason=b.reason, form=b.form, provided=b.provided)
        session.commit()
        app = service.get_application(session=session, actor=actor_of(p), application_id=application_id)
        return _detail(request, session, p, app)

    endpoint.__name__ = f"part_{action.replace('-', '_')}"
    router.add_api_route(f"/applications/{{application_id}}/parts/{{part_id}}/{action}", endpoint, methods=["POST"],
                         response_model=ApplicationRead, summary=t.summary, description=states.description(action))


for _action, _t in states.api_actions().items():
    _make_action_route(_action, _t)


# ---------------------------------------------------------------- materials the applicant brings: files


def _store(request: Request) -> files.FileStore:
    return files.FileStore.under(FilePath(request.app.state.settings.data_dir))


def _problem_response(description: str) -> dict:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}}


MATERIAL_KEY = PathParam(..., min_length=1, max_length=120,
                         description="the material's key, as in the application's materials (e.g. applicant:公司章程)")


@router.post("/applications/{application_id}/materials/{material_key}", response_model=MaterialFileRead,
             status_code=201, summary="Upload a file for one material to bring (PDF, JPEG, PNG or OFD, up to 10 MB)",
             description="multipart/form-data with the file as `file`, by the applicant or a window clerk for them, "
                         "while the application is a draft or in 补正. The type is read from the content. 201 with "
                         "the file kept; 200 when the same content was already kept for this material.",
             responses={200: {"model": MaterialFileRead,
                              "description": "the same content was already kept for this material: that file"},
                        413: _problem_response("the file is larger than 10 MB"),
                        415: _problem_response("the content is not a PDF, JPEG, PNG or OFD file")})
def upload_material(request: Request, response: Response, application_id: Id, material_key: str = MATERIAL_KEY,
                    file: UploadFile = File(..., description="the material: PDF, JPEG, PNG or OFD"),
                    p: Principal = Depends(allow(*APPLICANTS)),
                    session: Session = Depends(get_session, scope="function")) -> MaterialFileRead:
    data = file.file.read(files.MAX_BYTES + 1)  # one byte more than allowed tells a file too large
    kept = service.upload_material(session=session, actor=actor_of(p), application_id=application_id,
                                   material_key=material_key, name=file.filename, data=data, store=_store(request))
    session.commit()
    if not kept.created:
        response.status_code = 200
    return MaterialFileRead.of(kept.file, kept.material_name)


@router.get("/applications/{application_id}/files", response_model=list[MaterialFileRead],
            summary="The files uploaded for an application's materials")
def list_files(application_id: Id, p: Principal = Depends(allow(*READERS)),
               session: Session = Depends(get_session, scope="function")) -> list[MaterialFileRead]:
    _app, rows, names = service.material_files(session=session, actor=actor_of(p), application_id=application_id)
    return [MaterialFileRead.of(f, names.get(f.material_key)) for f in rows]


@router.get("/applications/{application_id}/files/{file_id}", summary="Download one uploaded file (audited)",
            response_class=Response,
            responses={200: {"description": "the file's bytes, named by Content-Disposition (RFC 6266 filename*)",
                             "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in files.TYPES}}})
def download_file(request: Request, application_id: Id, file_id: Id, p: Principal = Depends(allow(*READERS)),
                  session: Session = Depends(get_session, scope="function")) -> Response:
    row = service.material_file(session=session, actor=actor_of(p), application_id=application_id, file_id=file_id)
    data = service.file_content(row=row, store=_store(request))
    audit.record(request.app.state.engine, actor=p.actor, roles=",".join(sorted(p.roles)),
                 action="read.services_material_file", subject_type="services_material_file",
                 subject_ids=[row.id], fields=["content"], request_id=request_id(request))
    return Response(data, media_type=row.content_type, headers={
        "Content-Disposition": files.content_disposition(row.name), "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store", "ETag": f'"{row.sha256}"'})


@router.delete("/applications/{application_id}/files/{file_id}", status_code=204,
               summary="Remove an uploaded file (while a draft or in 补正)")
def remove_file(application_id: Id, file_id: Id, p: Principal = Depends(allow(*APPLICANTS)),
                session: Session = Depends(get_session, scope="function")) -> Response:
    service.remove_material_file(session=session, actor=actor_of(p), application_id=application_id, file_id=file_id)
    session.commit()
    return Response(status_code=204)


@router.get("/parts", response_model=Page[PartRead], summary="The clerk's workbench: the department's open parts")
def department_queue(status: list[FilterText] | None = Query(None), department_id: Id | None = Query(
                         None, description="admins only; a clerk always sees their own department"),
                     page: PageNo = 1, page_size: PageSize = 50, p: Principal = Depends(allow(*CLERKS)),
                     session: Session = Depends(get_session, scope="function")) -> Page[PartRead]:
    rows, total = service.department_queue(session=session, actor=actor_of(p), department_id=department_id,
                                           statuses=status, page=page, page_size=page_size)
    names = _names(session)
    items = service.part_item_names(session=session, parts=rows)
    return Page(items=[PartRead.of(x, service.light_of(x), names, items[x.id]) for x in rows], total=total, page=page,
                page_size=page_size)


@router.get("/applications/{application_id}/timeline", response_model=list[TimelineRead],
            summary="Every step of an application")
def timeline(application_id: Id, p: Principal = Depends(allow(*READERS)),
             session: Session = Depends(get_session, scope="function")) -> list[TimelineRead]:
    app = service.get_application(session=session, actor=actor_of(p), application_id=application_id)
    return [TimelineRead.of(e) for e in service.timeline(session=session, app=app)]


@router.post("/supervision/sweep", summary="Raise 督办 for every overdue part now")
def sweep(p: Principal = Depends(allow("admin")),
          session: Session = Depends(get_session, scope="function")) -> dict:
    raised = service.supervise_overdue(session=session)
    session.commit()
    return {"raised": len(raised), "part_ids": [x.id for x in raised]}


# ---------------------------------------------------------------- 好差评


@router.post("/applications/{application_id}/rating", response_model=RatingRead, status_code=201,
             summary="好差评: rate a finished application once")
def rate(application_id: Id, body: RatingWrite, p: Principal = Depends(allow(*APPLICANTS)),
         session: Session = Depends(get_session, scope="function")) -> RatingRead:
    r = service.rate(session=session, actor=actor_of(p), application_id=application_id, grade=body.grade,
                     channel=body.channel, comment=body.comment, department_id=body.department_id)
    session.commit()
    app = service.get_application(session=session, actor=actor_of(p), application_id=application_id)
    rating, rect = service.rating_of(session=session, app=app)
    return RatingRead.of(r, rect, service.GRADES[r.grade])


@router.get("/rectifications", response_model=Page[RectificationRead], summary="整改 opened by bad ratings")
def list_rectifications(status: FilterText | None = None, page: PageNo = 1, page_size: PageSize = 50,
                        p: Principal = Depends(allow("clerk", "admin", "analyst")),
                        session: Session = Depends(get_session, scope="function")) -> Page[RectificationRead]:
    rows, total = service.list_rectifications(session=session, actor=actor_of(p), status=status, page=page,
                                              page_size=page_size)
    return Page(items=[RectificationRead.of(r) for r in rows], total=total, page=page, page_size=page_size)


@router.post("/rectifications/{rectification_id}/done", response_model=RectificationRead,
             summary="整改 done, with the call-back to the applicant")
def rectify(rectification_id: Id, body: RectifyWrite, p: Principal = Depends(allow(*CLERKS)),
            session: Session = Depends(get_session, scope="function")) -> RectificationRead:
    r = service.rectify(session=session, actor=actor_of(p), rectification_id=rectification_id,
                        action_taken=body.action_taken, callback_note=body.callback_note)
    session.commit()
    return RectificationRead.of(r)


# ---------------------------------------------------------------- KPIs


def _start_of(d: date | None) -> datetime | None:
    return datetime.combine(d, time(0, 0), SHANGHAI) if d else None


@router.get("/kpis", summary="一网通办 KPIs computed live, by department, item and period")
def kpis(since: date | None = Query(None, description="first day (Asia/Shanghai) of the period"),
         until: date | None = Query(None, description="the day after the period"),
         department: FilterText | None = Query(None, description="department GB 32100 code"),
         item: FilterText | None = None, _: Principal = Depends(allow(*KPI_READERS)),
         session: Session = Depends(get_session, scope="function")) -> dict:
    return service.kpis(session=session, since=_start_of(since), until=_start_of(until), department=department,
                        item=item)
