"""The base registries (基础库) as the platform sees them: departments, persons, legal entities."""

from citybase.kernel.domain import Domain


def _routers() -> list:
    from citybase.registry.router import router

    return [router]


DOMAIN = Domain(
    name="registry",
    title="Base registries (基础库)",
    depends=("geo",),  # departments, persons and entities sit in areas and buildings
    models=("citybase.registry.models",),
    routers=_routers,
)
