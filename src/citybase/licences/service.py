"""The licences' promises: a catalogue of types, licences issued and signed, found, verified, revoked, and
every use of one logged for its holder. This is the seam other domains (``services``) call:

* ``list_types`` / ``get_type(key=…)``: the catalogue (keys such as ``business_licence``, ``birth_certificate``);
* ``issue(type_key=…, person_id=… | legal_entity_id=…, fields=…, issuer_department_id=…, application_ref=…)``:
  a signed licence when an approval needs one;
* ``find_valid(type_key=…, person_id=… | legal_entity_id=…)``: what a holder can attach instead of a copy;
* ``use(licence_id=…, by_department_id=…, purpose=…, application_ref=…, consent_ref=…, actor=…)``: the use,
  logged for the holder;
* ``verify(token=…)``: signature, revocation and expiry.

Functions take ``session`` keyword-only and never commit."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from citybase.core.errors import Conflict, InvalidInput, NotFound
from citybase.core.i18n import Msg
from citybase.core.timeutil import SHANGHAI, utcnow
from citybase.kernel import outbox
from citybase.licences import signing
from citybase.licences.catalogue import TYPES
from citybase.licences.events import (
    LICENCE_ISSUED,
    LICENCE_REVOKED,
    LICENCE_USED,
    LicenceIssued,
    LicenceRevoked,
    LicenceUsed,
)
from citybase.licences.identifiers import make_identifier, validate_identifier
from citybase.licences.models import HOLDER_KINDS, Licence, LicenceKey, LicenceType, LicenceUse
from citybase.licences.repository import LicenceRepository
from citybase.registry import service as registry

STATUSES = ("valid", "expired", "revoked")


def today() -> date:
    """Today's date in Shanghai (validity is counted in local days)."""
    return datetime.now(SHANGHAI).date()


def type_fields(t: LicenceType) -> list[dict[str, Any]]:
    """The type's declared fields: [{key, label, label_en, pii}]."""
    return json.loads(t.fields)


def licence_fields(lic: Licence) -> dict[str, Any]:
    return json.loads(lic.fields)


def status_of(lic: Licence, on: date | None = None) -> str:
    """valid, expired (past its expiry date) or revoked."""
    if lic.status == "revoked":
        return "revoked"
    if lic.expires_on is not None and lic.expires_on < (on or today()):
        return "expired"
    return "valid"


# --- types ---

def list_types(*, session: Session, holder_kind: str | None = None) -> list[LicenceType]:
    """Every licence type of the catalogue (or those for persons or for entities), by id."""
    return LicenceRepository(session).types(holder_kind)


def get_type(*, session: Session, key: str) -> LicenceType:
    """The licence type with this key (``business_licence``) or GB/T 36902 code; NotFound otherwise."""
    repo = LicenceRepository(session)
    t = repo.type_by_key(key) or repo.type_by_code(key.upper())
    if t is None:
        raise NotFound(Msg('no licence type {key!r}', key=key), fix=Msg('List the types with GET /api/v1/licences/types.'))
    return t


def seed_types(*, session: Session) -> int:
    """Add the catalogue's types that are missing (each issued by the department the catalogue names, its code
    that department's GB 32100 code and the type's number); returns how many were added. Flushes."""
    repo = LicenceRepository(session)
    depts = {d.short_name: d for d in registry.list_departments(session=session)}
    added = 0
    for key, (number, name, name_en, dept, holder_kind, fields, years) in TYPES.items():
        if repo.type_by_key(key) is not None or dept not in depts:
            continue
        d = depts[dept]
        repo.add(LicenceType(key=key, code=d.code + number, name=name, name_en=name_en, issuer_department_id=d.id,
                             holder_kind=holder_kind, validity_years=years, created_at=utcnow(),
                             fields=json.dumps([{"key": k, "label": zh, "label_en": en, "pii": pii}
                                                for k, zh, en, pii in fields], ensure_ascii=False)))
        added += 1
    return added


# --- keys ---

