"""The twin's own settings (CITYBASE_TWIN_*), validated at start like the platform's."""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from citybase.core.settings import read_settings


class TwinSettings(BaseSettings):
    """What a city tunes in its twin without touching code."""

    model_config = SettingsConfigDict(env_prefix="CITYBASE_TWIN_", env_ignore_empty=True, frozen=True, extra="ignore")

    anonymous: Literal["none", "read", "write"] = Field(
        "none", description="none, read or write (what a caller without a token may do on /ngsi-ld/v1: none by "
                            "default; read or write for a broker behind the city's own gateway, or a test bench)")
    fetch_contexts: bool = Field(
        True, description="true or false (whether an @context that is neither preloaded nor hosted here is "
                          "fetched on first use; false: only `citybase twin contexts load` and POSTed ones)")
    history_days: int = Field(
        0, ge=0, description="a whole number of days (history older than this is deleted every hour; 0 keeps "
                             "it all)")
    temporal_limit: int = Field(
        1000, ge=1, le=1_000_000, description="a positive whole number (the most instances of one attribute a "
                                              "temporal answer holds; beyond it the answer is cut by time and "
                                              "answered 206 with a Content-Range saying which range it holds)")
    max_limit: int = Field(1000, ge=1, le=100_000, description="a positive whole number (the largest `limit` of a query)")


@cache
def twin_settings() -> TwinSettings:
    """The twin's settings, read once per process (the CLI has validated them at start)."""
    return read_settings(TwinSettings)
