"""The demo city with 一网通办 loaded: the shipped catalogue, bundles and the departments' clerks."""

from __future__ import annotations

import pytest

from citybase.demo.services import load_services_demo


@pytest.fixture(scope="session")
def services_tokens(city, tmp_path_factory) -> dict[str, str]:
    """Tokens of the demo's clerks (the catalogue is loaded once per engine; loading again adds nothing)."""
    tokens = load_services_demo(city.engine, tmp_path_factory.mktemp("services"))
    city.tokens.update(tokens)
    return tokens
