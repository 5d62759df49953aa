"""One check of the text every route receives, before any handler or database sees it.

JSON has no NaN or Infinity and Python's parser accepts both; a lone UTF-16 surrogate ("\\ud800")
is not text and cannot be encoded again; PostgreSQL cannot store a NUL character (SQLite can, so
refusing it everywhere keeps both engines alike). Declared once, in api/app.py, as a dependency of the
/api/v1 router and the pages, so a new route there cannot forget it. Open311 checks its own parameters
and answers in the spec's terms (a NUL in an id there is an unknown id, 404)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from citybase.core.errors import InvalidInput

FIX = ("Send finite numbers and plain UTF-8 text: no NaN or Infinity, no NUL character (\\u0000), "
       "no unpaired surrogate (\\ud800-\\udfff).")


def _text_problem(s: str) -> str | None:
    if "\x00" in s:
        return "contains control characters (a NUL, \\u0000), which cannot be stored"
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired UTF-16 surrogate, which is not text"
    return None


def _json_problems(value: Any) -> list[tuple[str, str]]:
    """(where, problem) for every non-finite number and invalid text in a parsed JSON document."""
    out: list[tuple[str, str]] = []
    stack: list[tuple[tuple[str, ...], Any]] = [((), value)]
    while stack and len(out) < 10:
        path, v = stack.pop()
        where = f"body parameter '{'.'.join(path)}'" if path else "body"
        if isinstance(v, float) and not math.isfinite(v):
            out.append((where, "is not a finite number (JSON has no NaN or Infinity)"))
        elif isinstance(v, str):
            if problem := _text_problem(v):
                out.append((where, problem))
        elif isinstance(v, dict):
            for k, item in v.items():
                if problem := _text_problem(k):
                    out.append((f"a key of {where}", problem))
                else:
                    stack.append(((*path, k), item))
        elif isinstance(v, list):
            stack.extend(((*path, str(i)), item) for i, item in enumerate(v))
    return out


async def refuse_invalid_input(request: Request) -> None:
    """Refuse (422) a request whose path, query, JSON or form holds a NaN, an Infinity, a NUL or a lone
    surrogate, naming each place; runs before the route's own validation."""
    problems: list[tuple[str, str]] = []
    for name, value in request.path_params.items():
        if isinstance(value, str) and (p := _text_problem(value)):
            problems.append((f"path parameter '{name}'", p))
    for name, value in request.query_params.multi_items():
        if p := _text_problem(name) or _text_problem(value):
            problems.append((f"query parameter '{name.replace(chr(0), '')}'", p))
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json" or ctype.endswith("+json"):
        try:
            document = await request.json()
        except ValueError:
            document = None  # malformed JSON: the route's own parser answers it
        problems += _json_problems(document)
    elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form()
        except Exception:  # noqa: BLE001 - a malformed form is the route's to answer, in its own format
            form = None
        for name, value in form.multi_items() if form is not None else ():
            if not isinstance(value, UploadFile) and (p := _text_problem(name) or _text_problem(value)):
                problems.append((f"form field '{name.replace(chr(0), '')}'", p))
    if problems:
        raise InvalidInput("; ".join(f"{w} {p}" for w, p in problems), fix=FIX,
                           errors=[{"where": w, "problem": p} for w, p in problems])
