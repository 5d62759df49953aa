"""Every query of the catalogue (categories and responsibility rules); the same SQL on both engines."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citybase.ops.catalogue.models import Category, RoutingRule


class CatalogueRepository:
    """Categories and rules of one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def count_categories(self) -> int:
        """How many categories there are (active or not)."""
        return self.session.scalar(select(func.count()).select_from(Category)) or 0

    def category(self, code: str) -> Category | None:
        """The category with this code, active or not."""
        return self.session.scalar(select(Category).where(Category.code == code))

    def categories(self, *, include_inactive: bool = False) -> list[Category]:
        """Categories by code."""
        q = select(Category).order_by(Category.code)
        if not include_inactive:
            q = q.where(Category.active.is_(True))
        return list(self.session.scalars(q))

    def category_names(self) -> dict[str, str]:
        """Every category's name by code (inactive ones too)."""
        return {c.code: c.name for c in self.session.scalars(select(Category))}

    def active_rules(self) -> list[RoutingRule]:
        """The rules not retired, oldest first."""
        return list(self.session.scalars(select(RoutingRule).where(RoutingRule.retired_at.is_(None))
                                         .order_by(RoutingRule.id)))

    def rules_version(self) -> tuple[int, int, int]:
        """(highest id, count, highest precedence) of the active rules: changes whenever a rule is added or retired."""
        return tuple(self.session.execute(select(func.max(RoutingRule.id), func.count(),
                                                 func.max(RoutingRule.precedence))
                                          .where(RoutingRule.retired_at.is_(None))).one())

    def rule(self, rule_id: int) -> RoutingRule | None:
        """The rule with this id, retired or not."""
        return self.session.get(RoutingRule, rule_id)
