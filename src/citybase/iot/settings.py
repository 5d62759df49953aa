"""The IoT domain's own settings (CITYBASE_IOT_*), validated at start like the platform's."""

from __future__ import annotations

import socket
from functools import cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from citybase.core.settings import read_settings


class IotSettings(BaseSettings):
    """Where the devices' broker is, and what this process's bridge is called."""

    model_config = SettingsConfigDict(env_prefix="CITYBASE_IOT_", env_ignore_empty=True, frozen=True, extra="ignore")

    mqtt_url: str | None = Field(
        None, description="mqtt://[user:password@]host[:1883] or mqtts://… (the devices' broker; unset: devices "
                          "report over HTTP, POST /api/v1/iot/readings)")
    bridge_name: str = Field(
        default_factory=lambda: socket.gethostname().split(".")[0] or "1",
        description="letters, digits, _ or - (this bridge's name; its broker session keeps the messages it has "
                    "not taken while it is down, so a bridge must come back under the same name)")
    silence_interval: float = Field(30.0, gt=0, description="seconds between two sweeps for silent devices")

    @field_validator("mqtt_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v and not v.startswith(("mqtt://", "mqtts://")):
            raise ValueError("must start with mqtt:// or mqtts://")
        return v


@cache
def iot_settings() -> IotSettings:
    return read_settings(IotSettings)
