"""The platform's settings and each domain's own (its descriptor's ``settings`` model), checked together."""

from __future__ import annotations

from functools import cache
from typing import Any

from citybase.core.settings import InvalidSettings, Settings, load_settings, read_settings
from citybase.kernel.domain import domains


@cache
def domain_settings(name: str) -> Any:
    """The validated settings of the domain ``name`` (read once from the environment per process).

    Raises KeyError if the domain declares no settings, InvalidSettings if a variable is wrong."""
    for dom in domains():
        if dom.name == name and dom.settings is not None:
            return read_settings(dom.settings)
    raise KeyError(f"domain {name!r} declares no settings")


def check_settings(**overrides: object) -> Settings:
    """The platform's settings, after validating every domain's too; InvalidSettings lists every wrong variable."""
    problems: list[str] = []
    settings: Settings | None = None
    try:
        settings = load_settings(**overrides)
    except InvalidSettings as exc:
        problems += exc.problems
    for dom in domains():
        if dom.settings is not None:
            try:
                read_settings(dom.settings)
            except InvalidSettings as exc:
                problems += exc.problems
    if problems or settings is None:
        raise InvalidSettings(problems)
    return settings
