"""The demo city: deterministic, coherent, with valid identifiers."""

import hashlib
import random

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from citybase.core.ids import validate_id_number, validate_uscc
from citybase.demo.generator import generate
from citybase.geo.models import Building
from citybase.registry.models import LegalEntity, Person
from citybase.storage.migrate import upgrade
from tests.conftest import new_database


def _fingerprint(engine):
    h = hashlib.sha256()
    with engine.connect() as c:
        for table, cols in (("areas", "code, geometry"), ("buildings", "address, lon, lat"),
                            ("persons", "id_number, name, phone, building_id"), ("legal_entities", "uscc, name")):
            for row in c.execute(text(f"SELECT {cols} FROM {table} ORDER BY id")):
                h.update(repr(tuple(row)).encode())
    return h.hexdigest()


def test_the_same_seed_gives_the_same_city_and_another_seed_another(tmp_path):
    prints = []
    for seed in (11, 11, 12):
        db = new_database("sqlite", tmp_path)
        upgrade(db.engine)
        generate(db.engine, size="small", seed=seed)
        prints.append(_fingerprint(db.engine))
        db.engine.dispose()
    assert prints[0] == prints[1] != prints[2]


def test_every_generated_identifier_is_valid(city):
    with Session(city.engine) as s:
        persons = s.query(Person.id_number, Person.sex, Person.birth_date).all()
        entities = s.query(LegalEntity.uscc, LegalEntity.legal_rep_id_number).all()
    for idn, sex, born in persons:
        validate_id_number(idn)
        assert (int(idn[16]) % 2 == 1) == (sex == "M")
        assert idn[6:14] == born.strftime("%Y%m%d")
    for uscc, rep in entities:
        validate_uscc(uscc)
        validate_id_number(rep)
    assert len({p[0] for p in persons}) == len(persons)


def test_people_live_in_residential_buildings_at_their_address(city):
    with Session(city.engine) as s:
        rows = s.query(Person, Building).join(Building, Building.id == Person.building_id).limit(2000).all()
    assert rows
    for p, b in rows:
        assert b.use == "residential"
        assert p.registered_address.startswith(b.address) and p.registered_address.endswith("室")
        assert b.address.startswith("上海市徐汇区")


def test_representatives_are_registered_adults(city):
    with Session(city.engine) as s:
        reps = [e.legal_rep_id_number for e in s.query(LegalEntity).limit(200)]
        known = {p for (p,) in s.query(Person.id_number).filter(Person.id_number.in_(reps))}
    assert set(reps) <= known


def test_building_addresses_are_unique_keys(city):
    with Session(city.engine) as s:
        keys = [k for (k,) in s.query(Building.address_key)]
    assert len(keys) == len(set(keys))


def test_unknown_size_is_refused(tmp_path):
    db = new_database("sqlite", tmp_path)
    with pytest.raises(ValueError, match="small or district"):
        generate(db.engine, size="huge")


def test_phone_numbers_are_mainland_mobiles(city):
    with Session(city.engine) as s:
        phones = [p for (p,) in s.query(Person.phone).filter(Person.phone.is_not(None)).limit(500)]
    rnd = random.Random(1)
    for p in rnd.sample(phones, 50):
        assert len(p) == 11 and p[0] == "1" and p[1] in "3456789"
