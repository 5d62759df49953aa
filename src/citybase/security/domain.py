"""Identity, access and audit as the platform sees them: users, tokens, the audit log."""

from __future__ import annotations

from typing import Any

from citybase.kernel.domain import Domain, TimerSpec
from citybase.security.events import EVENTS
from citybase.security.settings import OidcSettings

CHECKPOINT_INTERVAL = 300.0  # seconds between signed audit checkpoints (one process of the deployment)


def checkpoint_audit(runtime: Any) -> None:
    """Sign the audit chain head if it moved, and announce the checkpoint through the outbox."""
    from citybase.kernel import outbox
    from citybase.security.audit import checkpoint, checkpoint_event

    def publish(cp: Any) -> None:
        with runtime.sessions() as session:
            outbox.queue(session, *checkpoint_event(cp))
            session.commit()

    checkpoint(runtime.engine, data_dir=runtime.settings.data_dir, publish=publish)


def _routers() -> list:
    from citybase.security.router import router

    return [router]


DOMAIN = Domain(
    name="security",
    title="Identity, access and audit",
    # Users belong to departments (users.department_id): the tables need the registry's. The code does not
    # import the registry; the other domains use security's Allow, which is platform, not a domain use.
    depends=("registry",),
    models=("citybase.security.models",),
    routers=_routers,
    roles={"admin": "平台管理员: manages users and tokens, the catalogue and the webhooks; reads the audit log"},
    timers=(TimerSpec("security-audit-checkpoint", CHECKPOINT_INTERVAL, checkpoint_audit),),
    events=EVENTS,
    settings=OidcSettings,  # CITYBASE_OIDC_*: 统一身份认证 through the city's identity provider
)
