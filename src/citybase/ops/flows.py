"""Side effects of the incident loop, run after the transaction commits: events on the bus.

Every sub-package of ops queues its events with ``pending(session)`` (imported as ``_events``) and the
request, worker or timer that owns the transaction publishes them after its commit."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from citybase.bus import Bus, Context


class Reject(Exception):
    """The message itself is wrong; keep it aside with this reason."""


def pending(session: Session) -> list[tuple[str, dict[str, Any]]]:
    """The events queued in this session, to be published after its commit (services append to it)."""
    return session.info.setdefault("events", [])


def publish_pending(session: Session, bus: Bus, context: Context) -> int:
    """Publish the events the services queued in ``session.info`` (call after commit). Returns the count."""
    events = session.info.pop("events", [])
    for subject, data in events:
        bus.publish(subject, data, context=context)
    return len(events)


def commit_and_publish(session: Session, bus: Bus, context: Context) -> None:
    """Commit the request's work, then tell the city; nothing is published for work that was rolled back."""
    session.commit()
    publish_pending(session, bus, context)