def signing_keys(*, session: Session) -> signing.SigningKeys:
    """The process's signing keys; the signing key's public half is recorded (published) on first use."""
    keys = signing.load_keys()
    repo = LicenceRepository(session)
    if repo.key(keys.kid) is None:
        pub = keys.public[keys.kid]
        repo.add(LicenceKey(kid=pub.kid, algorithm=signing.ALGORITHM, public_key=signing.b64url(pub.raw),
                            created_at=utcnow()))
    return keys


def published_keys(*, session: Session) -> dict[str, signing.PublicKey]:
    """Every public key that verifies licences: those that have signed (kept after a rotation) and the
    process's own."""
    out = {k.kid: signing.PublicKey.of_raw(signing.unb64url(k.public_key)) for k in LicenceRepository(session).keys()}
    out.update(signing.load_keys().public)
    return out


# --- issuing ---

def _holder(session: Session, kind: str, person_id: int | None, legal_entity_id: int | None) -> tuple[str, str]:
    if kind == "person":
        if person_id is None or legal_entity_id is not None:
            raise InvalidInput(Msg('this licence type is held by a person: give person_id only'),
                               fix=Msg('Send the registry id of the person (GET /api/v1/persons).'), field="person_id")
        p = registry.get_person(session=session, person_id=person_id)
        return p.name, p.id_number
    if legal_entity_id is None or person_id is not None:
        raise InvalidInput(Msg('this licence type is held by a legal entity: give legal_entity_id only'),
                           fix=Msg('Send the registry id of the legal entity (GET /api/v1/legal-entities).'),
                           field="legal_entity_id")
    e = registry.get_entity(session=session, entity_id=legal_entity_id)
    return e.name, e.uscc


def _check_fields(t: LicenceType, fields: dict[str, Any]) -> dict[str, str]:
    declared = [f["key"] for f in type_fields(t)]
    unknown = sorted(set(fields) - set(declared))
    if unknown:
        raise InvalidInput(Msg('{type} declares no field {items}', type=t.name, items=', '.join(unknown)),
                           fix=Msg('Use the fields the type declares: {items}.', items=', '.join(declared)), field="fields")
    missing = [k for k in declared if fields.get(k) in (None, "")]
    if missing:
        raise InvalidInput(Msg('{type} needs the fields {items}', type=t.name, items=', '.join(missing)),
                           fix=Msg('Fill every declared field.'), field="fields")
    return {k: str(fields[k]) for k in declared}


def expiry_of(t: LicenceType, issued_on: date) -> date | None:
    if t.validity_years is None:
        return None
    try:
        return issued_on.replace(year=issued_on.year + t.validity_years)
    except ValueError:  # 29 February
        return issued_on.replace(year=issued_on.year + t.validity_years, day=28)


def content_of(*, identifier: str, t: LicenceType, holder_kind: str, holder_name: str, holder_code: str,
               fields: dict[str, str], issuer_code: str, issuer_name: str, issued_on: date,
               expires_on: date | None) -> dict[str, Any]:
    """What a licence's signature covers (short keys: the QR code stays small)."""
    return {"v": 1, "id": identifier, "type": t.code, "tn": t.name, "hk": holder_kind, "h": holder_name,
            "hc": holder_code, "f": fields, "iss": issuer_code, "isn": issuer_name, "iat": issued_on.isoformat(),
            "exp": expires_on.isoformat() if expires_on else None}


