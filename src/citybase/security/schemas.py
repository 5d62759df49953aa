"""API shapes of identity and audit; ``of`` builds each from the domain's rows."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from citybase.core.schemas import Id
from citybase.core.timeutil import to_shanghai
from citybase.security.models import ApiToken, AuditEntry, User


def _t(v: datetime | None) -> datetime | None:
    return to_shanghai(v) if v else None


class UserRead(BaseModel):
    id: int
    username: str
    display_name: str
    department_id: int | None
    person_id: int | None = Field(None, description="the registry person this account is (统一身份认证)")
    legal_entity_id: int | None = Field(None, description="the legal entity this account acts for (a firm)")
    roles: list[str]
    active: bool

    @classmethod
    def of(cls, u: User) -> UserRead:
        return cls(id=u.id, username=u.username, display_name=u.display_name, department_id=u.department_id,
                   person_id=u.person_id, legal_entity_id=u.legal_entity_id,
                   roles=[r for r in u.roles.split(",") if r], active=u.active)


class UserCreate(BaseModel):
    username: str = Field(..., min_length=2, max_length=64, pattern=r"^[a-zA-Z0-9_.\-]+$")
    display_name: str = Field(..., min_length=1, max_length=64)
    roles: list[str] = Field(..., min_length=1)
    department_id: Id | None = None
    person_id: Id | None = Field(None, description="link the account to this registry person (a citizen)")
    legal_entity_id: Id | None = Field(None, description="the legal entity the account acts for (a firm)")


class TokenCreate(BaseModel):
    name: str = Field("default", max_length=64)
    expires_at: datetime | None = None


class TokenRead(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, t: ApiToken) -> TokenRead:
        return cls(id=t.id, name=t.name, prefix=t.prefix, created_at=to_shanghai(t.created_at),
                   expires_at=_t(t.expires_at), revoked_at=_t(t.revoked_at))


class TokenIssued(TokenRead):
    token: str = Field(..., description="the secret; shown once, store it now")

    @classmethod
    def issued(cls, t: ApiToken, secret: str) -> TokenIssued:
        return cls(**TokenRead.of(t).model_dump(), token=secret)


class AuditRead(BaseModel):
    seq: int
    at: datetime
    actor: str
    roles: str
    action: str
    subject_type: str
    subject_ids: str
    fields: str
    request_id: str
    hash: str

    @classmethod
    def of(cls, e: AuditEntry) -> AuditRead:
        return cls(seq=e.seq, at=to_shanghai(e.at), actor=e.actor, roles=e.roles, action=e.action,
                   subject_type=e.subject_type, subject_ids=e.subject_ids, fields=e.fields,
                   request_id=e.request_id, hash=e.hash)


class AuditVerifyRead(BaseModel):
    ok: bool
    checked: int
    first_broken_seq: int | None
    reason: str | None


class OidcConfigRead(BaseModel):
    """Whether 统一身份认证 (OpenID Connect) is on, and what the login page needs to start it."""

    enabled: bool
    issuer: str | None = None
    client_id: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    scope: str | None = None


class OidcCodeExchange(BaseModel):
    """An authorization code the identity provider sent back to the login page, with its PKCE verifier."""

    code: str = Field(min_length=1, max_length=2048)
    code_verifier: str = Field(min_length=43, max_length=128, pattern=r"^[A-Za-z0-9._~-]+$")
    redirect_uri: str = Field(min_length=1, max_length=2048, pattern=r"^https?://")
    nonce: str | None = Field(None, max_length=256, description="the nonce the page sent to the issuer; the ID "
                                                                "token must carry it")


class OidcTokenRead(BaseModel):
    """The verified ID token, to send as the bearer token, and when it expires."""

    token: str
    expires_at: datetime
