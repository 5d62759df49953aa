"""Broker URLs of the form the twin's MQTT notifications already use: ``mqtt://[user:password@]host[:1883]``,
``mqtts://`` for TLS (port 8883 by default). Parsed once here so the bridge and its CLI say the same thing about
a wrong URL, and so logs never carry the password."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from citybase.core.urls import redact as redact_url

SCHEMES = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class MqttUrl:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None


def parse_mqtt_url(url: str) -> MqttUrl:
    """The broker's address, TLS and credentials; ValueError naming what is wrong (without the password)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"MQTT URL {redact(url)} is not valid: {exc}") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(f"MQTT URL {redact(url)} must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError(f"MQTT URL {redact(url)} names no host: mqtt://host:1883")
    if parts.path.strip("/") or parts.query:
        raise ValueError(f"MQTT URL {redact(url)} is the broker only (no path or query): mqtt://host:1883")
    return MqttUrl(
        host=parts.hostname,
        port=port or SCHEMES[parts.scheme],
        tls=parts.scheme == "mqtts",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def redact(url: str) -> str:
    """The URL without user and password, for messages and logs."""
    return redact_url(url, "MQTT URL")
