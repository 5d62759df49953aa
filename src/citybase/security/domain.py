"""Identity, access and audit as the platform sees them: users, tokens, the audit log."""

from citybase.kernel.domain import Domain

DOMAIN = Domain(
    name="security",
    title="Identity, access and audit",
    # Users belong to departments (users.department_id): the tables need the registry's. The code does not
    # import the registry; the other domains use security's Allow, which is platform, not a domain use.
    depends=("registry",),
    models=("citybase.security.models",),
)