def issue(*, session: Session, type_key: str, person_id: int | None = None, legal_entity_id: int | None = None,
          fields: dict[str, Any], issuer_department_id: int | None = None, application_ref: str | None = None,
          issued_on: date | None = None) -> Licence:
    """Issue a licence of a type to a person or a legal entity of the registry, identified per GB/T 36904 and
    signed (Ed25519); queues ``citybase.licences.issued``. Flushes, never commits."""
    repo = LicenceRepository(session)
    t = get_type(session=session, key=type_key)
    holder_name, holder_code = _holder(session, t.holder_kind, person_id, legal_entity_id)
    values = _check_fields(t, fields)
    dept = registry.get_department_by_id(session=session, department_id=issuer_department_id or t.issuer_department_id)
    on = issued_on or today()
    expires = expiry_of(t, on)
    identifier = make_identifier(t.code, dept.code, f"{on:%Y}{secrets.token_hex(6).upper()}")
    keys = signing_keys(session=session)
    token = keys.sign(content_of(identifier=identifier, t=t, holder_kind=t.holder_kind, holder_name=holder_name,
                                 holder_code=holder_code, fields=values, issuer_code=dept.code, issuer_name=dept.name,
                                 issued_on=on, expires_on=expires))
    lic = Licence(identifier=identifier, type_id=t.id, holder_kind=t.holder_kind, person_id=person_id,
                  legal_entity_id=legal_entity_id, holder_name=holder_name, holder_code=holder_code,
                  fields=json.dumps(values, ensure_ascii=False), issuer_department_id=dept.id, issued_on=on,
                  expires_on=expires, application_ref=application_ref, status="valid", token=token, key_id=keys.kid,
                  created_at=utcnow())
    repo.add(lic)
    outbox.queue(session, LICENCE_ISSUED, LicenceIssued(
        licence_id=lic.id, identifier=identifier, type_key=t.key, person_id=person_id,
        legal_entity_id=legal_entity_id, application_ref=application_ref).model_dump())
    return lic


# --- reading ---

def get_licence(*, session: Session, licence_id: int) -> Licence:
    """The licence with this id; NotFound otherwise."""
    lic = LicenceRepository(session).licence_by_id(licence_id)
    if lic is None:
        raise NotFound(Msg('no licence with id {licence_id}', licence_id=licence_id),
                       fix=Msg('List licences with GET /api/v1/licences.'))
    return lic


def get_by_identifier(*, session: Session, identifier: str) -> Licence:
    """The licence with this GB/T 36904 identifier (its check character checked first); NotFound otherwise."""
    ident = validate_identifier(identifier)
    lic = LicenceRepository(session).licence_by_identifier(ident)
    if lic is None:
        raise NotFound(Msg('no licence {identifier}', identifier=ident), fix=Msg('Check the identifier on the licence.'))
    return lic


def type_of(*, session: Session, licence: Licence) -> LicenceType:
    t = LicenceRepository(session).type_by_id(licence.type_id)
    assert t is not None  # a foreign key
    return t


