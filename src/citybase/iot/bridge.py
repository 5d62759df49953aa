"""The MQTT → bus bridge of the IoT ingest (docs/iot.md, "One convention for readings").

The messages devices publish on ``citybase/iot/<device id>/up`` travel to the bus in groups: the messages the
bridge received within a short window (up to ``per_event`` messages or ``event_bytes`` of payload, waiting at most
``linger`` seconds for more after the first) become ONE ``citybase.iot.ingest`` event whose data lists them,
each as it came (device, payload, time received, and the topic when it is not ``<prefix>/<id>/up``). Every
message is acknowledged to the broker (PUBACK) only after the bus has stored the event that carries it, so a
bridge that dies at any moment loses nothing: the broker sends what was not acknowledged again. A message
that comes again may travel in another group (another event id, so the bus may hold it twice); the ingest
stores a reading once (``iot_readings`` is keyed on device, attribute and time), and only the readings it
actually inserted go to the twin's history and the rules (a refusal is kept once, see ``iot.service``). One
event per message cost an envelope encoded and decoded and a delivery tracked, fetched and acked (on JetStream
a round trip each) for every message.

Why MQTT 5 with a persistent session, one fixed client id per bridge, and a shared subscription:

* Mosquitto 2.0 hands a shared group's messages round-robin to every member that has a session, connected or
  not. A member with a persistent session that is down keeps receiving its share in that session, which waits
  for it (the same client id) to come back; nothing is re-routed to the other members, but nothing is lost.
  A member with a clean session that dies loses what it had received but not acknowledged (Mosquitto does not
  hand it to another member). So the session is persistent, the client id is ``citybase-bridge-<name>`` and a
  bridge must come back under the same name (a supervisor restarting it) before the session expires. A name
  taken out of service for good is retired (``--retire``: it unsubscribes, carries what its session holds and
  ends the session), or its share keeps going to a session nobody reads.
* MQTT 5 because the bridge then says how long the broker keeps its session (Session Expiry Interval) instead
  of the broker-wide ``persistent_client_expiration``, and how many unacknowledged messages it may hold
  (Receive Maximum): Mosquitto 2.0.11 honours it for v5 clients, while a 3.1.1 client gets the broker's
  ``max_inflight_messages`` (20 by default), which would cap every bus batch at 20 messages.
* The broker must keep what it queues: ``max_queued_messages 0`` (or a large number) and ``persistence true``.
  With Mosquitto's default of 1000, a bridge that is down longer than 1000 of its messages loses the rest.

Throughput: the paho network thread only records each message; one pump thread takes everything that arrived
while the last publication was in flight (up to ``batch`` messages, lingering a little when fewer than a group
came), publishes it as groups with ``publish_events`` (pipelined on JetStream) and then acknowledges it in the
order received. A bus failure leaves the messages unacknowledged and is retried with back-off; the broker stops
sending once ``receive_maximum`` messages wait, so memory is bounded.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import logging
import queue
import re
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from citybase.bus.base import Bus, Context, Event, PublishError
from citybase.core.timeutil import utcnow
from citybase.iot.mqtturl import parse_mqtt_url, redact

log = logging.getLogger(__name__)

SUBJECT = "citybase.iot.ingest"
PREFIX = "citybase/iot"  # topics are <prefix>/<device id>/up
GROUP = "citybase"  # the shared subscription's group: $share/<group>/<prefix>/+/up
DEVICE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

SESSION_EXPIRY = 7 * 24 * 3600  # seconds the broker keeps a bridge's session (and its messages) while it is away
RECEIVE_MAXIMUM = 10_000  # unacknowledged messages the broker may send us (MQTT 5 Receive Maximum, ≤ 65535)
BATCH = 2_000  # messages per bus publication at most
PER_EVENT = 250  # messages per bus event at most ...
EVENT_BYTES = 256 * 1024  # ... and payload bytes (NATS refuses a message above its max_payload, 1 MB by default)
MAX_PAYLOAD = 128 * 1024  # bytes one message may have: a larger one travels as a refusal with its first PREVIEW
PREVIEW = 20_000  # bytes (so that no event can pass max_payload, whatever JSON's escaping makes of a text)
LINGER = 0.05  # seconds the pump waits for more messages after the first, when fewer than a group came
KEEPALIVE = 30
RETRY_FIRST, RETRY_MAX = 0.2, 10.0  # seconds of back-off after a failed bus publication


def event_id(topic: str, payload: bytes) -> str:
    """The same message gives the same id, so a re-publication after a crash is a duplicate JetStream drops."""
    return hashlib.sha256(topic.encode("utf-8") + b"\n" + payload).hexdigest()[:32]


def device_of(topic: str, prefix: str = PREFIX) -> tuple[str | None, bool]:
    """The device id the topic names and whether the topic is a well-formed ``<prefix>/<id>/up``; for another
    topic, its device segment if it has one (so the dead letter says what was claimed) or None."""
    head, sep, rest = topic.partition(prefix + "/")
    if head or not sep:
        return None, False
    segment, sep, tail = rest.partition("/")
    if DEVICE_ID.fullmatch(segment) and sep and tail == "up":
        return segment, True
    return segment or None, False


def message_data(topic: str, payload: bytes, received_at: str, prefix: str = PREFIX) -> dict[str, Any]:
    """One MQTT message as the ingest event lists it. A topic that is not ``<prefix>/<id>/up`` also carries
    ``topic``, so the ingest can keep the message as a dead letter with where it came from. A payload above
    ``MAX_PAYLOAD`` is carried as ``too_large`` (its size) with its first ``PREVIEW`` bytes."""
    device, well_formed = device_of(topic, prefix)
    data: dict[str, Any] = {"device": device}
    if len(payload) > MAX_PAYLOAD:  # kept as a dead letter by the ingest (reason too_large), never retried for
        data["too_large"] = len(payload)  # ever against the bus's limit
        data["payload"] = payload[:PREVIEW].decode("utf-8", "replace")
    else:
        try:
            data["payload"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            data["payload_b64"] = base64.b64encode(payload).decode("ascii")
    data["received_at"] = received_at
    if not well_formed:
        data["topic"] = topic
    return data


def ingest_event(messages: list[tuple[str, bytes, str]], prefix: str = PREFIX) -> Event:
    """The ``citybase.iot.ingest`` event for a group of MQTT messages (topic, payload, received at): data
    ``{"via": "mqtt", "messages": [...]}``, its id the SHA-256 of the topics and payloads in order, each
    preceded by its length (the same group published again is the same event, which JetStream drops within
    its duplicate window), its time the first's."""
    ids = hashlib.sha256()
    for topic, payload, _ in messages:
        t = topic.encode("utf-8")
        ids.update(b"%d:%d:" % (len(t), len(payload)))
        ids.update(t)
        ids.update(payload)
    data = {"via": "mqtt", "messages": [message_data(t, p, at, prefix) for t, p, at in messages]}
    return Event(subject=SUBJECT, data=data, context=Context(), id=ids.hexdigest()[:32], time=messages[0][2])


