"""The demo's 一网通办: the shipped catalogue of Xuhui's items and 一件事 bundles, and one approvals clerk
(role ``clerk``) for each department the bundles reach, each with a fresh demo token (added to
``demo-tokens.json``)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from citybase.core.timeutil import utcnow
from citybase.demo.accounts import DEMO_TOKEN, DEMO_TOKEN_DAYS
from citybase.registry import service as registry
from citybase.security import service as security
from citybase.services import service as services

# department short name -> (username, display name); 市场监管局's clerk is the platform's demo ``clerk``
CLERKS = {
    "卫健委": ("clerk-wjw", "卫健委审批人员"), "公安分局": ("clerk-ga", "公安分局户政审批人员"),
    "医保局": ("clerk-yb", "医保局审批人员"), "人社局": ("clerk-rs", "人社局审批人员"),
    "财政局": ("clerk-sw", "税务审批人员"), "房管局": ("clerk-fg", "房管局审批人员"),
    "规划资源局": ("clerk-gh", "不动产登记审批人员"), "水务局": ("clerk-swj", "水务局审批人员"),
    "建管委": ("clerk-jg", "建管委审批人员"), "民政局": ("clerk-mz", "民政局审批人员"),
    "消防支队": ("clerk-xf", "消防支队审批人员"), "绿化市容局": ("clerk-lh", "绿化市容局审批人员"),
    "生态环境局": ("clerk-sthj", "生态环境局审批人员"),
}


def load_services_demo(engine: Engine, data_dir: Path) -> dict[str, str]:
    """Load the demo catalogue (items and bundles not there yet) and the departments' clerks, in one
    transaction; returns {username: token} of the clerks, also merged into ``data_dir/demo-tokens.json``."""
    tokens: dict[str, str] = {}
    expires = utcnow() + timedelta(days=DEMO_TOKEN_DAYS)
    with Session(engine) as session, session.begin():
        services.load_demo_catalogue(session=session)
        depts = {d.short_name: d.id for d in registry.list_departments(session=session)}
        existing = {u.username: u for u in security.list_users(session=session)}
        for short, (username, display) in CLERKS.items():
            if short not in depts:
                continue
            user = existing.get(username) or security.create_user(
                session=session, username=username, display_name=display, roles=["clerk"],
                department_id=depts[short])
            for old in security.user_tokens(session=session, user_id=user.id):
                if old.name == DEMO_TOKEN and old.revoked_at is None:
                    security.revoke_token(session=session, token_id=old.id)
            _, secret = security.issue_token(session=session, user=user, name=DEMO_TOKEN, expires_at=expires)
            tokens[username] = secret
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "demo-tokens.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps({**saved, **tokens}, indent=2, ensure_ascii=False))
    path.chmod(0o600)
    return tokens
