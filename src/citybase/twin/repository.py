"""Every query of the twin. Entities are read and written whole (their attributes are one JSON document);
history rows are appended in batches (COPY on PostgreSQL); ``q`` and ``geoQ`` are compiled to SQL by
``twin.query`` / ``twin.geoquery`` — JSONB/GIN and PostGIS on PostgreSQL, JSON1 and a bounding box on SQLite."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, delete, func, insert, literal_column, or_, select, text, update
from sqlalchemy.orm import Session

from citybase.storage.db import is_postgres, sqlite_datetime, take_writer
from citybase.twin.caching import TENANTS
from citybase.twin.ldcontext import NGSI
from citybase.twin.models import TwinContext, TwinEntity, TwinHistory, TwinTenant

LOCATION = NGSI + "location"
SQLITE_HISTORY_CHUNK = 1000  # history rows per INSERT on SQLite (11 parameters each, below its limit of 32,766)
HISTORY_COLUMNS = ("tenant", "entity_id", "types", "attr", "dataset_id", "instance_id", "observed_at", "recorded_at",
                   "instance", "number", "deleted")


class TwinRepository:
    """Queries on one session."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.pg = is_postgres(session)
        self.dialect = "postgresql" if self.pg else "sqlite"

    def _sqlite_functions(self) -> None:
        """``regexp`` and the q-language's helpers on this session's SQLite connection (cheap, idempotent)."""
        from citybase.twin.query import register_sqlite_functions

        register_sqlite_functions(self.s.connection().connection.driver_connection)

    def geom_column(self) -> Any:
        return literal_column("twin_entities.geom")

    def id_matches(self, pattern: str) -> Any:
        """Entity ids matching a regular expression (PostgreSQL's ``~``; Python's ``re`` on SQLite)."""
        if self.pg:
            return TwinEntity.entity_id.op("~")(pattern)
        return func.regexp(pattern, TwinEntity.entity_id)

    def has_any_attribute(self, iris: Sequence[str]) -> Any:
        """Entities with at least one of these attributes (``?|`` on JSONB, served by no index but cheap)."""
        if self.pg:
            from sqlalchemy.dialects.postgresql import array

            return TwinEntity.attrs.op("?|")(array(list(iris)))
        each = func.json_each(TwinEntity.attrs).table_valued("key")
        return select(literal_column("1")).select_from(each).where(each.c.key.in_(list(iris))).exists()

    # -- tenants
    def tenant_exists(self, name: str) -> bool:
        if name == "" or TENANTS.known(self.s, name):
            return True
        if self.s.get(TwinTenant, name) is None:
            return False
        TENANTS.seen(self.s, name)
        return True

    def ensure_tenant(self, name: str, now: datetime) -> None:
        """The tenant exists after this: created by the first write, once even when two first writes race
        (INSERT … ON CONFLICT DO NOTHING, which both engines have)."""
        if not name or self.tenant_exists(name):
            return
        TENANTS.made(self.s, name)
        if self.pg:
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert
        self.s.execute(upsert(TwinTenant).values(name=name, created_at=now).on_conflict_do_nothing(index_elements=["name"]))

    def tenants(self) -> list[str]:
        return list(self.s.scalars(select(TwinTenant.name).order_by(TwinTenant.name)))

    # -- entities
    def lock(self, tenant: str, entity_id: str) -> TwinEntity | None:
        """The entity's row, held for this transaction's update (FOR UPDATE; on SQLite the writer lock)."""
        if self.pg:
            return self.s.scalars(select(TwinEntity).where(TwinEntity.tenant == tenant, TwinEntity.entity_id == entity_id)
                                  .with_for_update()).first()
        self.s.execute(update(TwinEntity).where(TwinEntity.tenant == tenant, TwinEntity.entity_id == entity_id)
                       .values(pk=TwinEntity.pk).execution_options(synchronize_session=False))
        return self.get(tenant, entity_id)

    def get(self, tenant: str, entity_id: str) -> TwinEntity | None:
        return self.s.scalars(select(TwinEntity).where(TwinEntity.tenant == tenant,
                                                       TwinEntity.entity_id == entity_id)).first()

    def get_many(self, tenant: str, ids: Sequence[str]) -> dict[str, TwinEntity]:
        out: dict[str, TwinEntity] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for row in self.s.scalars(select(TwinEntity).where(TwinEntity.tenant == tenant,
                                                               TwinEntity.entity_id.in_(chunk))):
                out[row.entity_id] = row
        return out

    def lock_many(self, tenant: str, ids: Sequence[str]) -> dict[str, Any]:
        """The rows of these entities (pk, entity_id, types, scopes, attrs, created_at, modified_at), held for
        this transaction's update as :meth:`lock` holds one; read as plain rows, not ORM objects."""
        t = TwinEntity.__table__
        out: dict[str, Any] = {}
        if ids and not self.pg:  # the database's writer lock first, as lock() takes it (one row's write takes
            # it for all; rewriting every row of the batch would cost as much as writing them)
            self.s.execute(update(t).where(t.c.tenant == tenant, t.c.entity_id == ids[0]).values(pk=t.c.pk))
        for i in range(0, len(ids), 500):
            chunk = list(ids[i:i + 500])
            q = select(t.c.pk, t.c.entity_id, t.c.types, t.c.scopes, t.c.attrs, t.c.created_at,
                       t.c.modified_at).where(t.c.tenant == tenant, t.c.entity_id.in_(chunk))
            if self.pg:
                q = q.with_for_update()
            for row in self.s.execute(q):
                out[row.entity_id] = row
        return out

    def insert_many(self, tenant: str, items: Sequence[tuple[dict[str, Any], tuple | None, str | None]],
                    at: datetime) -> None:
        """New entities (doc, bbox, GeoJSON) in one statement, their geometries in a second on PostgreSQL."""
        if not items:
            return
        t = TwinEntity.__table__
        self.s.execute(insert(t), [self._columns(tenant, doc, bbox, at) | {"created_at": at} for doc, bbox, _ in items])
        self._set_geoms(tenant, [(doc["id"], g) for doc, _, g in items if g is not None])

    def update_many(self, tenant: str, items: Sequence[tuple[int, dict[str, Any], tuple | None, str | None, bool]],
                    at: datetime) -> None:
        """Existing entities (pk, doc, bbox, GeoJSON, whether the location changed) written in one
        executemany, the geometries that changed after."""
        if not items:
            return
        from sqlalchemy import bindparam

        t = TwinEntity.__table__
        cols = ("types", "scopes", "attrs", "modified_at", "min_lon", "min_lat", "max_lon", "max_lat")
        stmt = update(t).where(t.c.pk == bindparam("b_pk")).values({c: bindparam("b_" + c) for c in cols})
        rows = []
        for pk, doc, bbox, _, _ in items:
            values = self._columns(tenant, doc, bbox, at)
            rows.append({"b_pk": pk, **{"b_" + c: values[c] for c in cols}})
        self.s.execute(stmt, rows)
        if self.pg:
            self._set_geoms(tenant, [(doc["id"], g) for _, doc, _, g, moved in items if moved])

    @staticmethod
    def _columns(tenant: str, doc: dict[str, Any], bbox: tuple | None, at: datetime) -> dict[str, Any]:
        min_lon, min_lat, max_lon, max_lat = bbox if bbox else (None, None, None, None)
        return {"tenant": tenant, "entity_id": doc["id"], "types": list(doc["type"]), "scopes": doc.get("scope"),
                "attrs": doc["attrs"], "modified_at": at, "min_lon": min_lon, "min_lat": min_lat,
                "max_lon": max_lon, "max_lat": max_lat}

    def _set_geoms(self, tenant: str, geoms: Sequence[tuple[str, str | None]]) -> None:
        """Every entity's ``geom`` from its GeoJSON (None: no geometry), in one statement (PostgreSQL)."""
        if not self.pg or not geoms:
            return
        self.s.execute(text(
            "UPDATE twin_entities e SET geom = CASE WHEN v.g IS NULL THEN NULL "
            "ELSE ST_SetSRID(ST_GeomFromGeoJSON(v.g), 4326) END "
            "FROM unnest(CAST(:ids AS text[]), CAST(:gs AS text[])) AS v(eid, g) "
            "WHERE e.tenant = :t AND e.entity_id = v.eid"),
            {"ids": [i for i, _ in geoms], "gs": [g for _, g in geoms], "t": tenant})

    def add(self, tenant: str, doc: dict[str, Any], created: datetime, bbox: tuple | None, geojson: str | None) -> TwinEntity:
        row = TwinEntity(tenant=tenant, entity_id=doc["id"], types=doc["type"], scopes=doc.get("scope"),
                         attrs=doc["attrs"], created_at=created, modified_at=created)
        self._set_bbox(row, bbox)
        self.s.add(row)
        self.s.flush()
        self._set_geom(row, geojson)
        return row

    def save(self, row: TwinEntity, doc: dict[str, Any], modified: datetime, bbox: tuple | None,
             geojson: str | None) -> None:
        moved = (row.attrs or {}).get(LOCATION) != doc["attrs"].get(LOCATION)
        row.types = list(doc["type"])
        row.scopes = doc.get("scope")
        row.attrs = dict(doc["attrs"])  # a new object: SQLAlchemy sees the change
        row.modified_at = modified
        self._set_bbox(row, bbox)
        self.s.flush()
        if moved:  # the geometry is written again only when the location changed
            self._set_geom(row, geojson)

    @staticmethod
    def _set_bbox(row: TwinEntity, bbox: tuple | None) -> None:
        row.min_lon, row.min_lat, row.max_lon, row.max_lat = bbox if bbox else (None, None, None, None)

    def _set_geom(self, row: TwinEntity, geojson: str | None) -> None:
        if self.pg:
            self.s.execute(text("UPDATE twin_entities SET geom = CASE WHEN CAST(:g AS text) IS NULL THEN NULL "
                                "ELSE ST_SetSRID(ST_GeomFromGeoJSON(CAST(:g AS text)), 4326) END WHERE pk = :pk"),
                           {"g": geojson, "pk": row.pk})

    def remove(self, row: TwinEntity) -> None:
        self.s.delete(row)
        self.s.flush()

    def query(self, tenant: str, where: Sequence[Any], *, limit: int, offset: int, count: bool,
              refine: Any = None) -> tuple[list[Any], int | None]:
        """Entities matching every clause, in creation order; ``refine`` (a Python predicate on rows) filters
        what SQL could only narrow down (geoQ on SQLite), so paging happens after it."""
        if not self.pg:
            self._sqlite_functions()
        t = TwinEntity.__table__  # plain rows (read only): ORM objects would cost more than the query
        q: Select = select(t).where(TwinEntity.tenant == tenant, *where).order_by(TwinEntity.pk)
        if refine is None:
            total = self.s.scalar(select(func.count()).select_from(q.order_by(None).subquery())) if count else None
            rows = list(self.s.execute(q.limit(limit).offset(offset))) if limit else []
            return rows, total
        matched = [r for r in self.s.execute(q) if refine(r)]
        return matched[offset:offset + limit] if limit else [], len(matched) if count else None

    def ids_only(self, tenant: str, where: Sequence[Any]) -> list[str]:
        return list(self.s.scalars(select(TwinEntity.entity_id).where(TwinEntity.tenant == tenant, *where)))

    def types(self, tenant: str) -> list[tuple[str, list[str]]]:
        """Every (type IRI, attribute IRIs of entities of that type), from the latest state."""
        if self.pg:
            sql = text("SELECT t.type, array_agg(DISTINCT k.key) FILTER (WHERE k.key IS NOT NULL) "
                       "FROM twin_entities e CROSS JOIN LATERAL jsonb_array_elements_text(e.types) AS t(type) "
                       "LEFT JOIN LATERAL jsonb_object_keys(e.attrs) AS k(key) ON true "
                       "WHERE e.tenant = :t GROUP BY t.type ORDER BY t.type")
            return [(t, list(a or [])) for t, a in self.s.execute(sql, {"t": tenant})]
        sql = text("SELECT t.value, group_concat(DISTINCT k.key) FROM twin_entities e, json_each(e.types) t "
                   "LEFT JOIN json_each(e.attrs) k WHERE e.tenant = :t GROUP BY t.value ORDER BY t.value")
        return [(t, a.split(",") if a else []) for t, a in self.s.execute(sql, {"t": tenant})]

    def count_of_type(self, tenant: str, type_iri: str) -> int:
        if self.pg:
            return self.s.scalar(text("SELECT count(*) FROM twin_entities WHERE tenant = :t AND types @> CAST(:j AS jsonb)"),
                                 {"t": tenant, "j": json.dumps([type_iri])}) or 0
        return self.s.scalar(text("SELECT count(*) FROM twin_entities e WHERE tenant = :t AND EXISTS "
                                  "(SELECT 1 FROM json_each(e.types) WHERE value = :v)"), {"t": tenant, "v": type_iri}) or 0

    def attribute_rows(self, tenant: str) -> list[tuple[str, str, str, int]]:
        """(attribute IRI, attribute type, entity type IRI, number of instances) over every entity: instances
        are counted once per entity, under its first type."""
        if self.pg:
            sql = text("SELECT k.key, i.inst->>'type', t.type, CASE WHEN t.ord = 1 THEN 1 ELSE 0 END "
                       "FROM twin_entities e CROSS JOIN LATERAL jsonb_each(e.attrs) AS k(key, val) "
                       "CROSS JOIN LATERAL jsonb_array_elements(k.val) AS i(inst) "
                       "CROSS JOIN LATERAL jsonb_array_elements_text(e.types) WITH ORDINALITY AS t(type, ord) "
                       "WHERE e.tenant = :t")
        else:
            sql = text("SELECT k.key, json_extract(i.value, '$.type'), t.value, CASE WHEN t.key = 0 THEN 1 ELSE 0 END "
                       "FROM twin_entities e, json_each(e.attrs) k, json_each(k.value) i, json_each(e.types) t "
                       "WHERE e.tenant = :t")
        return [tuple(r) for r in self.s.execute(sql, {"t": tenant})]

    # -- history
    def merge_observations(self, tenant: str, patches: dict[str, dict[str, list[dict[str, Any]]]],
                           at: datetime) -> dict[str, list[str]]:
        """Each entity's attributes replaced by the patch's ({attribute IRI: [instance]}) in ONE statement per
        batch, without reading the entities: an attribute is taken only when its ``observedAt`` is not older
        than the stored one's (readings arriving out of order never turn the state back), and the stored
        instance's ``createdAt`` is kept. Returns the type IRIs of the entities written, by id (an id not
        stored is not there)."""
        if not patches:
            return {}
        rows = json.dumps(patches, ensure_ascii=False)  # {entity id: patch}
        if self.pg:
            res = self.s.execute(text(
                "UPDATE twin_entities AS e SET modified_at = :at, attrs = e.attrs || coalesce(("
                " SELECT jsonb_object_agg(p.key, CASE WHEN e.attrs -> p.key IS NULL THEN p.value"
                "  ELSE jsonb_set(p.value, '{0,createdAt}', coalesce(e.attrs -> p.key -> 0 -> 'createdAt',"
                "                                                    p.value -> 0 -> 'createdAt')) END)"
                " FROM jsonb_each(v.value) AS p"
                " WHERE coalesce(e.attrs -> p.key -> 0 ->> 'observedAt', '') <= (p.value -> 0 ->> 'observedAt')"
                "), '{}'::jsonb) "
                "FROM jsonb_each(CAST(:rows AS jsonb)) AS v "
                "WHERE e.tenant = :tenant AND e.entity_id = v.key RETURNING e.entity_id, e.types"),
                {"at": at, "rows": rows, "tenant": tenant})
        else:  # SQLite 3.35+: UPDATE … FROM and RETURNING
            take_writer(self.s)
            path = "'$.\"' || p.key || '\"'"
            res = self.s.execute(text(  # the patches MATERIALIZED first, so that each finds its entity by the
                # unique key (as a plain FROM, SQLite scans every entity of the tenant for each patch)
                "WITH v(key, value) AS MATERIALIZED (SELECT key, value FROM json_each(:rows)) "
                "UPDATE twin_entities SET modified_at = :at, attrs = json_patch(attrs, coalesce(("
                " SELECT json_group_object(p.key, CASE WHEN json_type(twin_entities.attrs, " + path + ") IS NULL"
                "  THEN json(p.value) ELSE json_set(p.value, '$[0].createdAt', coalesce("
                "   json_extract(twin_entities.attrs, " + path + " || '[0].createdAt'),"
                "   json_extract(p.value, '$[0].createdAt'))) END)"
                " FROM json_each(v.value) AS p"
                " WHERE coalesce(json_extract(twin_entities.attrs, " + path + " || '[0].observedAt'), '')"
                "  <= json_extract(p.value, '$[0].observedAt')"
                "), '{}')) FROM v WHERE tenant = :tenant AND entity_id = v.key "
                "RETURNING entity_id, types"), {"at": sqlite_datetime(at), "rows": rows, "tenant": tenant})
        return {eid: list(types if isinstance(types, list) else json.loads(types or "[]")) for eid, types in res}

    def append_history(self, rows: Iterable[dict[str, Any]]) -> int:
        """Append history rows in one batch: COPY on PostgreSQL, executemany on SQLite (this transaction)."""
        rows = list(rows)
        if not rows:
            return 0
        if self.pg:
            raw = self.s.connection().connection.driver_connection
            types_json: dict[int, str] = {}  # rows of one entity share its list of types: dumped once
            dumps = json.dumps
            with raw.cursor().copy(f"COPY twin_history ({', '.join(HISTORY_COLUMNS)}) FROM STDIN") as copy:
                for r in rows:
                    t = r["types"]
                    tj = types_json.get(id(t))
                    if tj is None:
                        tj = types_json[id(t)] = dumps(t, ensure_ascii=False)
                    copy.write_row((r["tenant"], r["entity_id"], tj, r["attr"], r["dataset_id"], r["instance_id"],
                                    r["observed_at"], r["recorded_at"], dumps(r["instance"], ensure_ascii=False),
                                    r["number"], r["deleted"]))
        else:  # multi-row INSERTs through the DBAPI with the values as SQLAlchemy would store them (its per-row
            # parameter processing cost more than the writing; and executemany steps the statement once a row,
            # releasing and taking back the GIL each time, which other busy threads make wait); the writer lock
            # first, as the ORM's writes take it
            take_writer(self.s)
            dumps = json.dumps
            types_json = {}
            values: list[Any] = []
            recorded: tuple[Any, str | None] = (None, None)  # a batch's rows share their recorded time
            for r in rows:
                t = r["types"]
                tj = types_json.get(id(t))
                if tj is None:
                    tj = types_json[id(t)] = dumps(t)
                if r["recorded_at"] is not recorded[0]:
                    recorded = (r["recorded_at"], sqlite_datetime(r["recorded_at"]))
                values += (r["tenant"], r["entity_id"], tj, r["attr"], r["dataset_id"], r["instance_id"],
                           sqlite_datetime(r["observed_at"]), recorded[1],
                           dumps(r["instance"]), r["number"], 1 if r["deleted"] else 0)
            cur = self.s.connection().connection.driver_connection.cursor()
            width, chunk = len(HISTORY_COLUMNS), SQLITE_HISTORY_CHUNK
            head = f"INSERT INTO twin_history ({', '.join(HISTORY_COLUMNS)}) VALUES "
            one = f"({', '.join('?' * width)})"
            for i in range(0, len(rows), chunk):
                n = min(chunk, len(rows) - i)
                cur.execute(head + ", ".join([one] * n), values[i * width:(i + n) * width])
        return len(rows)

    def history(self, tenant: str, entity_id: str, *, attrs: Sequence[str] | None, time_column: str,
                start: datetime | None, end: datetime | None, last_n: int | None,
                dataset_ids: Sequence[str] | None = None) -> list[Any]:
        col = {"observedAt": TwinHistory.observed_at, "modifiedAt": TwinHistory.recorded_at,
               "createdAt": TwinHistory.recorded_at, "deletedAt": TwinHistory.recorded_at}[time_column]
        # plain rows (read only): a day of one-minute values is 1,440 of them, which as ORM objects cost more
        # than reading them
        q = select(TwinHistory.__table__).where(TwinHistory.tenant == tenant, TwinHistory.entity_id == entity_id)
        if time_column != "deletedAt":  # deletions are shown only when asked for by their time
            q = q.where(TwinHistory.deleted.is_(False))
        if attrs is not None:
            q = q.where(TwinHistory.attr.in_(list(attrs)))
        if dataset_ids:
            cond = [TwinHistory.dataset_id.in_([d for d in dataset_ids if d != "@none"])]
            if "@none" in dataset_ids:
                cond.append(TwinHistory.dataset_id.is_(None))
            q = q.where(or_(*cond))
        if start is not None:
            q = q.where(col >= start) if end is None or end is not True else q.where(col >= start)
        if end is not None:
            q = q.where(col < end)
        if start is not None or end is not None:
            q = q.where(col.is_not(None))
        rows = list(self.s.execute(q.order_by(col, TwinHistory.id)))
        if last_n:
            by_attr: dict[tuple[str, str | None], list[Any]] = {}
            for r in rows:
                by_attr.setdefault((r.attr, r.dataset_id), []).append(r)
            rows = [r for group in by_attr.values() for r in group[-last_n:]]
        return rows

    def history_entities(self, tenant: str, where_history: Sequence[Any], limit: int, offset: int) -> list[str]:
        q = (select(TwinHistory.entity_id, func.min(TwinHistory.id).label("first"))
             .where(TwinHistory.tenant == tenant, *where_history).group_by(TwinHistory.entity_id)
             .order_by(literal_column("first")).limit(limit).offset(offset))
        return [r[0] for r in self.s.execute(q)]

    def history_exists(self, tenant: str, entity_id: str) -> bool:
        return self.s.scalar(select(TwinHistory.id).where(TwinHistory.tenant == tenant,
                                                          TwinHistory.entity_id == entity_id).limit(1)) is not None

    def delete_history(self, tenant: str, entity_id: str, attr: str | None = None, instance_id: str | None = None,
                       dataset_id: str | None = None, all_datasets: bool = True) -> int:
        q = delete(TwinHistory).where(TwinHistory.tenant == tenant, TwinHistory.entity_id == entity_id)
        if attr is not None:
            q = q.where(TwinHistory.attr == attr)
        if instance_id is not None:
            q = q.where(TwinHistory.instance_id == instance_id)
        if not all_datasets:
            q = q.where(TwinHistory.dataset_id == dataset_id if dataset_id else TwinHistory.dataset_id.is_(None))
        return self.s.execute(q).rowcount or 0

    def history_row(self, tenant: str, entity_id: str, attr: str, instance_id: str) -> TwinHistory | None:
        return self.s.scalars(select(TwinHistory).where(
            TwinHistory.tenant == tenant, TwinHistory.entity_id == entity_id, TwinHistory.attr == attr,
            TwinHistory.instance_id == instance_id)).first()

    def prune_history(self, before: datetime) -> int:
        """Delete history recorded before ``before``: on PostgreSQL whole monthly partitions are dropped first."""
        n = 0
        if self.pg:
            for (name,) in self.s.execute(text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'twin_history' "
                    "AND c.relname ~ '^twin_history_[0-9]{4}_[0-9]{2}$'")).all():
                year, month = int(name[-7:-3]), int(name[-2:])
                end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=before.tzinfo)
                if end <= before:
                    n += self.s.scalar(text(f'SELECT count(*) FROM "{name}"')) or 0
                    self.s.execute(text(f'DROP TABLE "{name}"'))
        return n + (self.s.execute(delete(TwinHistory).where(TwinHistory.recorded_at < before)).rowcount or 0)

    def add_partitions(self, now: datetime, months_ahead: int = 2) -> list[str]:
        """Monthly history partitions from this month to ``months_ahead`` (PostgreSQL; nothing on SQLite)."""
        if not self.pg:
            return []
        made = []
        y, m = now.year, now.month
        for _ in range(months_ahead + 1):
            ny, nm = y + (m == 12), m % 12 + 1
            name = f"twin_history_{y:04d}_{m:02d}"
            exists = self.s.scalar(text("SELECT to_regclass(:n)"), {"n": name})
            if exists is None:
                self.s.execute(text(f"CREATE TABLE \"{name}\" PARTITION OF twin_history FOR VALUES FROM "
                                    f"('{y:04d}-{m:02d}-01') TO ('{ny:04d}-{nm:02d}-01')"))
                made.append(name)
            y, m = ny, nm
        return made

    # -- contexts
    def context_by_url(self, url: str) -> TwinContext | None:
        return self.s.scalars(select(TwinContext).where(TwinContext.url == url)).first()

    def context(self, cid: str) -> TwinContext | None:
        return self.s.get(TwinContext, cid) or self.context_by_url(cid)

    def add_context(self, url: str, kind: str, body: dict[str, Any], now: datetime, cid: str | None = None) -> TwinContext:
        row = TwinContext(id=cid or uuid.uuid4().hex, url=url, kind=kind, body=json.dumps(body, ensure_ascii=False),
                          created_at=now, hits=0)
        self.s.add(row)
        self.s.flush()
        return row

    def contexts(self, kind: str | None = None) -> list[TwinContext]:
        q = select(TwinContext).order_by(TwinContext.created_at, TwinContext.id)
        if kind:
            q = q.where(TwinContext.kind == kind)
        return list(self.s.scalars(q))

    def used_context(self, url: str, now: datetime) -> None:
        self.s.execute(update(TwinContext).where(TwinContext.url == url)
                       .values(hits=TwinContext.hits + 1, last_used_at=now))

    def remove_context(self, row: TwinContext) -> None:
        self.s.delete(row)
        self.s.flush()


def and_all(clauses: Sequence[Any]) -> Any:
    return and_(*clauses) if clauses else None
