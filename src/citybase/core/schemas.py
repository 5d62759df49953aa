"""Shapes shared by every API: pages of results, and the bounded types of what a client sends.

Declare an id, a page or a filter with these types, never a bare ``int`` or ``str``: a bare one lets
a client send 2^63 (SQLite cannot bind it, PostgreSQL's INTEGER stops at 2^31 - 1) or 100 KB of
search text (SQLite refuses LIKE patterns past 50 KB), and both ended as a 500."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from annotated_types import Ge, Le, MaxLen
from pydantic import BaseModel

T = TypeVar("T")

INT32_MAX = 2**31 - 1  # ids and counters are INTEGER columns; PostgreSQL's INTEGER is 32-bit
MAX_PAGE = 100_000  # page x page_size stays far inside any OFFSET the engines take
MAX_PAGE_SIZE = 500
MAX_FILTER_TEXT = 200  # characters of a filter or search text; longer ones match nothing useful

# A row id (path, filter or body): 1 … 2^31 - 1 on every engine, so both engines refuse the same ids.
Id = Annotated[int, Ge(1), Le(INT32_MAX)]
# A count, a sequence number or a bounded number stored in an INTEGER column: 0 … 2^31 - 1.
Count = Annotated[int, Ge(0), Le(INT32_MAX)]
# A signed number stored in an INTEGER column (e.g. a rule's precedence).
Int32 = Annotated[int, Ge(-INT32_MAX - 1), Le(INT32_MAX)]
PageNo = Annotated[int, Ge(1), Le(MAX_PAGE)]
PageSize = Annotated[int, Ge(1), Le(MAX_PAGE_SIZE)]
# Text of a filter or a search, compared with a column (exactly or as a part of it).
FilterText = Annotated[str, MaxLen(MAX_FILTER_TEXT)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    page: int
    page_size: int
