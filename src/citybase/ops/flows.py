"""Side effects of the incident loop, run after the transaction commits: events on the bus."""

from __future__ import annotations

from sqlalchemy.orm import Session

from citybase.bus import Bus, Context


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
