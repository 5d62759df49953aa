"""HTTP API of identity and audit: users, tokens, the caller, the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from citybase.core.errors import NotFound
from citybase.core.i18n import Msg
from citybase.core.schemas import Count, FilterText, Id
from citybase.core.timeutil import to_shanghai
from citybase.security import audit, service
from citybase.security.deps import allow, get_session
from citybase.security.roles import PUBLIC, ROLES
from citybase.security.schemas import (
    AuditRead,
    AuditVerifyRead,
    OidcCodeExchange,
    OidcConfigRead,
    OidcTokenRead,
    TokenCreate,
    TokenIssued,
    TokenRead,
    UserCreate,
    UserRead,
)
from citybase.security.service import Principal

router = APIRouter(tags=["identity and audit"])


@router.get("/me", response_model=UserRead, summary="The calling user")
def me(p: Principal = Depends(allow(*ROLES)), session: Session = Depends(get_session, scope="function")) -> UserRead:
    return UserRead.of(service.get_user(session=session, user_id=p.user_id))  # type: ignore[arg-type]


@router.get("/users", response_model=list[UserRead], summary="All users")
def list_users(_: Principal = Depends(allow("admin")), session: Session = Depends(get_session, scope="function")) -> list[UserRead]:
    return [UserRead.of(u) for u in service.list_users(session=session)]


@router.post("/users", response_model=UserRead, status_code=201, summary="Create a user")
def create_user(body: UserCreate, _: Principal = Depends(allow("admin")),
                session: Session = Depends(get_session, scope="function")) -> UserRead:
    return UserRead.of(service.create_user(session=session, **body.model_dump()))


@router.get("/users/{user_id}/tokens", response_model=list[TokenRead], summary="A user's tokens (no secrets)")
def list_tokens(user_id: Id, _: Principal = Depends(allow("admin")),
                session: Session = Depends(get_session, scope="function")) -> list[TokenRead]:
    return [TokenRead.of(t) for t in service.user_tokens(session=session, user_id=user_id)]


@router.post("/users/{user_id}/tokens", response_model=TokenIssued, status_code=201, summary="Issue a token")
def issue_token(user_id: Id, body: TokenCreate, _: Principal = Depends(allow("admin")),
                session: Session = Depends(get_session, scope="function")) -> TokenIssued:
    token, secret = service.issue_token(session=session, user=service.get_user(session=session, user_id=user_id),
                                        name=body.name, expires_at=body.expires_at)
    return TokenIssued.issued(token, secret)


@router.delete("/users/{user_id}/tokens/{token_id}", response_model=TokenRead, summary="Revoke a token")
def revoke_token(user_id: Id, token_id: Id, _: Principal = Depends(allow("admin")),
                 session: Session = Depends(get_session, scope="function")) -> TokenRead:
    return TokenRead.of(service.revoke_token(session=session, token_id=token_id, user_id=user_id))


@router.get("/audit", response_model=list[AuditRead], summary="Audit entries after a sequence number")
def list_audit(after: Count = 0, limit: int = Query(100, ge=1, le=1000), action: FilterText | None = None,
               _: Principal = Depends(allow("admin")), session: Session = Depends(get_session, scope="function")) -> list[AuditRead]:
    return [AuditRead.of(e) for e in service.audit_entries(session=session, after=after, limit=limit, action=action)]


@router.get("/audit/verify", response_model=AuditVerifyRead, summary="Check the audit hash chain")
def verify_audit(_: Principal = Depends(allow("admin")), session: Session = Depends(get_session, scope="function")) -> AuditVerifyRead:
    v = audit.verify(session)
    return AuditVerifyRead(ok=v.ok, checked=v.checked, first_broken_seq=v.first_broken_seq, reason=v.reason)


@router.get("/auth/oidc", response_model=OidcConfigRead, summary="Whether 统一身份认证 (OpenID Connect) is on")
def oidc_config(request: Request, _: Principal = Depends(allow(PUBLIC))) -> OidcConfigRead:
    sign_in = getattr(request.app.state, "oidc", None)
    return OidcConfigRead(**sign_in.public()) if sign_in is not None else OidcConfigRead(enabled=False)


@router.post("/auth/oidc/token", response_model=OidcTokenRead, summary="Trade an OIDC authorization code for the "
             "verified ID token")
def oidc_token(body: OidcCodeExchange, request: Request, _: Principal = Depends(allow(PUBLIC))) -> OidcTokenRead:
    sign_in = getattr(request.app.state, "oidc", None)
    if sign_in is None:
        raise NotFound(Msg('统一身份认证 (OpenID Connect) is not configured'),
                       fix=Msg('Sign in with a citybase token, or set CITYBASE_OIDC_ISSUER and CITYBASE_OIDC_AUDIENCE.'))
    token, identity = sign_in.exchange(code=body.code, code_verifier=body.code_verifier,
                                       redirect_uri=body.redirect_uri, nonce=body.nonce)
    return OidcTokenRead(token=token, expires_at=to_shanghai(identity.expires_at))
