"""统一身份认证, the composition root's half: which citybase account an identity of the city's identity
provider is. Security verifies the token (``security.oidc``) but sits below the registry and may not look
persons up; the API, which composes both, gives it this resolver.

The person is the registry person with the token's ID number; their account is made on first sign-in as a
``citizen`` account linked to them. With a firm's credit code in the token (``CITYBASE_OIDC_FIRM_CLAIM``) the
caller signs in for that legal entity, when the registry names the person as its legal representative."""

from __future__ import annotations

from sqlalchemy.orm import Session

from citybase.core.errors import Unauthenticated
from citybase.core.i18n import Msg
from citybase.registry import service as registry
from citybase.security import service as security
from citybase.security.models import User
from citybase.security.oidc import OidcIdentity, OidcSignIn, oidc_sign_in


def registry_account(session: Session, identity: OidcIdentity) -> tuple[User, bool]:
    """The account of the identity's registry person (or of the firm they represent); (user, created)."""
    persons, _ = registry.list_persons(session=session, id_number=identity.id_number, page_size=1)
    if not persons:
        raise Unauthenticated(
            Msg('the ID number you signed in with is not in the city\'s population registry'),
            fix=Msg('Register at a service window (综合窗口) first, or sign in with a citybase token.'))
    person = persons[0]
    if identity.uscc is None:
        return security.account_for_person(session=session, person_id=person.id)
    entities, _ = registry.list_entities(session=session, uscc=identity.uscc, page_size=1)
    if not entities or entities[0].legal_rep_id_number != person.id_number:
        raise Unauthenticated(
            Msg('the registry does not name you as the legal representative of the firm you signed in for'),
            fix=Msg('Sign in without the firm, or ask the market regulator to update the legal entity registry.'))
    return security.account_for_entity(session=session, legal_entity_id=entities[0].id)


def identity_provider() -> OidcSignIn | None:
    """The deployment's OIDC seam from CITYBASE_OIDC_* (None while it is off), resolving through the registry."""
    return oidc_sign_in(registry_account)
