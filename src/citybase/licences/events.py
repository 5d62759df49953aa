"""Events the licences publish (through the outbox, in the transaction of the change). They carry ids and
codes, never personal fields: a consumer that needs the holder asks the registry."""

from __future__ import annotations

from pydantic import BaseModel

LICENCE_ISSUED = "citybase.licences.issued"
LICENCE_REVOKED = "citybase.licences.revoked"
LICENCE_USED = "citybase.licences.used"


class LicenceIssued(BaseModel):
    """A licence was issued and signed."""

    licence_id: int
    identifier: str
    type_key: str
    person_id: int | None
    legal_entity_id: int | None
    application_ref: str | None


class LicenceRevoked(BaseModel):
    """A licence was revoked; offline verifiers still see a good signature, online checks see the revocation."""

    licence_id: int
    identifier: str


class LicenceUsed(BaseModel):
    """A department used a licence (with the holder's consent) instead of asking for a paper copy."""

    licence_id: int
    use_id: int
    department_id: int | None
    application_ref: str | None
    consent_ref: str | None


EVENTS: dict[str, type[BaseModel]] = {
    LICENCE_ISSUED: LicenceIssued,
    LICENCE_REVOKED: LicenceRevoked,
    LICENCE_USED: LicenceUsed,
}
