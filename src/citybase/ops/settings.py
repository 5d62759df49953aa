"""The incident loop's own settings (CITYBASE_OPS_*), validated at start like the platform's."""

from __future__ import annotations

from functools import cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from citybase.core.settings import read_settings

AUTO_DISPATCH_CONFIDENCE = 0.85  # the default; bench/classifier.py reports the classifier's precision at it


class OpsSettings(BaseSettings):
    """What a city tunes in 一网统管 without touching code."""

    model_config = SettingsConfigDict(env_prefix="CITYBASE_OPS_", env_ignore_empty=True, frozen=True,
                                      extra="ignore")

    auto_dispatch_confidence: float = Field(
        AUTO_DISPATCH_CONFIDENCE, ge=0.0, le=1.0,
        description="a number from 0 to 1 (the classifier confidence above which a report is dispatched "
                    "without a dispatcher)")
    supervision_interval: float = Field(
        60.0, gt=0, description="a positive number of seconds (how often overdue work is looked for 督办)")


@cache
def ops_settings() -> OpsSettings:
    """The incident loop's settings, read once per process (the CLI has validated them at start)."""
    return read_settings(OpsSettings)
