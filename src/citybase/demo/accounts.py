"""Demo accounts: one user per role, each with a fresh token written to the data folder.

Every start replaces the demo tokens: the previous ones are revoked and the new ones expire after
``DEMO_TOKEN_DAYS``; tokens an admin issued (under any other name) are left alone."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from citybase.core.timeutil import utcnow
from citybase.registry.models import Department
from citybase.security import service
from citybase.security.roles import ROLES

# role -> (username, display name, department short name)
DEMO_USERS = {
    "admin": ("admin", "平台管理员", "大数据中心"),
    "dispatcher": ("dispatcher", "城运中心派单员", "城运中心"),
    "handler": ("handler", "城管执法局处置员", "城管执法局"),
    "grid_inspector": ("inspector", "网格巡查员", None),
    "analyst": ("analyst", "数据分析员", "大数据中心"),
    "data_officer": ("dataofficer", "数据专员", "大数据中心"),
    "citizen": ("citizen", "市民", None),
}
DEMO_TOKEN = "demo"  # the name of the tokens a demo start issues (and revokes at the next start)
DEMO_TOKEN_DAYS = 30


def create_demo_users(engine: Engine, data_dir: Path) -> dict[str, str]:
    """Create the demo users if missing, revoke their previous demo tokens and issue each a new one that
    expires in ``DEMO_TOKEN_DAYS`` days, in one transaction; returns {username: token}, also saved to
    ``data_dir/demo-tokens.json`` (readable by the owner only). Other tokens of the demo users stay valid."""
    tokens: dict[str, str] = {}
    expires = utcnow() + timedelta(days=DEMO_TOKEN_DAYS)
    with Session(engine) as session, session.begin():
        depts = {d.short_name: d.id for d in session.scalars(select(Department))}
        existing = {u.username: u for u in service.list_users(session=session)}
        for role in ROLES:
            username, display, dept = DEMO_USERS[role]
            user = existing.get(username) or service.create_user(
                session=session, username=username, display_name=display, roles=[role],
                department_id=depts.get(dept) if dept else None)
            for old in service.user_tokens(session=session, user_id=user.id):
                if old.name == DEMO_TOKEN and old.revoked_at is None:
                    service.revoke_token(session=session, token_id=old.id)
            _, secret = service.issue_token(session=session, user=user, name=DEMO_TOKEN, expires_at=expires)
            tokens[username] = secret
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "demo-tokens.json"
    path.write_text(json.dumps(tokens, indent=2, ensure_ascii=False))
    path.chmod(0o600)
    return tokens
