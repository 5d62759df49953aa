"""The event bus: publish, durable subscribe with acknowledgement, a context on every event.

Two implementations share one contract (tests/bus/test_contract.py): InProcessBus (default,
``memory://``) and NatsBus (``nats://host:port``, JetStream). Use :func:`connect`.
"""

from citybase.bus.base import Bus, Context, DeadLetter, Delivery, Event, Subscription, connect

__all__ = ["Bus", "Context", "DeadLetter", "Delivery", "Event", "Subscription", "connect"]
