"""The twin's process caches (twin.caching): per database, dropped on change, a value read across a drop not
kept, a tenant this transaction made not taken as known."""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from citybase.twin.caching import KnownTenants, ProcessCache


def test_values_are_kept_per_database_and_dropped():
    cache = ProcessCache("test.cache")
    one, two = create_engine("sqlite://"), create_engine("sqlite://")
    loads = []

    def load(v):
        loads.append(v)
        return v

    with Session(one) as a, Session(two) as b:
        assert cache.get(a, "t", lambda: load(1)) == 1
        assert cache.get(a, "t", lambda: load(99)) == 1  # kept
        assert cache.get(b, "t", lambda: load(2)) == 2  # another database, another copy
        cache.drop(one)
        assert cache.get(a, "t", lambda: load(3)) == 3
        assert cache.get(b, "t", lambda: load(98)) == 2
        cache.forget()
        assert cache.get(b, "t", lambda: load(4)) == 4
    assert loads == [1, 2, 3, 4]


def test_a_value_read_while_a_drop_happened_is_not_kept():
    cache = ProcessCache("test.cache")
    engine = create_engine("sqlite://")
    with Session(engine) as s:
        def stale():
            cache.drop(engine)  # a change committed while the old rows were being read
            return "old"

        assert cache.get(s, "t", stale) == "old"
        assert cache.get(s, "t", lambda: "new") == "new"


def test_a_tenant_made_by_this_transaction_is_not_known_until_read_again():
    tenants = KnownTenants()
    engine = create_engine("sqlite://")
    with Session(engine) as s:
        tenants.made(s, "fresh")
        tenants.seen(s, "fresh")  # it may still roll back
        assert not tenants.known(s, "fresh")
        tenants.seen(s, "old")
        assert tenants.known(s, "old")
    with Session(engine) as s:
        assert tenants.known(s, "old") and not tenants.known(s, "fresh")
