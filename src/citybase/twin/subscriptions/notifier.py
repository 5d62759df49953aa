"""Sending a notification to its endpoint (CIM 009 v1.8 §5.11 and the bindings of clause 7): an HTTP(S) POST,
or an MQTT publication.

HTTP: the notification as ``application/json`` with the @context in a ``Link`` header, or as
``application/ld+json`` with the @context in the body (``endpoint.accept``); ``receiverInfo`` pairs become
headers, the tenant goes in ``NGSILD-Tenant``. Any 2xx is a success; anything else, a timeout or a refused
connection is a failure (retried by the caller). MQTT (``mqtt://[user:password@]host[:1883]/topic``,
``mqtts://`` with TLS on 8883): ``{"metadata": {headers}, "body": notification}`` published at QoS 1 (or the
``MQTT-QoS`` of ``notifierInfo``), a success once the broker has acknowledged it (PUBACK, PUBCOMP at QoS 2)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from citybase.twin.ldcontext import JSONLD_REL

TIMEOUT = 10.0  # seconds an endpoint has to answer (or a broker to acknowledge)


@dataclass(frozen=True)
class Sent:
    """How one attempt went: ``ok``, and what went wrong otherwise."""

    ok: bool
    error: str | None = None


def _headers(endpoint: dict[str, Any], context: str, tenant: str) -> dict[str, str]:
    accept = endpoint.get("accept", "application/json")
    h = {"Content-Type": accept}
    if accept == "application/json":
        h["Link"] = f'<{context}>; rel="{JSONLD_REL}"; type="application/ld+json"'
    if tenant:
        h["NGSILD-Tenant"] = tenant
    for kv in endpoint.get("receiverInfo", ()):
        h[kv["key"]] = kv["value"]
    return h


def _body(endpoint: dict[str, Any], notification: dict[str, Any], context: str) -> dict[str, Any]:
    if endpoint.get("accept") == "application/ld+json":  # JSON-LD: each entity carries the @context too
        data = [{**d, "@context": context} if isinstance(d, dict) else d for d in notification.get("data", [])]
        return {**notification, "data": data, "@context": context}
    return notification


def send(endpoint: dict[str, Any], notification: dict[str, Any], *, context: str, tenant: str = "",
         timeout: float = TIMEOUT) -> Sent:
    """Deliver one notification to the endpoint; never raises for what the endpoint does."""
    scheme = urlsplit(endpoint["uri"]).scheme
    if scheme in ("mqtt", "mqtts"):
        return publish_mqtt(endpoint, notification, context=context, tenant=tenant, timeout=timeout)
    return post_http(endpoint, notification, context=context, tenant=tenant, timeout=timeout)


def post_http(endpoint: dict[str, Any], notification: dict[str, Any], *, context: str, tenant: str,
              timeout: float) -> Sent:
    data = json.dumps(_body(endpoint, notification, context), ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(endpoint["uri"], data=data, method="POST",
                                 headers=_headers(endpoint, context, tenant))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) checked at creation
            resp.read(65536)
            code = resp.status
    except urllib.error.HTTPError as exc:
        return Sent(False, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Sent(False, f"{type(reason).__name__}: {str(reason)[:200]}")
    return Sent(True) if 200 <= code < 300 else Sent(False, f"HTTP {code}")


def _info(endpoint: dict[str, Any], key: str, default: str) -> str:
    return next((kv["value"] for kv in endpoint.get("notifierInfo", ()) if kv["key"] == key), default)


def publish_mqtt(endpoint: dict[str, Any], notification: dict[str, Any], *, context: str, tenant: str,
                 timeout: float) -> Sent:
    """One connection per notification: connect, wait for CONNACK, publish, wait for the acknowledgement."""
    import paho.mqtt.client as mqtt

    url = urlsplit(endpoint["uri"])
    secure = url.scheme == "mqtts"
    topic = unquote(url.path.lstrip("/"))
    qos = int(_info(endpoint, "MQTT-QoS", "1"))
    version = mqtt.MQTTv5 if _info(endpoint, "MQTT-Version", "mqtt3.1.1") == "mqtt5.0" else mqtt.MQTTv311
    message = json.dumps({"metadata": _headers(endpoint, context, tenant),
                          "body": _body(endpoint, notification, context)}, ensure_ascii=False)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"citybase-{uuid.uuid4().hex[:12]}",
                         protocol=version)
    connected = threading.Event()
    outcome: dict[str, Any] = {}

    def on_connect(_c: Any, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
        outcome["connect"] = reason
        connected.set()

    client.on_connect = on_connect
    if url.username:
        client.username_pw_set(unquote(url.username), unquote(url.password or ""))
    if secure:
        client.tls_set()
    client.connect_timeout = timeout
    try:
        client.connect(url.hostname or "", url.port or (8883 if secure else 1883), keepalive=60)
    except (OSError, ValueError) as exc:
        return Sent(False, f"{type(exc).__name__}: {str(exc)[:200]}")
    client.loop_start()
    try:
        if not connected.wait(timeout):
            return Sent(False, "the MQTT broker did not answer the connection")
        if outcome["connect"].is_failure:
            return Sent(False, f"the MQTT broker refused the connection: {outcome['connect']}")
        info = client.publish(topic, message, qos=qos)
        info.wait_for_publish(timeout)
        if not info.is_published():
            return Sent(False, f"the MQTT broker did not acknowledge the message within {timeout:g} s")
        return Sent(True)
    except (OSError, ValueError, RuntimeError) as exc:
        return Sent(False, f"{type(exc).__name__}: {str(exc)[:200]}")
    finally:
        client.disconnect()
        client.loop_stop()
