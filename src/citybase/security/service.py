"""Users and bearer tokens. Tokens are random secrets; only their SHA-256 is stored.

Functions take ``session`` keyword-only (``authenticate`` positionally too, as the access dependencies call
it) and never commit: the request, the CLI command or the demo loader does."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from citybase.core.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from citybase.core.i18n import Msg
from citybase.core.timeutil import as_utc, utcnow
from citybase.security.models import ApiToken, AuditEntry, User
from citybase.security.repository import SecurityRepository
from citybase.security.roles import PII_ROLES, check_roles

TOKEN_PREFIX = "cb_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: anonymous when user_id is None."""

    user_id: int | None
    username: str
    roles: frozenset[str]
    department_id: int | None = None
    person_id: int | None = None  # the registry person this account is (a citizen, a firm's representative)
    legal_entity_id: int | None = None  # the legal entity this account acts for (a firm's account)

    @property
    def sees_pii(self) -> bool:
        """Whether the caller's role sees personal fields in full."""
        return bool(self.roles & PII_ROLES)

    @property
    def actor(self) -> str:
        """How the audit log and the timelines name the caller."""
        return f"user:{self.user_id}:{self.username}" if self.user_id else "anonymous"


ANONYMOUS = Principal(None, "anonymous", frozenset())


def hash_token(secret: str) -> str:
    """The SHA-256 (hex) of a token's secret, as stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_user(*, session: Session, username: str, display_name: str, roles: list[str],
                department_id: int | None = None, person_id: int | None = None,
                legal_entity_id: int | None = None) -> User:
    """Add a user (flushes, does not commit); Conflict if the username is taken or the person already has an
    account. ``person_id``/``legal_entity_id`` link the account to the registry (the caller checks they exist)."""
    try:
        check_roles(roles)
    except ValueError as exc:
        raise InvalidInput(str(exc), fix=Msg('Use only the listed roles.')) from None
    repo = SecurityRepository(session)
    if repo.username_taken(username):
        raise Conflict(Msg('username {username!r} is taken', username=username), fix=Msg('Choose another username.'))
    for name, table_name, value in (("department_id", "departments", department_id),
                                    ("person_id", "persons", person_id),
                                    ("legal_entity_id", "legal_entities", legal_entity_id)):
        if value is not None and not repo.referenced_row_exists(table_name, value):
            raise InvalidInput(Msg('{field} {value} does not exist', field=name, value=value),
                               fix=Msg('Use the id of an existing row (GET /api/v1/registry/...).'))
    if person_id is not None and repo.person_has_account(person_id):
        raise Conflict(Msg('person {person_id} already has an account', person_id=person_id),
                       fix=Msg('Sign in with that account, or link this one to another person.'))
    user = User(username=username, display_name=display_name, roles=",".join(roles),
                department_id=department_id, person_id=person_id, legal_entity_id=legal_entity_id,
                active=True, created_at=utcnow())
    repo.add(user)
    return user


def issue_token(*, session: Session, user: User, name: str = "default",
                expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """A new token for the user (flushed); the secret is returned once and never stored."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, token_hash=hash_token(secret), prefix=secret[:10], name=name,
                     created_at=utcnow(), expires_at=expires_at)
    SecurityRepository(session).add(token)
    return token, secret


def revoke_token(*, session: Session, token_id: int, user_id: int | None = None) -> ApiToken:
    """Mark a token revoked (idempotent); NotFound if there is none with this id (of this user, if given)."""
    token = SecurityRepository(session).token_by_id(token_id)
    if user_id is not None and (token is None or token.user_id != user_id):
        raise NotFound(Msg('user {user_id} has no token {token_id}', user_id=user_id, token_id=token_id),
                       fix=Msg('List tokens with GET /api/v1/users/{{id}}/tokens.'))
    if token is None:
        raise NotFound(Msg('no token with id {token_id}', token_id=token_id), fix=Msg('List tokens with GET /api/v1/users/{{id}}/tokens.'))
    token.revoked_at = token.revoked_at or utcnow()
    return token


