"""The roles of citybase and what each may see."""

from __future__ import annotations

ROLES = ("admin", "dispatcher", "handler", "grid_inspector", "analyst", "data_officer", "clerk", "window_clerk",
         "citizen")
PUBLIC = "public"  # pseudo-role: anyone, authenticated or not
# Government staff. `clerk` (审批人员) works a department's part of applications (一网通办); `window_clerk`
# (综合窗口) files applications for people at the counter (一窗受理).
STAFF = ("admin", "dispatcher", "handler", "grid_inspector", "analyst", "data_officer", "clerk", "window_clerk")
# Roles whose work needs personal data in full (registry stewards); every such read is audited.
PII_ROLES = frozenset({"data_officer"})


def check_roles(roles: list[str]) -> list[str]:
    """Validate role names; raise ValueError naming the unknown one."""
    for r in roles:
        if r not in ROLES:
            raise ValueError(f"unknown role {r!r}; roles are {', '.join(ROLES)}")
    return roles
