"""Demo accounts: one user per role, each with a fresh token written to the data folder, and a firm's account.

The citizen is linked to a person of the registry (the first adult, by id) and the firm's account (``firm``,
role citizen) acts for the first legal entity, signed in by its legal representative's person when the
registry holds them; with an empty registry the accounts are not linked.

Every start replaces the demo tokens: the previous ones are revoked and the new ones expire after
``DEMO_TOKEN_DAYS``; tokens an admin issued (under any other name) are left alone."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from citybase.core.timeutil import utcnow
from citybase.registry.models import Department, LegalEntity, Person
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
    "clerk": ("clerk", "市场监管局审批人员", "市场监管局"),
    "window_clerk": ("window", "行政服务中心综合窗口", "行政服务中心"),
    "citizen": ("citizen", "市民", None),
}
FIRM_USER = ("firm", "企业用户")  # role citizen, acting for a legal entity
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
        person_id, entity_id, rep_id = _demo_links(session)
        accounts = [(*DEMO_USERS[role], role, person_id if role == "citizen" else None, None) for role in ROLES]
        accounts.append((*FIRM_USER, None, "citizen", rep_id if rep_id != person_id else None, entity_id))
        for username, display, dept, role, person, entity in accounts:
            user = existing.get(username) or service.create_user(
                session=session, username=username, display_name=display, roles=[role],
                department_id=depts.get(dept) if dept else None, person_id=person, legal_entity_id=entity)
            if user.person_id is None and user.legal_entity_id is None and (person or entity):
                user.person_id, user.legal_entity_id = person, entity  # a demo database older than the links
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


def _demo_links(session: Session) -> tuple[int | None, int | None, int | None]:
    """(the citizen's person, the firm's legal entity, its representative's person) in the registry, or None."""
    today = utcnow().date()
    adult = today.replace(year=today.year - 25)
    person_id = session.scalar(select(Person.id).where(Person.birth_date <= adult).order_by(Person.id).limit(1))
    firm = session.execute(select(LegalEntity.id, LegalEntity.legal_rep_id_number)
                           .order_by(LegalEntity.id).limit(1)).first()
    if firm is None:
        return person_id, None, None
    rep_id = session.scalar(select(Person.id).where(Person.id_number == firm.legal_rep_id_number))
    return person_id, firm.id, rep_id
