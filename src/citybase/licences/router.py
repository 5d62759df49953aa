"""HTTP API of the licences under /api/v1/licences. A citizen sees only their own licences (and their firm's);
staff who need them see others', masked unless their role sees personal data in full (every such read
audited). Verification and the public keys are open to anyone: that is the point of a signed licence."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from citybase.core.errors import InvalidInput, NotFound
from citybase.core.i18n import Msg
from citybase.core.schemas import FilterText, Id, Page, PageNo, PageSize
from citybase.licences import service
from citybase.licences.schemas import (
    LICENCE_PII,
    LicenceIssue,
    LicenceRead,
    LicenceRevoke,
    LicenceToken,
    LicenceTypeRead,
    LicenceUseCreate,
    LicenceUseRead,
    PublicKeyRead,
    VerifyRequest,
    VerifyResult,
)
from citybase.registry import service as registry
from citybase.security import audit
from citybase.security.deps import allow, get_session, request_id
from citybase.security.roles import PUBLIC
from citybase.security.service import Principal

router = APIRouter(prefix="/licences", tags=["licences"])
# the clerks who check licences in an application (审批, 综合窗口) and the stewards of the registries
STAFF = ("admin", "clerk", "window_clerk", "data_officer")
ISSUERS = ("admin", "clerk", "data_officer")
READERS = ("citizen", *STAFF)
# the signed token holds the content in full: only the holder, and the stewards who see personal data in full
FULL_SIGHT = ("citizen", "data_officer")


def _holder(p: Principal) -> tuple[int | None, int | None]:
    """The registry person and legal entity a signed-in account stands for (a citizen, a firm's account)."""
    return p.person_id, p.legal_entity_id


def _is_staff(p: Principal) -> bool:
    return bool(p.roles & set(STAFF))


def _owns(p: Principal, lic) -> bool:
    pid, eid = _holder(p)
    return (pid is not None and lic.person_id == pid) or (eid is not None and lic.legal_entity_id == eid)


def _visible(session: Session, p: Principal, licence_id: int):
    """The licence if the caller may see it; NotFound otherwise (a citizen learns nothing of others')."""
    lic = service.get_licence(session=session, licence_id=licence_id)
    if not _is_staff(p) and not _owns(p, lic):
        raise NotFound(Msg('no licence with id {licence_id}', licence_id=licence_id),
                       fix=Msg('List your own licences with GET /api/v1/licences.'))
    return lic


def _masked(p: Principal, lic) -> bool:
    return not _owns(p, lic) and not p.sees_pii


def _audit(request: Request, p: Principal, ids: list[int]) -> None:
    if ids:
        audit.record(request.app.state.engine, actor=p.actor, roles=",".join(sorted(p.roles)),
                     action="read.licence.unmasked", subject_type="licence", subject_ids=ids, fields=LICENCE_PII,
                     request_id=request_id(request))


def _departments(session: Session) -> dict[int, str]:
    return {d.id: d.name for d in registry.list_departments(session=session)}


def _reads(request: Request, session: Session, p: Principal, rows: list) -> list[LicenceRead]:
    types = {t.id: t for t in service.list_types(session=session)}
    out = [LicenceRead.of(r, types[r.type_id], status=service.status_of(r), masked=_masked(p, r)) for r in rows]
    _audit(request, p, [r.id for r in rows if not _owns(p, r) and p.sees_pii])
    return out


@router.get("/types", response_model=list[LicenceTypeRead], summary="The licence catalogue (GB/T 36902)")
def list_types(holder_kind: str | None = Query(None, pattern="^(person|entity)$"), _: Principal = Depends(allow(PUBLIC)),
               session: Session = Depends(get_session, scope="function")) -> list[LicenceTypeRead]:
    return [LicenceTypeRead.of(t) for t in service.list_types(session=session, holder_kind=holder_kind)]


@router.get("/types/{key}", response_model=LicenceTypeRead, summary="One licence type, by key or code")
def get_type(key: FilterText, _: Principal = Depends(allow(PUBLIC)),
             session: Session = Depends(get_session, scope="function")) -> LicenceTypeRead:
    return LicenceTypeRead.of(service.get_type(session=session, key=key))


@router.get("/keys", response_model=list[PublicKeyRead], summary="The public keys that verify licences (Ed25519)")
def list_keys(_: Principal = Depends(allow(PUBLIC)),
              session: Session = Depends(get_session, scope="function")) -> list[PublicKeyRead]:
    return [PublicKeyRead(**k.as_json()) for k in service.published_keys(session=session).values()]


@router.post("/verify", response_model=VerifyResult, summary="Verify a licence: signature, revocation, expiry")
def verify(body: VerifyRequest, _: Principal = Depends(allow(PUBLIC)),
           session: Session = Depends(get_session, scope="function")) -> VerifyResult:
    v = service.verify(session=session, token=body.token)
    return VerifyResult(ok=v.ok, signature=v.signature, kid=v.kid, registered=v.registered,  # type: ignore[arg-type]
                        status=v.status, revoked_at=v.revoked_at, revoke_reason=v.revoke_reason,  # type: ignore[arg-type]
                        content=v.content)


@router.get("", response_model=Page[LicenceRead], summary="Licences (a citizen's own; staff: anyone's, masked)")
def list_licences(request: Request, type: FilterText | None = Query(None, description="type key or code"),
                  person_id: Id | None = None, legal_entity_id: Id | None = None,
                  status: str | None = Query(None, pattern="^(valid|expired|revoked)$"),
                  page: PageNo = 1, page_size: PageSize = 50, p: Principal = Depends(allow(*READERS)),
                  session: Session = Depends(get_session, scope="function")) -> Page[LicenceRead]:
    holders = None if _is_staff(p) else _holder(p)
    rows, total = service.list_licences(session=session, type_key=type, person_id=person_id,
                                        legal_entity_id=legal_entity_id, holders=holders, status=status, page=page,
                                        page_size=page_size)
    return Page(items=_reads(request, session, p, rows), total=total, page=page, page_size=page_size)


@router.post("", response_model=LicenceRead, status_code=201, summary="Issue a licence (signed)")
def issue(request: Request, body: LicenceIssue, p: Principal = Depends(allow(*ISSUERS)),
          session: Session = Depends(get_session, scope="function")) -> LicenceRead:
    lic = service.issue(session=session, **body.model_dump())
    session.commit()  # stored (with its event) before the audit records that it was shown
    return _reads(request, session, p, [lic])[0]


@router.get("/uses", response_model=Page[LicenceUseRead], summary="Every use of a holder's licences")
def holder_uses(person_id: Id | None = None, legal_entity_id: Id | None = None, page: PageNo = 1,
                page_size: PageSize = 50, p: Principal = Depends(allow(*READERS)),
                session: Session = Depends(get_session, scope="function")) -> Page[LicenceUseRead]:
    if _is_staff(p):
        if person_id is None and legal_entity_id is None:
            raise InvalidInput(Msg('name the holder'), fix=Msg('Give person_id or legal_entity_id.'), field="person_id")
        pid, eid = person_id, legal_entity_id
    else:
        pid, eid = _holder(p)
    ids = service.holder_licence_ids(session=session, person_id=pid, legal_entity_id=eid)
    rows, total = service.list_uses(session=session, licence_ids=ids, page=page, page_size=page_size)
    depts = _departments(session)
    return Page(items=[LicenceUseRead.of(u, depts) for u in rows], total=total, page=page, page_size=page_size)


@router.get("/lookup", response_model=LicenceRead, summary="A licence by its GB/T 36904 identifier")
def lookup(request: Request, identifier: str = Query(..., max_length=100), p: Principal = Depends(allow(*READERS)),
           session: Session = Depends(get_session, scope="function")) -> LicenceRead:
    lic = service.get_by_identifier(session=session, identifier=identifier)
    lic = _visible(session, p, lic.id)
    return _reads(request, session, p, [lic])[0]


@router.get("/{licence_id}", response_model=LicenceRead, summary="One licence")
def get_licence(request: Request, licence_id: Id, p: Principal = Depends(allow(*READERS)),
                session: Session = Depends(get_session, scope="function")) -> LicenceRead:
    return _reads(request, session, p, [_visible(session, p, licence_id)])[0]


@router.get("/{licence_id}/token", response_model=LicenceToken, summary="The signed token of a licence (亮证)")
def token(request: Request, licence_id: Id, p: Principal = Depends(allow(*FULL_SIGHT)),
          session: Session = Depends(get_session, scope="function")) -> LicenceToken:
    lic = _visible(session, p, licence_id)
    if not _owns(p, lic):
        _audit(request, p, [lic.id])  # the token holds the content in full
    return LicenceToken(token=lic.token, link=service.verifier_link(lic.token, str(request.base_url)))


@router.get("/{licence_id}/qr.svg", summary="The licence's QR code (亮证), verifiable offline", response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}, "description": "an SVG image"}})
def qr(request: Request, licence_id: Id, p: Principal = Depends(allow(*FULL_SIGHT)),
       session: Session = Depends(get_session, scope="function")) -> Response:
    lic = _visible(session, p, licence_id)
    if not _owns(p, lic):
        _audit(request, p, [lic.id])
    return Response(service.qr_svg(lic.token, str(request.base_url)), media_type="image/svg+xml",
                    headers={"Cache-Control": "private, no-store"})


