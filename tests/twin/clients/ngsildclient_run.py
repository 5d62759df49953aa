"""Driven by tests/twin/test_ngsildclient.py with the Python of .venv-ngsild (ngsildclient 0.5.2 from PyPI):
an NGSI-LD client that knows nothing of citybase creates, queries (q, geoQ), reads history and aggregates.

    python ngsildclient_run.py BASE_URL TOKEN TENANT

Prints one JSON object of what it saw; exits non-zero on any client error."""

import json
import sys
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