@dataclass(frozen=True, slots=True)
class _Received:
    generation: int  # the connection it came on: an ack is only valid on that connection
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: str


class Bridge:
    """One bridge process's MQTT client and pump. ``start()``, then ``stop()``; counters in ``stats``."""

    def __init__(self, url: str, bus: Bus, name: str, *, prefix: str = PREFIX, group: str = GROUP,
                 session_expiry: int = SESSION_EXPIRY, receive_maximum: int = RECEIVE_MAXIMUM,
                 batch: int = BATCH, per_event: int = PER_EVENT, event_bytes: int = EVENT_BYTES, linger: float = LINGER,
                 hold: Any = None) -> None:
        if not NAME.fullmatch(name):
            raise ValueError(f"bridge name {name!r} must be 1-64 letters, digits, '_', '.' or '-'")
        if not 1 <= receive_maximum <= 65535:
            raise ValueError("receive_maximum must be 1-65535")
        self.broker = parse_mqtt_url(url)
        self.url, self.bus, self.name, self.prefix = redact(url), bus, name, prefix.strip("/")
        self.client_id = f"citybase-bridge-{name}"
        self.topic_filter = f"$share/{group}/{self.prefix}/+/up"
        if not 1 <= per_event <= batch:
            raise ValueError("per_event must be 1 to batch messages")
        self.batch, self.per_event, self.event_bytes, self.linger = batch, per_event, event_bytes, linger
        # hold() -> True while the bus is too far behind (the in-process bus of one serving process keeps
        # everything in memory): the bridge stops taking messages, the broker stops sending once receive_maximum
        # wait unacknowledged, and the devices' messages queue in the broker, not in this process
        self.hold = hold
        self.stats = {"received": 0, "published": 0, "acked": 0, "events": 0, "publish_failures": 0, "connects": 0,
                      "held": 0, "left_to_resend": 0}
        self.connected = threading.Event()  # set while subscribed (tests and health checks wait on it)
        self._inbox: queue.SimpleQueue[_Received] = queue.SimpleQueue()
        self._lock = threading.Lock()  # orders acks against a connection being lost
        self._generation = 0
        self._connected_generation = -1  # the connection whose CONNACK came last
        self._resent_below = 0  # unacknowledged QoS 1 messages of connections before this one come again
        self._stopping = threading.Event()
        self._retiring = False
        self._unsubscribed = threading.Event()
        self._arrived = self._handled = 0  # messages received / carried (acked or to come again)
        self._last_arrival = time.monotonic()
        self._pump_thread = threading.Thread(target=self._pump, name=f"iot-bridge-{name}", daemon=True)

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
                             manual_ack=True)
        if self.broker.username:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            client.tls_set()
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_message = self._on_message
        self._client = client
        self._connect_properties = Properties(PacketTypes.CONNECT)
        self._connect_properties.SessionExpiryInterval = session_expiry
        self._connect_properties.ReceiveMaximum = receive_maximum

    # -- life --

    def start(self) -> None:
        """Connect in the background (retried until it works) and start pumping to the bus."""
        self._pump_thread.start()
        # clean_start=False on every connection (paho's default cleans the first one): resume the session.
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=KEEPALIVE, clean_start=False,
                                   properties=self._connect_properties)
        self._client.loop_start()

    def stop(self) -> None:
        """Finish the publication under way, acknowledge it, and disconnect keeping the session: what was
        received but not published is sent again by the broker to the next bridge of this name."""
        self._stopping.set()
        if self._pump_thread.is_alive():
            self._pump_thread.join()
        self.connected.clear()
        self._client.disconnect()
        self._client.loop_stop()
        log.info("IoT bridge %s stopped: %s", self.client_id, self.stats)

    def retire(self, stop_event: threading.Event | None = None, quiet: float = 2.0) -> bool:
        """Take this name out of the shared group for good (scaling down): resume its session, unsubscribe,
        carry to the bus what the session still holds, then end the session. Without this, Mosquitto 2.0
        keeps giving the name its share of the group's messages until the session expires, and then
        discards them. Done once nothing has come for ``quiet`` seconds and all is acked; False (the
        session kept, nothing lost) if ``stop_event`` is set first."""
        stop_event = stop_event or threading.Event()
        self._retiring = True
        self.start()
        while not self._unsubscribed.wait(0.1):
            if stop_event.is_set():
                self.stop()
                return False
        while not (self._handled == self._arrived and time.monotonic() - self._last_arrival >= quiet):
            if stop_event.wait(0.1):
                self.stop()
                return False
        self._stopping.set()
        self._pump_thread.join()
        ends = Properties(PacketTypes.DISCONNECT)
        ends.SessionExpiryInterval = 0  # the broker drops the session now
        self._client.disconnect(properties=ends)
        self._client.loop_stop()
        log.info("IoT bridge %s retired, its session ended: %s", self.client_id, self.stats)
        return True

    # -- paho callbacks (its network thread) --

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s refused %s: %s", self.url, self.client_id, reason)
            return
        self.stats["connects"] += 1
        with self._lock:
            if flags.session_present:  # the broker kept the session: it sends every message not acked again
                self._resent_below = self._generation
            self._connected_generation = self._generation
        log.info("connected to MQTT %s as %s (session present: %s)", self.url, self.client_id,
                 flags.session_present)
        if self._retiring:
            client.unsubscribe(self.topic_filter)
        else:
            client.subscribe(self.topic_filter, qos=1)

    def _on_unsubscribe(self, _c: Any, _u: Any, _mid: int, _reasons: Any, _p: Any) -> None:
        log.info("unsubscribed from %s on MQTT %s: retiring %s", self.topic_filter, self.url, self.client_id)
        self._last_arrival = time.monotonic()
        self._unsubscribed.set()

    def _on_connect_fail(self, _c: Any, _u: Any) -> None:
        log.warning("cannot reach the MQTT broker %s; trying again", self.url)

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, reasons: list[Any], _p: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("MQTT broker %s refused the subscription %s: %s", self.url, self.topic_filter, reasons)
            return
        log.info("subscribed to %s on MQTT %s", self.topic_filter, self.url)
        self.connected.set()

    def _on_disconnect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        with self._lock:
            self._generation += 1  # what came on the lost connection is never acked on the next one
        self.connected.clear()
        if not self._stopping.is_set():
            log.warning("disconnected from MQTT %s (%s); reconnecting", self.url, reason)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # brokers refuse such topics; keep the message anyway
            topic = msg._topic.decode("utf-8", "replace")
        self._arrived += 1
        self._last_arrival = time.monotonic()
        self._inbox.put(_Received(self._generation, msg.mid, msg.qos, topic, msg.payload, utcnow().isoformat()))

    # -- the pump (its own thread) --

    def _pump(self) -> None:
        while not self._stopping.is_set():
            if self.hold is not None and self.hold():
                self.stats["held"] += 1
                self._stopping.wait(0.05)
                continue
            got = self._take()
            if got:
                self._deliver(got)

    def _take(self) -> list[_Received]:
        """What arrived since the last publication, at most ``batch``: waiting a little for the first, and up
        to ``linger`` seconds after it while fewer than a group came (so a group is not one message)."""
        try:
            got = [self._inbox.get(timeout=0.2)]
        except queue.Empty:
            return []
        until = time.monotonic() + self.linger
        while len(got) < self.batch:
            try:
                got.append(self._inbox.get_nowait())
                continue
            except queue.Empty:
                pass
            left = until - time.monotonic()
            if len(got) >= self.per_event or left <= 0 or self._stopping.is_set():
                break
            try:
                got.append(self._inbox.get(timeout=left))
            except queue.Empty:
                break
        return got

    def _groups(self, got: list[_Received]) -> list[list[_Received]]:
        """The messages cut into groups of at most ``per_event`` messages and ``event_bytes`` of payload (a
        larger message travels alone), in the order received."""
        out: list[list[_Received]] = []
        size = 0
        for r in got:
            if not out or len(out[-1]) >= self.per_event or (size + len(r.payload) > self.event_bytes and out[-1]):
                out.append([])
                size = 0
            out[-1].append(r)
            size += len(r.payload)
        return out

    def _fresh(self, got: list[_Received]) -> list[_Received]:
        """What is to be published of ``got``: not the QoS 1 messages of a lost connection when the broker
        resumed the session, since it sends them again (publishing the old copy too would carry them twice).
        While the connection is lost and not back yet, waits for the broker's answer (at most 10 s; then
        publishes them: a copy too many is dropped by the readings' key, a message lost is not)."""
        if all(r.generation == self._generation for r in got):
            return got
        deadline = time.monotonic() + 10
        while self._connected_generation < self._generation and time.monotonic() < deadline:
            if self._stopping.wait(0.02):
                break
        with self._lock:
            keep = [r for r in got if not (r.qos and r.generation < self._resent_below)]
        self.stats["left_to_resend"] += len(got) - len(keep)
        self._handled += len(got) - len(keep)
        return keep

    def _deliver(self, got: list[_Received]) -> None:
        """Publish the groups, then ack what the bus stored; retry the rest with back-off until it is stored or
        we stop (then it stays unacknowledged, and the broker sends it again)."""
        self.stats["received"] += len(got)
        got = self._fresh(got)
        groups = self._groups(got) if got else []
        events = [ingest_event([(r.topic, r.payload, r.received_at) for r in g], self.prefix) for g in groups]
        delay = RETRY_FIRST
        while groups:
            try:
                self.bus.publish_events(events)
                stored, error = len(groups), None
            except PublishError as exc:
                stored, error = exc.published, exc.cause
            except Exception as exc:  # noqa: BLE001 - any bus failure is retried, never a lost message
                stored, error = 0, exc
            done = [r for g in groups[:stored] for r in g]
            self.stats["published"] += len(done)
            self.stats["events"] += stored
            self._ack(done)
            self._handled += len(done)
            groups, events = groups[stored:], events[stored:]
            if not groups:
                return
            self.stats["publish_failures"] += 1
            log.warning("bus publication failed (%d message(s) wait, retry in %.1f s): %s",
                        sum(len(g) for g in groups), delay, error)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, RETRY_MAX)
            kept = [self._fresh(g) for g in groups]  # the connection may have been lost meanwhile
            if any(len(k) != len(g) for k, g in zip(kept, groups, strict=True)):
                groups = [k for k in kept if k]
                events = [ingest_event([(r.topic, r.payload, r.received_at) for r in g], self.prefix) for g in groups]

    def _ack(self, stored: list[_Received]) -> None:
        """PUBACK in the order received, but only on the connection the message came on: after a reconnect
        the broker sends it again, and that copy is the one to ack."""
        with self._lock:
            for r in stored:
                if r.qos and r.generation == self._generation:
                    self._client.ack(r.mid, r.qos)
                    self.stats["acked"] += 1