@router.post("/{licence_id}/revoke", response_model=LicenceRead, summary="Revoke a licence")
def revoke(request: Request, licence_id: Id, body: LicenceRevoke, p: Principal = Depends(allow(*ISSUERS)),
           session: Session = Depends(get_session, scope="function")) -> LicenceRead:
    lic = service.revoke(session=session, licence_id=licence_id, reason=body.reason)
    return _reads(request, session, p, [lic])[0]


@router.get("/{licence_id}/uses", response_model=Page[LicenceUseRead], summary="Every use of one licence")
def uses(licence_id: Id, page: PageNo = 1, page_size: PageSize = 50, p: Principal = Depends(allow(*READERS)),
         session: Session = Depends(get_session, scope="function")) -> Page[LicenceUseRead]:
    lic = _visible(session, p, licence_id)
    rows, total = service.list_uses(session=session, licence_ids=[lic.id], page=page, page_size=page_size)
    depts = _departments(session)
    return Page(items=[LicenceUseRead.of(u, depts) for u in rows], total=total, page=page, page_size=page_size)


@router.post("/{licence_id}/uses", response_model=LicenceUseRead, status_code=201,
             summary="Record a use of a licence by the caller's department, with the holder's consent")
def record_use(licence_id: Id, body: LicenceUseCreate, p: Principal = Depends(allow(*STAFF)),
               session: Session = Depends(get_session, scope="function")) -> LicenceUseRead:
    u = service.use(session=session, licence_id=licence_id, by_department_id=p.department_id, purpose=body.purpose,
                    application_ref=body.application_ref, consent_ref=body.consent_ref, actor=p.actor)
    return LicenceUseRead.of(u, _departments(session))
