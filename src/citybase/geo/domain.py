"""The spatial base (时空底座) as the platform sees it: areas, buildings, addresses."""

from citybase.kernel.domain import Domain

DOMAIN = Domain(
    name="geo",
    title="Spatial base (时空底座)",
    models=("citybase.geo.models",),
)
