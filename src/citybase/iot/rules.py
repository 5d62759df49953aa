"""Rule evaluation, pure: a rule's state and the new readings of its attribute, in time order, give the new
state and what to do (raise, clear). No flapping by construction: a threshold alarm is raised only after the
condition held for the rule's duration and cleared only past the clear level (the hysteresis band between
the two keeps it as it is); a reading older than the last one evaluated changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from citybase.iot.types import Rule


@dataclass
class State:
    phase: str = "ok"  # ok | pending | alarm
    since: datetime | None = None
    last_value: float | None = None
    last_at: datetime | None = None


@dataclass(frozen=True)
class Action:
    kind: str  # raise | clear
    at: datetime
    value: Any
    since: datetime | None = None  # raise: when the condition began


def _holds(rule: Rule, v: Any) -> bool:
    if rule.equals:
        return v in rule.equals
    if not isinstance(v, int | float):
        return False
    return (rule.above is not None and v > rule.above) or (rule.below is not None and v < rule.below)


def _cleared(rule: Rule, v: Any) -> bool:
    if rule.equals:
        return v not in rule.equals
    if not isinstance(v, int | float):
        return False
    if rule.above is not None:
        return v < (rule.clear if rule.clear is not None else rule.above)
    if rule.below is not None:
        return v > (rule.clear if rule.clear is not None else rule.below)
    return True


def evaluate(rule: Rule, state: State, points: list[tuple[datetime, Any]]) -> list[Action]:
    """Advance ``state`` (in place) over ``points`` (time, value) sorted by time; returns the actions."""
    out: list[Action] = []
    for at, v in points:
        if state.last_at is not None and at <= state.last_at:
            continue  # late or repeated: kept in the history, not evaluated
        if rule.kind == "rate":
            prev, prev_at = state.last_value, state.last_at
            state.last_value, state.last_at = (float(v) if isinstance(v, int | float) else None), at
            if prev is None or prev_at is None or not isinstance(v, int | float):
                continue
            per_minute = (float(v) - prev) / max((at - prev_at).total_seconds() / 60.0, 1e-9)
            if state.phase != "alarm" and rule.above is not None and per_minute > rule.above:
                state.phase, state.since = "alarm", prev_at
                out.append(Action("raise", at, v, prev_at))
            elif state.phase == "alarm" and per_minute <= (rule.clear if rule.clear is not None else 0.0):
                state.phase, state.since = "ok", None
                out.append(Action("clear", at, v))
            continue
        state.last_at = at
        if isinstance(v, int | float):
            state.last_value = float(v)
        if state.phase == "alarm":
            if _cleared(rule, v):
                state.phase, state.since = "ok", None
                out.append(Action("clear", at, v))
            continue
        if not _holds(rule, v):
            state.phase, state.since = "ok", None
            continue
        if state.phase == "ok":
            state.phase, state.since = "pending", at
        if state.since is not None and (at - state.since).total_seconds() >= rule.duration:
            since = state.since
            state.phase = "alarm"
            out.append(Action("raise", at, v, since))
    return out
