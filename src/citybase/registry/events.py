"""Events the registries publish (through the outbox, in the transaction of the registration). They carry
ids, never personal fields: a consumer that needs the person asks the registry, which masks and audits."""

from __future__ import annotations

from pydantic import BaseModel

PERSON_REGISTERED = "citybase.registry.person_registered"
LEGAL_ENTITY_REGISTERED = "citybase.registry.legal_entity_registered"


class PersonRegistered(BaseModel):
    """A person was entered in the 自然人库."""

    person_id: int
    building_id: int | None


class LegalEntityRegistered(BaseModel):
    """A legal entity was entered in the 法人库 (its USCC is public, so it rides along)."""

    legal_entity_id: int
    uscc: str
    building_id: int | None


EVENTS: dict[str, type[BaseModel]] = {
    PERSON_REGISTERED: PersonRegistered,
    LEGAL_ENTITY_REGISTERED: LegalEntityRegistered,
}
