"""Driven by tests/twin/test_ngsildclient.py with the Python of .venv-ngsild (ngsildclient 0.5.2 from PyPI):
an NGSI-LD client that knows nothing of citybase creates, queries (q, geoQ), reads history and aggregates.

    python ngsildclient_run.py BASE_URL TOKEN TENANT

Prints one JSON object of what it saw; exits non-zero on any client error."""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlparse

import requests
from ngsildclient import Client, Entity

base, token, tenant = sys.argv[1], sys.argv[2], sys.argv[3]


class Bearer(requests.auth.AuthBase):
    def __call__(self, r):
        r.headers["Authorization"] = f"Bearer {token}"
        return r


u = urlparse(base)
client = Client(hostname=u.hostname, port=u.port, tenant=tenant, custom_auth=Bearer(), verbose=False)
seen = {}

for n in range(5):
    e = Entity("AirQualityObserved", f"XH-{n}")  # urn:ngsi-ld:AirQualityObserved:XH-n
    e.prop("pm25", 30 + 10 * n, unitcode="GQ", observedat="2026-12-01T08:00:00Z")
    e.prop("district", "徐汇" if n % 2 == 0 else "长宁")
    e.gprop("location", (31.19 + n * 0.001, 121.43))  # ngsildclient takes (lat, lon)
    e.rel("refPointOfInterest", f"urn:ngsi-ld:PointOfInterest:POI-{n}")
    client.create(e)

got = client.get("urn:ngsi-ld:AirQualityObserved:XH-2")
seen["retrieved_pm25"] = got["pm25"]["value"]
seen["q"] = sorted(x.id for x in client.query(type="AirQualityObserved", q='pm25>45;district=="徐汇"'))
near = client.query(type="AirQualityObserved", gq="georel=near;maxDistance==150&geometry=Point&coordinates=[121.43,31.19]")
seen["geoq_near"] = sorted(x.id for x in near)
seen["count"] = client.entities.count("AirQualityObserved")

for minute, value in ((1, 61.0), (2, 62.0), (3, 66.0)):
    got = client.get("urn:ngsi-ld:AirQualityObserved:XH-1")
    got.prop("pm25", value, observedat=f"2026-12-01T08:0{minute}:00Z")
    client.update(got)

# subscribe and receive: a notification server of the client's own
received = []


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
sub_id = client.subscriptions.create({
    "id": "urn:ngsi-ld:Subscription:ngc-1", "type": "Subscription", "entities": [{"type": "AirQualityObserved"}],
    "watchedAttributes": ["pm25"], "q": "pm25>70",
    "notification": {"format": "keyValues", "endpoint": {"uri": f"http://127.0.0.1:{server.server_port}/notify",
                                                         "accept": "application/json"}},
    "@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"}, raise_on_conflict=False)
seen["subscription"] = sub_id
got = client.get("urn:ngsi-ld:AirQualityObserved:XH-3")
got.prop("pm25", 88.0, observedat="2026-12-01T08:10:00Z")
client.update(got)
deadline = time.monotonic() + 60
while not received and time.monotonic() < deadline:
    time.sleep(0.2)
seen["notified"] = [(e["id"], e["pm25"]) for n in received for e in n["data"]]

history = client.temporal.get("urn:ngsi-ld:AirQualityObserved:XH-1", attrs=["pm25"])
seen["history"] = history
r = client.session.get(f"{client.url}/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:AirQualityObserved:XH-1",
                       params={"attrs": "pm25", "options": "aggregatedValues", "aggrMethods": "max,avg",
                               "aggrPeriodDuration": "PT1H", "timerel": "after", "timeAt": "2026-12-01T00:00:00Z"},
                       headers={"Accept": "application/json"})
r.raise_for_status()
seen["aggregated"] = r.json()["pm25"]
client.delete(client.get("urn:ngsi-ld:AirQualityObserved:XH-4"))  # an Entity: a str is read as a batch
seen["count_after_delete"] = client.entities.count("AirQualityObserved")
print(json.dumps(seen, ensure_ascii=False))
