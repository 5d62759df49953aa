"""Text matching that means what the user typed: LIKE's wildcards in a search are plain characters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement

ESCAPE = "/"


def escape_like(text: str) -> str:
    """``text`` with LIKE's wildcards (% and _) and the escape character made literal (use ESCAPE)."""
    return text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")


def contains(column: Any, text: str) -> ColumnElement[bool]:
    """``column`` holds ``text`` somewhere, % and _ included as themselves (``?name=%`` finds names with a %)."""
    return column.like(f"%{escape_like(text)}%", escape=ESCAPE)


def startswith(column: Any, text: str) -> ColumnElement[bool]:
    """``column`` begins with ``text``, wildcards taken literally."""
    return column.like(f"{escape_like(text)}%", escape=ESCAPE)
