"""The roles of citybase and what each may see."""

from __future__ import annotations

ROLES = ("admin", "dispatcher", "handler", "grid_inspector", "analyst", "data_officer", "clerk", "window_clerk",
         "citizen")
PUBLIC = "public"  # pseudo-role: anyone, authenticated or not
# The platform's staff: what STAFF routes (the map, the registries, the incident loop, the twin) admit.
STAFF = ("admin", "dispatcher", "handler", "grid_inspector", "analyst", "data_officer")
# 一网通办's staff, admitted only where a route names them: `clerk` (审批人员) works a department's part of
# applications; `window_clerk` (综合窗口) files applications for people at the counter (一窗受理).
SERVICE_STAFF = ("clerk", "window_clerk")
# Roles whose work needs personal data in full (registry stewards); every such read is audited.
PII_ROLES = frozenset({"data_officer"})


def check_roles(roles: list[str]) -> list[str]:
    """Validate role names; raise ValueError naming the unknown one."""
    for r in roles:
        if r not in ROLES:
            raise ValueError(f"unknown role {r!r}; roles are {', '.join(ROLES)}")
    return roles
