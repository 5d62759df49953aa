"""The workflow of an incident as ONE table: its states, and for each action the states it is allowed
from and the states it leads to (after Signalen's ``ALLOWED_STATUS_CHANGES``).

The service checks a step against it (``check``), the schemas take their status enum from it, the API
builds one route per action from it and serves it at ``GET /api/v1/ops/workflow`` (the pages read it
there instead of repeating the status names), and the OpenAPI summary of each action says where it goes.
Nothing else spells a status."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """An incident's state: 受理 → 立案 → 派遣 → 处置 → 核查 → 结案, and the ends of the side paths."""

    RECEIVED = "received"  # 受理: taken in, waiting for a dispatcher (or the system) to register it
    REGISTERED = "registered"  # 立案: category and priority confirmed, the deadline clock runs
    DISPATCHED = "dispatched"  # 派遣: tasks sent to the departments
    HANDLING = "handling"  # 处置: a department accepted its task
    VERIFYING = "verifying"  # 核查: every task done, to be checked on site
    CLOSED = "closed"  # 结案
    REJECTED = "rejected"  # 不予立案
    MERGED = "merged"  # folded into an earlier incident (its reporters follow that one)


S = Status
OPEN: tuple[Status, ...] = (S.RECEIVED, S.REGISTERED, S.DISPATCHED, S.HANDLING, S.VERIFYING)
TERMINAL: tuple[Status, ...] = (S.CLOSED, S.REJECTED, S.MERGED)
DONE: tuple[Status, ...] = (S.CLOSED, S.REJECTED)  # finished cases (a merged report is a repeat, not a case)
ANY = OPEN + TERMINAL

DISPATCH = ("dispatcher", "admin")
HANDLE = ("handler", "admin")
INSPECT = ("grid_inspector", "dispatcher", "admin")
REPORTER = ("citizen", "dispatcher", "admin")


@dataclass(frozen=True)
class Transition:
    """One action of the workflow: from which states it is allowed, which states it can lead to
    (``None``: the state stays as it is), who may take it over the API, and what it does."""

    allowed_from: tuple[Status, ...] | None  # None: any state (the action checks something else)
    leads_to: tuple[Status, ...] | None
    roles: tuple[str, ...]  # () = the system only (no API route)
    summary: str
    verb: str = ""  # how an error names the action ("cannot <verb> incident …"); the action name by default


# The actions by the name their API route has (POST /api/v1/ops/incidents/{id}/<action>).
TRANSITIONS: dict[str, Transition] = {
    "receive": Transition(None, (S.RECEIVED,), (), "受理: a report is taken in from a channel"),
    "register": Transition((S.RECEIVED, S.REGISTERED), (S.REGISTERED,), DISPATCH,
                           "立案: confirm category and priority; the clock starts"),
    "reject": Transition((S.RECEIVED,), (S.REJECTED,), DISPATCH, "不予立案 with a reason"),
    "dispatch": Transition((S.RECEIVED, S.REGISTERED), (S.DISPATCHED,), DISPATCH,
                           "派遣 to the main and assisting departments"),
    "merge": Transition((S.RECEIVED, S.REGISTERED), (S.MERGED,), DISPATCH, "merge into another incident (into_id)"),
    "accept": Transition((S.DISPATCHED, S.HANDLING), (S.HANDLING,), HANDLE, "a department accepts its task"),
    "return": Transition((S.DISPATCHED, S.HANDLING), (S.REGISTERED,), HANDLE,
                         "退单: back to the dispatcher with a reason"),
    "complete": Transition((S.HANDLING, S.DISPATCHED), (S.HANDLING, S.VERIFYING, S.CLOSED), HANDLE,
                           "a department reports its task done (result)"),
    "first-contact": Transition((S.DISPATCHED, S.HANDLING, S.VERIFYING), None, HANDLE,
                                "先行联系: the reporter was called", verb="record first contact for"),
    "extension": Transition((S.DISPATCHED, S.HANDLING), None, HANDLE, "延期 requested (days, reason)",
                            verb="request an extension for"),
    "extension-decision": Transition(None, None, DISPATCH, "approve or refuse a pending extension"),
    "verify": Transition((S.VERIFYING,), (S.CLOSED, S.DISPATCHED), INSPECT,
                         "核查 on site: passed or not, with a note"),
    "close": Transition((S.VERIFYING, S.REGISTERED), (S.CLOSED,), DISPATCH, "结案 after review"),
    "suspend": Transition(OPEN, None, DISPATCH, "挂起: the clock stops"),
    "resume": Transition(None, None, DISPATCH, "the clock runs again"),
    "rate": Transition((S.CLOSED,), (S.CLOSED, S.REGISTERED), REPORTER,
                       "the reporter's rating: 满意 / 基本满意 / 不满意"),
    "supervise": Transition(OPEN, None, (), "督办: an overdue incident is raised to its department's supervisor"),
    "alarm_cleared": Transition(None, None, (), "物联感知告警解除: the IoT alarm that made the incident cleared (noted)"),
}


def allowed_from(action: str) -> tuple[Status, ...]:
    """The states ``action`` may be taken from (every state when the table says any)."""
    return TRANSITIONS[action].allowed_from or ANY


def verb(action: str) -> str:
    """How messages name ``action``."""
    return TRANSITIONS[action].verb or action


def api_actions() -> dict[str, Transition]:
    """The actions people take over the API (the system's own steps have no route)."""
    return {a: t for a, t in TRANSITIONS.items() if t.roles}


def description(action: str) -> str:
    """The OpenAPI description of an action's route, read from the table."""
    t = TRANSITIONS[action]
    came = "any state" if t.allowed_from is None else " or ".join(t.allowed_from)
    goes = "the same state" if t.leads_to is None else " or ".join(t.leads_to)
    return f"{t.summary}. Allowed when the incident is {came}; leads to {goes}. Roles: {', '.join(t.roles)}."


def as_json() -> dict[str, Any]:
    """The table as the API serves it to clients and pages."""
    return {
        "states": [s.value for s in Status], "open": [s.value for s in OPEN],
        "terminal": [s.value for s in TERMINAL],
        "actions": {a: {"from": [s.value for s in allowed_from(a)],
                        "to": None if t.leads_to is None else [s.value for s in t.leads_to],
                        "roles": list(t.roles), "summary": t.summary}
                    for a, t in TRANSITIONS.items()},
    }
