"""A department's part of an application as ONE table (like ``ops/workflow/states.py``): its states, and for
each action the states it is allowed from, the states it leads to, who may take it and what it does.

The service checks every step against it (``check``), the schemas take their status enum from it, the router
builds one route per action from it (``POST /api/v1/services/applications/{id}/parts/{part_id}/<action>``) and
serves it at ``GET /api/v1/services/workflow``; the pages read it there. Nothing else spells a part's status."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class PartStatus(StrEnum):
    """One department's part: 待受理 → 受理 → 审查 → 决定 → 办结, with 补正 and the side ends."""

    WAITING = "waiting"  # waits for the items it depends on (户口 before 医保)
    PENDING = "pending"  # 待受理: with the department
    ACCEPTED = "accepted"  # 受理: the committed time runs
    CORRECTION = "correction"  # 补正: the applicant is asked to correct; the clock stands still
    REVIEWING = "reviewing"  # 审查
    APPROVED = "approved"  # 决定: 准予
    REFUSED = "refused"  # 决定: 不予
    COMPLETED = "completed"  # 办结 (its decision says how)
    NOT_ACCEPTED = "not_accepted"  # 不予受理
    VOID = "void"  # an item it depends on was refused or not accepted: nothing to do


S = PartStatus
OPEN: tuple[PartStatus, ...] = (S.WAITING, S.PENDING, S.ACCEPTED, S.CORRECTION, S.REVIEWING, S.APPROVED, S.REFUSED)
TERMINAL: tuple[PartStatus, ...] = (S.COMPLETED, S.NOT_ACCEPTED, S.VOID)
ANY = OPEN + TERMINAL
CLOCK_RUNS: tuple[PartStatus, ...] = (S.ACCEPTED, S.REVIEWING)  # where a deadline can be missed

CLERK = ("clerk", "admin")
APPLICANT = ("citizen", "window_clerk")  # the applicant online, or a window clerk at the counter for them


@dataclass(frozen=True)
class Transition:
    """One action on a part: where it is allowed, where it leads (None: stays), who may take it over the API."""

    allowed_from: tuple[PartStatus, ...] | None
    leads_to: tuple[PartStatus, ...] | None
    roles: tuple[str, ...]  # () = the system only (no API route)
    summary: str
    needs_reason: bool = False


TRANSITIONS: dict[str, Transition] = {
    "release": Transition((S.WAITING,), (S.PENDING,), (), "the items it depends on are done: to the department"),
    "accept": Transition((S.PENDING,), (S.ACCEPTED,), CLERK, "受理: the committed time starts"),
    "not-accept": Transition((S.PENDING,), (S.NOT_ACCEPTED,), CLERK, "不予受理 with a reason", needs_reason=True),
    "request-correction": Transition((S.ACCEPTED, S.REVIEWING), (S.CORRECTION,), CLERK,
                                     "补正: ask the applicant for a correction; the clock stops", needs_reason=True),
    "correct": Transition((S.CORRECTION,), (S.ACCEPTED, S.REVIEWING), APPLICANT,
                          "the applicant corrects (form fields, materials); the clock runs again"),
    "review": Transition((S.ACCEPTED,), (S.REVIEWING,), CLERK, "审查 starts"),
    "approve": Transition((S.REVIEWING,), (S.APPROVED,), CLERK, "决定: 准予"),
    "refuse": Transition((S.REVIEWING,), (S.REFUSED,), CLERK, "决定: 不予, with a reason", needs_reason=True),
    "complete": Transition((S.APPROVED, S.REFUSED), (S.COMPLETED,), CLERK, "办结: the result is delivered"),
    "void": Transition((S.WAITING,), (S.VOID,), (), "an item it depends on failed"),
    "supervise": Transition(CLOCK_RUNS, None, (), "督办: an overdue part is raised to its department"),
}


def allowed_from(action: str) -> tuple[PartStatus, ...]:
    """The states ``action`` may be taken from."""
    return TRANSITIONS[action].allowed_from or ANY


def api_actions() -> dict[str, Transition]:
    """The actions people take over the API."""
    return {a: t for a, t in TRANSITIONS.items() if t.roles}


def description(action: str) -> str:
    """The OpenAPI description of an action's route, read from the table."""
    t = TRANSITIONS[action]
    came = " or ".join(allowed_from(action))
    goes = "the same state" if t.leads_to is None else " or ".join(t.leads_to)
    return f"{t.summary}. Allowed when the part is {came}; leads to {goes}. Roles: {', '.join(t.roles)}."


def as_json() -> dict[str, Any]:
    """The table as the API serves it to clients and pages."""
    return {
        "states": [s.value for s in PartStatus], "open": [s.value for s in OPEN],
        "terminal": [s.value for s in TERMINAL],
        "actions": {a: {"from": [s.value for s in allowed_from(a)],
                        "to": None if t.leads_to is None else [s.value for s in t.leads_to],
                        "roles": list(t.roles), "summary": t.summary, "needs_reason": t.needs_reason}
                    for a, t in TRANSITIONS.items()},
    }
