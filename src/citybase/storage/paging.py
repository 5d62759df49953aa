"""Paging of ORM selects: one COUNT and one LIMIT/OFFSET query."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session


def page_of(session: Session, q: Select, page: int, page_size: int) -> tuple[list[Any], int]:
    """Rows of the 1-based ``page`` and the total count of the query."""
    total = session.scalar(select(func.count()).select_from(q.order_by(None).subquery())) or 0
    rows = list(session.scalars(q.limit(page_size).offset((page - 1) * page_size)))
    return rows, total