def run_bridge(settings_url: str, bus: Bus, name: str, stop_event: threading.Event, **options: Any) -> Bridge:
    """Run a bridge from the broker URL (``CITYBASE_IOT_MQTT_URL``) until ``stop_event`` is set; what
    ``citybase iot bridge`` runs. ``options`` go to :class:`Bridge` (prefix, group, batch…)."""
    bridge = Bridge(settings_url, bus, name, **options)
    bridge.start()
    try:
        while not stop_event.wait(1.0):
            pass
    finally:
        bridge.stop()
    return bridge


def retire_bridge(settings_url: str, bus: Bus, name: str, stop_event: threading.Event, **options: Any) -> bool:
    """Retire the bridge ``name`` for good (see :meth:`Bridge.retire`); ``citybase iot bridge --retire``."""
    return Bridge(settings_url, bus, name, **options).retire(stop_event)


def main(argv: list[str] | None = None) -> int:
    """``python -m citybase.iot.bridge --mqtt URL --bus URL``: runs until SIGTERM or SIGINT."""
    from citybase.bus.base import connect

    parser = argparse.ArgumentParser(prog="python -m citybase.iot.bridge",
                                     description="Carry device messages from the MQTT broker to the bus.")
    parser.add_argument("--mqtt", required=True, help="the broker, mqtt://[user:password@]host[:1883] or mqtts://")
    parser.add_argument("--bus", required=True, help="the bus, nats://host:4222[?deployment=NAME] or memory://")
    parser.add_argument("--name", default=socket.gethostname().split(".")[0],
                        help="this bridge's name (client id citybase-bridge-NAME); keep it across restarts")
    parser.add_argument("--prefix", default=PREFIX, help=f"topic prefix (default {PREFIX})")
    parser.add_argument("--retire", action="store_true",
                        help="take NAME out of the group for good: carry what its session holds, then end it")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        bus = connect(args.bus)
    except (ConnectionError, ValueError) as exc:
        parser.exit(2, f"{exc}\n")
    try:
        if args.retire:
            return 0 if retire_bridge(args.mqtt, bus, args.name, stop, prefix=args.prefix) else 1
        run_bridge(args.mqtt, bus, args.name, stop, prefix=args.prefix)
    except ValueError as exc:
        parser.exit(2, f"{exc}\n")
    finally:
        bus.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
