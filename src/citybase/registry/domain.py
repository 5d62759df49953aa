"""The base registries (基础库) as the platform sees them: departments, persons, legal entities; their router,
the role that stewards them and the typed events they publish."""

from citybase.kernel.domain import Domain
from citybase.registry.events import EVENTS


def _routers() -> list:
    from citybase.registry.router import router

    return [router]


DOMAIN = Domain(
    name="registry",
    title="Base registries (基础库)",
    depends=("geo",),  # departments, persons and entities sit in areas and buildings
    models=("citybase.registry.models",),
    routers=_routers,
    roles={"data_officer": "数据专员: registers persons and legal entities and sees their personal fields in full "
                           "(every such read audited)"},
    events=EVENTS,
)