def authenticate(session: Session, secret: str) -> Principal:
    """The principal a bearer secret stands for; Unauthenticated if unknown, revoked, expired or inactive."""
    fix = "Send 'Authorization: Bearer <token>' with a valid token; ask an admin for a new one."
    row = SecurityRepository(session).token_and_user(hash_token(secret))
    if row is None:
        raise Unauthenticated(Msg('the bearer token is not known'), fix=fix)
    token, user = row
    if token.revoked_at is not None:
        raise Unauthenticated(Msg('the bearer token has been revoked'), fix=fix)
    if token.expires_at is not None and as_utc(token.expires_at) <= utcnow():
        raise Unauthenticated(Msg('the bearer token has expired'), fix=fix)
    if not user.active:
        raise Unauthenticated(Msg('the user is deactivated'), fix=Msg('Ask an admin to reactivate the account.'))
    return principal_of(user)


def principal_of(user: User) -> Principal:
    """The principal a user's account stands for."""
    return Principal(user.id, user.username, frozenset(r for r in user.roles.split(",") if r), user.department_id,
                     user.person_id, user.legal_entity_id)


def _create_once(session: Session, find: Callable[[], User | None], **fields: Any) -> tuple[User, bool]:
    """The account ``find`` gives, or a new one made with ``fields``: (user, created). Two first sign-ins at
    once: the loser gets Conflict or IntegrityError (the unique keys), and the caller rolls back and asks
    again, when ``find`` sees the winner's."""
    user = find()
    if user is not None:
        return user, False
    return create_user(session=session, **fields), True


def account_for_person(*, session: Session, person_id: int, display_name: str = "市民") -> tuple[User, bool]:
    """统一身份认证: the account linked to a registry person, made as a ``citizen`` account on first sign-in;
    (user, created). The caller has checked that the person exists."""
    repo = SecurityRepository(session)
    return _create_once(session, lambda: repo.user_of_person(person_id), username=f"oidc-person-{person_id}",
                        display_name=display_name, roles=["citizen"], person_id=person_id)


def account_for_entity(*, session: Session, legal_entity_id: int,
                       display_name: str = "企业用户") -> tuple[User, bool]:
    """统一身份认证: the account acting for a legal entity, signed in by its legal representative (the
    caller has checked that the registry names the person so; the audit log names who signed in); made on
    first sign-in as a ``citizen`` account of the entity, not linked to the representative's person, who
    keeps an account of their own (a person has one account: ``users.person_id`` is unique)."""
    repo = SecurityRepository(session)
    return _create_once(session, lambda: repo.user_of_entity(legal_entity_id),
                        username=f"oidc-entity-{legal_entity_id}", display_name=display_name, roles=["citizen"],
                        legal_entity_id=legal_entity_id)


def list_users(*, session: Session) -> list[User]:
    """Every user, by id."""
    return SecurityRepository(session).users()


def get_user(*, session: Session, user_id: int) -> User:
    """The user with this id; NotFound otherwise."""
    user = SecurityRepository(session).user_by_id(user_id)
    if user is None:
        raise NotFound(Msg('no user with id {user_id}', user_id=user_id), fix=Msg('List users with GET /api/v1/users.'))
    return user


def user_tokens(*, session: Session, user_id: int) -> list[ApiToken]:
    """The user's tokens (revoked and expired ones too), by id; NotFound for an unknown user."""
    get_user(session=session, user_id=user_id)
    return SecurityRepository(session).tokens_of(user_id)


def count_users(*, session: Session) -> int:
    """How many users there are."""
    return SecurityRepository(session).count_users()


def audit_entries(*, session: Session, after: int = 0, limit: int = 100, action: str | None = None) -> list[AuditEntry]:
    """Audit entries after sequence number ``after``, oldest first, at most ``limit``, of one action if given."""
    return SecurityRepository(session).audit_entries(after=after, limit=limit, action=action)
