"""Filters on personal fields: only for callers who see those fields in full, and every use audited.

A caller who sees ``310104********0008`` must not confirm a guess of the full number by filtering,
sorting or counting on it, so such filters are refused (403) for anyone the field is masked for."""

from __future__ import annotations

from fastapi import Request

from citybase.core.errors import Forbidden
from citybase.core.i18n import Msg
from citybase.security import audit
from citybase.security.deps import request_id
from citybase.security.service import Principal


def used_filters(**filters: object) -> list[str]:
    """The names of the filters given a value (None and "" are not given)."""
    return [name for name, value in filters.items() if value not in (None, "")]


def require_full_sight(p: Principal, used: list[str], *, sees_in_full: bool, who: str,
                       fix: str = "Filter on something that is not personal, or ask someone who sees it in full.") -> None:
    """Forbidden unless the caller sees the personal fields it filters on in full (``who`` names them)."""
    if used and not sees_in_full:
        raise Forbidden(
            Msg('filtering on {items} is open only to roles that see {value} in full ({who}); your role(s) {value2} see them masked', items=', '.join(used), value='it' if len(used) == 1 else 'them', who=who, value2=', '.join(sorted(p.roles)) or 'none'),
            fix=fix,
            restricted_filters=used)


def audit_filter(request: Request, p: Principal, *, subject_type: str, used: list[str], ids: list[int]) -> None:
    """Record that personal fields were searched on, and what matched (committed at once); no-op unused."""
    if used:
        audit.record(request.app.state.engine, actor=p.actor, roles=",".join(sorted(p.roles)),
                     action=f"search.{subject_type}.by_personal_field", subject_type=subject_type, subject_ids=ids,
                     fields=used, request_id=request_id(request))
