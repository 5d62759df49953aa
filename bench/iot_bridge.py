"""Throughput of the IoT bridge: Mosquitto → bridge → NATS JetStream, against a plain paho subscriber.

    PYTHONPATH=src .venv/bin/python bench/iot_bridge.py [--messages 20000] [--nats nats://127.0.0.1:4222]

Starts its own Mosquitto on a free port (max_queued_messages 0). Two measurements for each consumer:

* backlog: N messages are queued for the consumer's session while it is away (published with mosquitto_pub,
  which is C and fast), then the consumer connects and the time until it has handled all N is taken; this is
  the consumer's own ceiling, the publishers play no part;
* live: the consumer is connected while 4 mosquitto_pub processes publish N messages at QoS 1.

"Handled" is: received (and PUBACKed by paho) for the plain subscriber; published to JetStream and then
PUBACKed for the bridge. Not a test: a figure to report."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from citybase.bus.nats import NatsBus
from citybase.iot.bridge import Bridge

PAYLOAD = ('{{"token":"5f0c2a9e4b7d4c1f8e3a6b2d9c0e1f7a","t":"2026-12-01T08:{m:02d}:{s:02d}Z",'
           '"v":{{"currentLevel":0.{n:04d},"batteryLevel":0.8,"temperature":21.5,"rssi":-71,"status":"ok","round":{r}}}}}')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mosquitto(tmp: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    conf = tmp / "m.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 0\nmax_inflight_messages 0\n")
    proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mosquitto did not start")


ROUND = [0]


def publish(port: int, prefix: str, n: int, publishers: int, tmp: Path) -> None:
    """N messages at QoS 1 from ``publishers`` mosquitto_pub processes (one device topic each)."""
    procs = []
    ROUND[0] += 1  # another round, other payloads: JetStream would drop a repeat as a duplicate
    for p in range(publishers):
        lines = tmp / f"pub{p}.txt"
        count = n // publishers + (1 if p < n % publishers else 0)
        lines.write_text("".join(PAYLOAD.format(r=ROUND[0], m=i // 60 % 60, s=i % 60, n=(i * publishers + p) % 10000) + "\n"
                                 for i in range(count)))
        procs.append(subprocess.Popen(["mosquitto_pub", "-p", str(port), "-q", "1", "-V", "mqttv5",
                                       "-t", f"{prefix}/dev-{p:04d}/up", "-l"], stdin=open(lines, "rb")))
    for proc in procs:
        proc.wait()


def plain_subscriber(port: int, prefix: str, client_id: str) -> tuple[mqtt.Client, list[int], threading.Event]:
    """A paho v5 subscriber with the bridge's session settings that only counts (paho acks on return)."""
    count = [0]
    ready = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)

    def on_message(_c, _u, _m):
        count[0] += 1

    c.on_message = on_message
    c.on_connect = lambda cl, *_: cl.subscribe(f"$share/citybase/{prefix}/+/up", qos=1)
    c.on_subscribe = lambda *_: ready.set()
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval, props.ReceiveMaximum = 3600, 10000
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    c.loop_start()
    ready.wait(10)
    return c, count, ready


def wait_for(counter, n: int, t0: float) -> float:
    while counter() < n:
        time.sleep(0.002)
    return time.perf_counter() - t0


def run(n: int, nats_url: str, batch: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="iotbench-"))
    broker, port = start_mosquitto(tmp)
    url = f"mqtt://127.0.0.1:{port}"
    try:
        # -- plain paho subscriber --
        prefix, cid = f"b{uuid.uuid4().hex[:6]}/iot", f"plain-{uuid.uuid4().hex[:6]}"
        c, count, _ = plain_subscriber(port, prefix, cid)
        c.disconnect()
        c.loop_stop()
        publish(port, prefix, n, 4, tmp)
        t0 = time.perf_counter()
        c, count, _ = plain_subscriber(port, prefix, cid)
        took = wait_for(lambda: count[0], n, t0)
        print(f"plain paho subscriber, backlog of {n}: {n / took:,.0f} msg/s ({took:.2f} s)")
        count[0] = 0
        t0 = time.perf_counter()
        publish(port, prefix, n, 4, tmp)
        took = wait_for(lambda: count[0], n, t0)
        print(f"plain paho subscriber, live from 4 publishers: {n / took:,.0f} msg/s ({took:.2f} s)")
        c.disconnect()
        c.loop_stop()

        # -- the bridge to NATS --
        bus = NatsBus(f"{nats_url}?deployment=bench{uuid.uuid4().hex[:8]}")
        try:
            prefix, name = f"b{uuid.uuid4().hex[:6]}/iot", f"bench{uuid.uuid4().hex[:6]}"
            b = Bridge(url, bus, name, prefix=prefix, batch=batch)
            b.start()
            b.connected.wait(10)
            b.stop()
            publish(port, prefix, n, 4, tmp)
            t0 = time.perf_counter()
            b = Bridge(url, bus, name, prefix=prefix, batch=batch)
            b.start()
            took = wait_for(lambda: b.stats["acked"], n, t0)
            print(f"bridge → NATS, backlog of {n}: {n / took:,.0f} msg/s ({took:.2f} s)")
            t0 = time.perf_counter()
            publish(port, prefix, n, 4, tmp)
            took = wait_for(lambda: b.stats["acked"], 2 * n, t0)
            print(f"bridge → NATS, live from 4 publishers: {n / took:,.0f} msg/s ({took:.2f} s)")
            b.stop()
            print(f"bridge counters: {b.stats}")
            stored = bus._call(bus._js_ctx().stream_info(bus.stream)).state.messages
            print(f"events in the stream: {stored} (expected {2 * n})")
        finally:
            bus.delete_streams()
            bus.close()
    finally:
        broker.terminate()
        broker.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=1000, help="the bridge's largest bus publication")
    ap.add_argument("--nats", default=os.environ.get("CITYBASE_TEST_NATS_URL", "nats://127.0.0.1:4222"))
    a = ap.parse_args()
    run(a.messages, a.nats, a.batch)
