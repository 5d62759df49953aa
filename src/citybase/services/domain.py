"""一网通办 (services) as the platform sees it: its tables, its router under ``/api/v1/services``, the 督办 timer
for overdue parts, the sweep of uploaded files no application names, and the typed events it publishes."""

from __future__ import annotations

import logging
from typing import Any

from citybase.kernel.domain import Domain, TimerSpec
from citybase.services.events import EVENTS

log = logging.getLogger(__name__)


def _routers() -> list[Any]:
    from citybase.services.router import router

    return [router]


def _supervise(runtime: Any) -> None:
    """services-supervision: 督办 for each overdue part (its events through the outbox)."""
    from citybase.bus import Context
    from citybase.kernel import outbox
    from citybase.services import service

    with runtime.sessions() as session:
        outbox.bind_context(session, Context(user_id=None))
        service.supervise_overdue(session=session)
        session.commit()


def _sweep_files(runtime: Any) -> None:
    """services-files-sweep: applicants' uploaded content that no file row names, a day after its last use."""
    from pathlib import Path

    from citybase.services import files, service

    with runtime.sessions() as session:
        gone = service.sweep_files(session=session, store=files.FileStore.under(Path(runtime.settings.data_dir)))
    if gone:
        log.info("services: %d uploaded file(s) no application names were deleted", gone)


DOMAIN = Domain(
    name="services",
    title="一网通办 — services done once",
    depends=("registry", "licences"),  # persons and firms apply; licences prove materials
    models=("citybase.services.models",),
    routers=_routers,
    roles={},  # clerk, window_clerk and citizen are the platform's roles (security.roles)
    events=EVENTS,
    timers=(TimerSpec("services-supervision", 300.0, _supervise), TimerSpec("services-files-sweep", 3600.0, _sweep_files)),
)