def list_licences(*, session: Session, type_key: str | None = None, person_id: int | None = None,
                  legal_entity_id: int | None = None, holders: tuple[int | None, int | None] | None = None,
                  status: str | None = None, page: int = 1, page_size: int = 50) -> tuple[list[Licence], int]:
    """One page of licences (by id) matching every filter, and how many match. ``holders`` = (person id,
    entity id) keeps a signed-in holder's own."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(Msg('unknown status {status!r}', status=status), fix=Msg('Use one of: {items}.', items=', '.join(STATUSES)),
                           field="status")
    repo = LicenceRepository(session)
    type_id = get_type(session=session, key=type_key).id if type_key else None
    q = repo.licences_query(type_id=type_id, person_id=person_id, legal_entity_id=legal_entity_id, holders=holders,
                            status=status, today=today())
    return repo.page(q, page, page_size)


def find_valid(*, session: Session, type_key: str | None = None, person_id: int | None = None,
               legal_entity_id: int | None = None) -> list[Licence]:
    """The holder's licences that are valid today (of one type if given), newest first: what an application can
    attach instead of a paper copy."""
    if (person_id is None) == (legal_entity_id is None):
        raise InvalidInput(Msg('give exactly one of person_id and legal_entity_id'), fix=Msg('Name the holder.'))
    type_id = get_type(session=session, key=type_key).id if type_key else None
    return LicenceRepository(session).valid_of_holder(type_id=type_id, person_id=person_id,
                                                      legal_entity_id=legal_entity_id, today=today())


# --- revocation and use ---

def revoke(*, session: Session, licence_id: int, reason: str) -> Licence:
    """Revoke a licence (idempotent) with a reason; queues ``citybase.licences.revoked``. Flushes."""
    lic = get_licence(session=session, licence_id=licence_id)
    if not reason.strip():
        raise InvalidInput(Msg('a revocation needs a reason'), fix=Msg('Say why the licence is revoked.'), field="reason")
    if lic.status != "revoked":
        lic.status, lic.revoked_at, lic.revoke_reason = "revoked", utcnow(), reason.strip()[:200]
        session.flush()
        outbox.queue(session, LICENCE_REVOKED, LicenceRevoked(licence_id=lic.id, identifier=lic.identifier).model_dump())
    return lic


def use(*, session: Session, licence_id: int, by_department_id: int | None, purpose: str,
        application_ref: str | None = None, consent_ref: str | None = None, actor: str) -> LicenceUse:
    """Record that a department used a licence (for which application, with which consent of the holder); a
    revoked or expired licence cannot be used (Conflict). Queues ``citybase.licences.used``. Flushes."""
    lic = get_licence(session=session, licence_id=licence_id)
    st = status_of(lic)
    if st != "valid":
        raise Conflict(Msg('licence {identifier} is {status} and cannot be used', identifier=lic.identifier, status=st),
                       fix=Msg('Ask the holder for a valid licence, or for the material itself.'))
    if by_department_id is not None:
        registry.get_department_by_id(session=session, department_id=by_department_id)
    if not purpose.strip():
        raise InvalidInput(Msg('a use needs a purpose'), fix=Msg('Say what the licence is used for.'), field="purpose")
    u = LicenceUse(licence_id=lic.id, department_id=by_department_id, purpose=purpose.strip()[:200],
                   application_ref=application_ref, consent_ref=consent_ref, actor=actor[:120], used_at=utcnow())
    LicenceRepository(session).add(u)
    outbox.queue(session, LICENCE_USED, LicenceUsed(licence_id=lic.id, use_id=u.id, department_id=by_department_id,
                                                    application_ref=application_ref,
                                                    consent_ref=consent_ref).model_dump())
    return u


def list_uses(*, session: Session, licence_ids: list[int], page: int = 1,
              page_size: int = 50) -> tuple[list[LicenceUse], int]:
    """One page of the uses of these licences, newest first, and how many there are."""
    repo = LicenceRepository(session)
    return repo.page(repo.uses_query(licence_ids), page, page_size)


def holder_licence_ids(*, session: Session, person_id: int | None, legal_entity_id: int | None) -> list[int]:
    """The ids of every licence a holder (a person, their firm) holds."""
    repo = LicenceRepository(session)
    q = repo.licences_query(holders=(person_id, legal_entity_id))
    return [lic.id for lic in session.scalars(q)]


# --- verification ---

@dataclass(frozen=True)
class Verification:
    """A token checked: its signature (offline part) and, when the register knows it, its status today."""

    signature: str  # valid, malformed, unknown_key, bad_signature
    content: dict[str, Any] | None
    kid: str | None
    registered: bool
    status: str | None  # valid / expired / revoked, None when not registered
    revoked_at: datetime | None = None
    revoke_reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.signature == "valid" and self.status == "valid"


def verify_offline(token: str, keys: dict[str, signing.PublicKey]) -> signing.Checked:
    """The signature check alone, with published keys, no database (what the CLI and the page do)."""
    return signing.verify_token(token, keys)


def verify(*, session: Session, token: str) -> Verification:
    """Check a token's signature with the published keys, then its revocation and expiry in the register."""
    checked = signing.verify_token(token, published_keys(session=session))
    if not checked.ok or not checked.content:
        return Verification(checked.reason, None, checked.kid, False, None)
    ident = str(checked.content.get("id", ""))
    lic = LicenceRepository(session).licence_by_identifier(ident)
    if lic is None:
        return Verification("valid", checked.content, checked.kid, False, None)
    return Verification("valid", checked.content, checked.kid, True, status_of(lic), lic.revoked_at, lic.revoke_reason)


def qr_svg(token: str, base_url: str) -> str:
    """The 亮证 QR code: a link to the verifier page with the token in its fragment (never sent to a server)."""
    import io

    import segno

    out = io.BytesIO()
    # a standalone SVG document (served as an image), white behind the modules and the standard 4-module margin
    segno.make(verifier_link(token, base_url), error="m").save(out, kind="svg", scale=4, border=4, light="#fff")
    return out.getvalue().decode("utf-8")


def verifier_link(token: str, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/licences/verify#{token}"


def holder_kinds() -> tuple[str, ...]:
    return HOLDER_KINDS
