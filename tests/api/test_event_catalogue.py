"""The event catalogue is generated from the domains' typed schemas and covers what is really published."""

import uuid

from citybase.kernel.domain import domains


def test_the_catalogue_is_an_asyncapi_document_of_every_declared_subject(client):
    doc = client.get("/api/v1/events/asyncapi.json").json()
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in doc["channels"].values()}
    declared = {s for d in domains() for s in d.events}
    assert declared <= addresses and "citybase.ops.incident.dispatch" in addresses
    step = doc["components"]["schemas"]["IncidentStep"]
    assert {"incident_id", "status", "category_code"} <= set(step["required"])
    for ch in doc["channels"].values():  # every message payload resolves to a schema in the document
        for m in ch["messages"].values():
            ref = m["payload"]["allOf"][1]["properties"]["data"]["$ref"].rsplit("/", 1)[-1]
            assert ref in doc["components"]["schemas"]


def test_every_event_of_a_loop_is_in_the_catalogue_and_valid_against_its_schema(client, city):
    from citybase.ops.domain import DOMAIN

    sub = client.app.state.bus.subscribe("citybase.>", durable=f"cat-{uuid.uuid4().hex}")
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from citybase.geo.models import Building

    with Session(city.engine) as s:
        building = s.scalars(select(Building.id).order_by(Building.id).offset(37).limit(1)).one()
    r = client.post("/api/v1/ops/incidents", headers=city.auth("dispatcher"),
                    json={"description": f"井盖不见了 {uuid.uuid4().hex[:6]}", "category_code": "02006",
                          "building_id": building, "reporter_phone": "13912345678"})
    assert r.status_code == 201, r.text
    incident = r.json()["incident"]["id"]
    # the shared bus holds what earlier tests published too: read it all, keep this incident's events
    seen = [d for d in sub.fetch(batch=100_000, timeout=1.0)
            if d.event.subject.startswith("citybase.ops.") and d.event.data.get("incident_id") == incident]
    assert seen
    for d in seen:
        model = DOMAIN.events[d.event.subject]  # a KeyError here: a subject published but not declared
        model.model_validate(d.event.data)
        d.ack()
