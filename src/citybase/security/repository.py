"""Queries of identity and of reading the audit log (the same SQL on every engine). ``audit.py`` keeps the
queries of appending to the chain and walking it, which run in their own transactions under its locks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import column, func, select, table
from sqlalchemy.orm import Session

from citybase.security.models import ApiToken, AuditEntry, User


class SecurityRepository:
    """Every query of users, tokens and audit reads, on one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Any) -> None:
        """Add a new row and flush it (its id is set)."""
        self.session.add(row)
        self.session.flush()

    # --- users

    def user_by_id(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def person_has_account(self, person_id: int) -> bool:
        return self.session.scalar(select(User.id).where(User.person_id == person_id)) is not None

    def user_of_person(self, person_id: int) -> User | None:
        return self.session.scalar(select(User).where(User.person_id == person_id))

    def user_of_entity(self, legal_entity_id: int) -> User | None:
        """The entity's account (the first, when an admin made several)."""
        return self.session.scalar(select(User).where(User.legal_entity_id == legal_entity_id,
                                                      User.roles.contains("citizen")).order_by(User.id).limit(1))

    def referenced_row_exists(self, table_name: str, row_id: int) -> bool:
        """Whether the row a user's foreign key would point at exists (departments, persons, legal entities:
        tables of the domains above security, named only as the keys' targets, never imported)."""
        t = table(table_name, column("id"))
        return self.session.scalar(select(t.c.id).where(t.c.id == row_id)) is not None

    def username_taken(self, username: str) -> bool:
        return self.session.scalar(select(User.id).where(User.username == username)) is not None

    def users(self) -> list[User]:
        return list(self.session.scalars(select(User).order_by(User.id)))

    def count_users(self) -> int:
        return self.session.scalar(select(func.count()).select_from(User)) or 0

    # --- tokens

    def token_by_id(self, token_id: int) -> ApiToken | None:
        return self.session.get(ApiToken, token_id)

    def tokens_of(self, user_id: int) -> list[ApiToken]:
        return list(self.session.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id)))

    def token_and_user(self, token_hash: str) -> tuple[ApiToken, User] | None:
        """The token with this hash and its user, or None."""
        row = self.session.execute(
            select(ApiToken, User).join(User, User.id == ApiToken.user_id).where(ApiToken.token_hash == token_hash)
        ).first()
        return (row[0], row[1]) if row else None

    # --- audit reads

    def audit_entries(self, *, after: int = 0, limit: int = 100, action: str | None = None) -> list[AuditEntry]:
        """Entries after sequence number ``after``, oldest first, at most ``limit``, of one action if given."""
        q = select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(limit)
        if action:
            q = q.where(AuditEntry.action == action)
        return list(self.session.scalars(q))
