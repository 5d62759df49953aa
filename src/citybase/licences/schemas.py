"""API shapes of the licences. A holder sees their own licences in full; staff who do not see personal data
in full get the holder and the type's personal fields masked."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from citybase.core.masking import mask_id_number, mask_name
from citybase.core.schemas import Id
from citybase.licences.models import Licence, LicenceType, LicenceUse

LICENCE_PII = ["holder_name", "holder_code", "fields"]
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_IDNO = re.compile(r"\d{17}[\dX]")


def mask_value(value: str) -> str:
    """A personal field's value masked by its look: an ID number, a date, a name, or any other text."""
    if _IDNO.fullmatch(value):
        return mask_id_number(value) or ""
    if _DATE.fullmatch(value):
        return value[:4] + "-**-**"
    if len(value) <= 4:
        return mask_name(value) or ""
    return value[:3] + "*" * min(8, len(value) - 3)


class LicenceFieldRead(BaseModel):
    key: str
    label: str
    label_en: str
    pii: bool


class LicenceTypeRead(BaseModel):
    id: int
    key: str
    code: str = Field(description="GB/T 36902 type code: the defining department's GB 32100 code and 3 digits")
    name: str
    name_en: str
    issuer_department_id: int
    holder_kind: Literal["person", "entity"]
    fields: list[LicenceFieldRead]
    validity_years: int | None = Field(description="None: long-term (长期有效)")

    @classmethod
    def of(cls, t: LicenceType) -> LicenceTypeRead:
        return cls(id=t.id, key=t.key, code=t.code, name=t.name, name_en=t.name_en,
                   issuer_department_id=t.issuer_department_id, holder_kind=t.holder_kind,  # type: ignore[arg-type]
                   fields=[LicenceFieldRead(**f) for f in json.loads(t.fields)], validity_years=t.validity_years)


class LicenceRead(BaseModel):
    id: int
    identifier: str = Field(description="GB/T 36904 identifier (证照标识), with its ISO 7064 MOD 37,36 check character")
    type_key: str
    type_code: str
    type_name: str
    holder_kind: Literal["person", "entity"]
    person_id: int | None
    legal_entity_id: int | None
    holder_name: str
    holder_code: str
    fields: dict[str, str]
    issuer_department_id: int
    issued_on: date
    expires_on: date | None
    status: Literal["valid", "expired", "revoked"]
    revoked_at: datetime | None
    revoke_reason: str | None
    application_ref: str | None
    key_id: str
    masked: bool

    @classmethod
    def of(cls, lic: Licence, t: LicenceType, *, status: str, masked: bool) -> LicenceRead:
        fields: dict[str, str] = json.loads(lic.fields)
        if masked:
            pii = {f["key"] for f in json.loads(t.fields) if f["pii"]}
            fields = {k: mask_value(v) if k in pii else v for k, v in fields.items()}
        person = lic.holder_kind == "person"
        return cls(id=lic.id, identifier=lic.identifier, type_key=t.key, type_code=t.code, type_name=t.name,
                   holder_kind=lic.holder_kind,  # type: ignore[arg-type]
                   person_id=lic.person_id, legal_entity_id=lic.legal_entity_id,
                   holder_name=(mask_name(lic.holder_name) or "") if masked and person else lic.holder_name,
                   holder_code=(mask_id_number(lic.holder_code) or "") if masked and person else lic.holder_code,
                   fields=fields, issuer_department_id=lic.issuer_department_id, issued_on=lic.issued_on,
                   expires_on=lic.expires_on, status=status,  # type: ignore[arg-type]
                   revoked_at=lic.revoked_at, revoke_reason=lic.revoke_reason, application_ref=lic.application_ref,
                   key_id=lic.key_id, masked=masked)


class LicenceIssue(BaseModel):
    type_key: str = Field(..., min_length=1, max_length=40, description="the type's key or GB/T 36902 code")
    person_id: Id | None = None
    legal_entity_id: Id | None = None
    fields: dict[str, str] = Field(..., description="every field the type declares")
    issuer_department_id: Id | None = Field(None, description="default: the type's issuing department")
    application_ref: str | None = Field(None, max_length=64)


class LicenceRevoke(BaseModel):
    reason: str = Field(..., min_length=1, max_length=200)


class LicenceUseCreate(BaseModel):
    purpose: str = Field(..., min_length=1, max_length=200)
    application_ref: str | None = Field(None, max_length=64)
    consent_ref: str | None = Field(None, max_length=64, description="the holder's consent to this use")


class LicenceUseRead(BaseModel):
    id: int
    licence_id: int
    department_id: int | None
    department_name: str | None
    purpose: str
    application_ref: str | None
    consent_ref: str | None
    actor: str
    used_at: datetime

    @classmethod
    def of(cls, u: LicenceUse, departments: dict[int, str]) -> LicenceUseRead:
        return cls(id=u.id, licence_id=u.licence_id, department_id=u.department_id,
                   department_name=departments.get(u.department_id) if u.department_id else None, purpose=u.purpose,
                   application_ref=u.application_ref, consent_ref=u.consent_ref, actor=u.actor, used_at=u.used_at)


class LicenceToken(BaseModel):
    token: str = Field(description="CBL1.<kid>.<payload>.<Ed25519 signature>, verifiable offline")
    link: str = Field(description="the verifier page with the token in its fragment (what the QR code holds)")


class VerifyRequest(BaseModel):
    token: str = Field(..., min_length=1, max_length=8000, description="a token, or a verifier link holding one")


class VerifyResult(BaseModel):
    ok: bool = Field(description="signature good and the licence valid today")
    signature: Literal["valid", "malformed", "unknown_key", "bad_signature"]
    kid: str | None
    registered: bool = Field(description="the register knows the licence")
    status: Literal["valid", "expired", "revoked"] | None
    revoked_at: datetime | None = None
    revoke_reason: str | None = None
    content: dict[str, Any] | None = Field(None, description="what the signature covers")


class PublicKeyRead(BaseModel):
    kid: str
    alg: Literal["Ed25519"]
    x: str = Field(description="the raw 32-byte public key, base64url")
