"""HTTP API of identity and audit: users, tokens, the caller, the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from citybase.core.errors import NotFound
from citybase.core.i18n import Msg
from citybase.core.schemas import Count, FilterText, Id
from citybase.core.timeutil import to_shanghai
from citybase.security import audit, service
from citybase.security.deps import allow, get_session
from citybase.security.models import ApiToken, User
from citybase.security.roles import ROLES
from citybase.security.schemas import (
    AuditRead,
    AuditVerifyRead,
    TokenCreate,
    TokenIssued,
    TokenRead,
    UserCreate,
    UserRead,
)
from citybase.security.service import Principal

router = APIRouter(tags=["identity and audit"])


def user_read(u: User) -> UserRead:
    return UserRead(id=u.id, username=u.username, display_name=u.display_name, department_id=u.department_id,
                    roles=[r for r in u.roles.split(",") if r], active=u.active)


def token_read(t: ApiToken) -> TokenRead:
    return TokenRead(id=t.id, name=t.name, prefix=t.prefix, created_at=to_shanghai(t.created_at),
                     expires_at=to_shanghai(t.expires_at) if t.expires_at else None,
                     revoked_at=to_shanghai(t.revoked_at) if t.revoked_at else None)


@router.get("/me", response_model=UserRead, summary="The calling user")
def me(p: Principal = Depends(allow(*ROLES)), session: Session = Depends(get_session, scope="function")) -> UserRead:
    return user_read(service.get_user(session, p.user_id))  # type: ignore[arg-type]


@router.get("/users", response_model=list[UserRead], summary="All users")
def list_users(_: Principal = Depends(allow("admin")), session: Session = Depends(get_session, scope="function")) -> list[UserRead]:
    return [user_read(u) for u in service.list_users(session)]


@router.post("/users", response_model=UserRead, status_code=201, summary="Create a user")
def create_user(body: UserCreate, _: Principal = Depends(allow("admin")),
                session: Session = Depends(get_session, scope="function")) -> UserRead:
    return user_read(service.create_user(session, **body.model_dump()))


@router.get("/users/{user_id}/tokens", response_model=list[TokenRead], summary="A user's tokens (no secrets)")
def list_tokens(user_id: Id, _: Principal = Depends(allow("admin")),
                session: Session = Depends(get_session, scope="function")) -> list[TokenRead]:
    service.get_user(session, user_id)
    return [token_read(t) for t in service.user_tokens(session, user_id)]


@router.post("/users/{user_id}/tokens", response_model=TokenIssued, status_code=201, summary="Issue a token")
def issue_token(user_id: Id, body: TokenCreate, _: Principal = Depends(allow("admin")),
                session: Session = Depends(get_session, scope="function")) -> TokenIssued:
    token, secret = service.issue_token(session, service.get_user(session, user_id), name=body.name,
                                        expires_at=body.expires_at)
    return TokenIssued(**token_read(token).model_dump(), token=secret)


@router.delete("/users/{user_id}/tokens/{token_id}", response_model=TokenRead, summary="Revoke a token")
def revoke_token(user_id: Id, token_id: Id, _: Principal = Depends(allow("admin")),
                 session: Session = Depends(get_session, scope="function")) -> TokenRead:
    if not any(t.id == token_id for t in service.user_tokens(session, user_id)):
        raise NotFound(Msg('user {user_id} has no token {token_id}', user_id=user_id, token_id=token_id), fix=Msg('List tokens with GET /api/v1/users/{{id}}/tokens.'))
    return token_read(service.revoke_token(session, token_id))


@router.get("/audit", response_model=list[AuditRead], summary="Audit entries after a sequence number")
def list_audit(after: Count = 0, limit: int = Query(100, ge=1, le=1000), action: FilterText | None = None,
               _: Principal = Depends(allow("admin")), session: Session = Depends(get_session, scope="function")) -> list[AuditRead]:
    return [AuditRead(seq=e.seq, at=to_shanghai(e.at), actor=e.actor, roles=e.roles, action=e.action,
                      subject_type=e.subject_type, subject_ids=e.subject_ids, fields=e.fields,
                      request_id=e.request_id, hash=e.hash)
            for e in audit.entries(session, after=after, limit=limit, action=action)]


@router.get("/audit/verify", response_model=AuditVerifyRead, summary="Check the audit hash chain")
def verify_audit(_: Principal = Depends(allow("admin")), session: Session = Depends(get_session, scope="function")) -> AuditVerifyRead:
    v = audit.verify(session)
    return AuditVerifyRead(ok=v.ok, checked=v.checked, first_broken_seq=v.first_broken_seq, reason=v.reason)
