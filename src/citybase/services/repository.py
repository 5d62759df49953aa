"""Every query of 一网通办 (the same SQL on every engine)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Select, case, cast, func, literal, literal_column, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from citybase.core.timeutil import as_utc
from citybase.services.models import (
    Application,
    Bundle,
    BundleVersion,
    Item,
    ItemVersion,
    MaterialFile,
    Part,
    Rating,
    Rectification,
    TimelineEntry,
)
from citybase.storage.paging import page_of
from citybase.storage.text import contains


class ServicesRepository:
    """Queries of items, bundles, applications, parts, timelines, ratings and rectifications, on one session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Any) -> Any:
        self.session.add(row)
        self.session.flush()
        return row

    def page(self, q: Select, page: int, page_size: int) -> tuple[list[Any], int]:
        return page_of(self.session, q, page, page_size)

    # --- catalogue

    def item_by_code(self, code: str) -> Item | None:
        return self.session.scalar(select(Item).where(Item.code == code))

    def version_of(self, item_id: int, version: int) -> ItemVersion | None:
        return self.session.scalar(select(ItemVersion).where(ItemVersion.item_id == item_id,
                                                             ItemVersion.version == version))

    def _held_versions(self) -> dict[int, ItemVersion]:
        """Versions read by this session, held for its life: a version never changes once written, and the
        identity map holds objects only weakly, so one its caller had dropped was read again at the next call
        (a 开办企业 submission read its five versions about ten times over)."""
        held = self.session.info.setdefault("services_versions", {})
        for k in [k for k, v in held.items() if v not in self.session]:  # after an expunge or a close
            del held[k]
        return held

    def version_by_id(self, version_id: int) -> ItemVersion | None:
        held = self._held_versions()
        v = held.get(version_id)
        if v is None:
            v = self.session.get(ItemVersion, version_id)
            if v is not None:
                held[version_id] = v
        return v

    def versions_by_ids(self, ids: Sequence[int]) -> dict[int, ItemVersion]:
        """The versions of these ids (one query for those this session has not read yet)."""
        held = self._held_versions()
        missing = [i for i in ids if i not in held]
        if missing:
            for v in self.session.scalars(select(ItemVersion).where(ItemVersion.id.in_(missing))):
                held[v.id] = v
        return {i: held[i] for i in ids if i in held}

    def versions_of(self, item_id: int) -> list[ItemVersion]:
        return list(self.session.scalars(select(ItemVersion).where(ItemVersion.item_id == item_id)
                                         .order_by(ItemVersion.version)))

    def items_query(self, *, department_id: int | None = None, kind: str | None = None, name: str | None = None,
                    online_level: str | None = None) -> Select:
        """Current versions of active items, joined to their item, by code."""
        q = (select(Item, ItemVersion).join(ItemVersion, (ItemVersion.item_id == Item.id)
                                            & (ItemVersion.version == Item.current_version))
             .where(Item.active.is_(True)).order_by(Item.code))
        if department_id is not None:
            q = q.where(ItemVersion.department_id == department_id)
        if kind:
            q = q.where(ItemVersion.kind == kind)
        if name:
            q = q.where(contains(ItemVersion.name, name))
        if online_level:
            q = q.where(ItemVersion.online_level == online_level)
        return q

    def page_rows(self, q: Select, page: int, page_size: int) -> tuple[list[Any], int]:
        total = self.session.scalar(select(func.count()).select_from(q.order_by(None).subquery())) or 0
        rows = list(self.session.execute(q.limit(page_size).offset((page - 1) * page_size)).all())
        return rows, total

    def current_versions(self) -> list[tuple[Item, ItemVersion]]:
        return [tuple(r) for r in self.session.execute(self.items_query()).all()]  # type: ignore[misc]

    def bundle_by_code(self, code: str, *, for_update: bool = False) -> Bundle | None:
        q = select(Bundle).where(Bundle.code == code)
        return self.session.scalar(q.with_for_update() if for_update else q)

    def bundle_by_id(self, bundle_id: int) -> Bundle | None:
        return self.session.get(Bundle, bundle_id)

    def next_bundle_version(self, bundle: Bundle) -> bool:
        """Compare-and-set the bundle's current version to the next one: False if another edit took it first
        (on SQLite two edits may both have read the same version before either wrote)."""
        n = bundle.current_version
        done = self.session.execute(update(Bundle).where(Bundle.id == bundle.id, Bundle.current_version == n)
                                    .values(current_version=n + 1).execution_options(synchronize_session=False))
        if done.rowcount != 1:
            return False
        set_committed_value(bundle, "current_version", n + 1)
        return True

    def bundle_version_of(self, bundle_id: int, version: int) -> BundleVersion | None:
        return self.session.scalar(select(BundleVersion).where(BundleVersion.bundle_id == bundle_id,
                                                               BundleVersion.version == version))

    def bundle_version_by_id(self, version_id: int) -> BundleVersion | None:
        return self.session.get(BundleVersion, version_id)

    def bundle_versions_of(self, bundle_id: int) -> list[BundleVersion]:
        return list(self.session.scalars(select(BundleVersion).where(BundleVersion.bundle_id == bundle_id)
                                         .order_by(BundleVersion.version)))

    def bundles(self) -> list[tuple[Bundle, BundleVersion]]:
        """Every bundle with its current version, by id."""
        return [tuple(r) for r in self.session.execute(  # type: ignore[misc]
            select(Bundle, BundleVersion).join(BundleVersion, (BundleVersion.bundle_id == Bundle.id)
                                               & (BundleVersion.version == Bundle.current_version))
            .order_by(Bundle.id)).all()]

    # --- applications

    def application(self, application_id: int, *, for_update: bool = False) -> Application | None:
        if for_update:
            return self.session.scalar(select(Application).where(Application.id == application_id)
                                       .with_for_update())
        return self.session.get(Application, application_id)

    def file_digests(self) -> set[str]:
        """The SHA-256 of every content some material file row names."""
        return set(self.session.scalars(select(MaterialFile.sha256).distinct()))

    def files_of(self, application_id: int, material_key: str | None = None) -> list[MaterialFile]:
        """The application's uploaded files (of one material), oldest first."""
        q = select(MaterialFile).where(MaterialFile.application_id == application_id)
        if material_key is not None:
            q = q.where(MaterialFile.material_key == material_key)
        return list(self.session.scalars(q.order_by(MaterialFile.id)))

    def file(self, file_id: int) -> MaterialFile | None:
        return self.session.get(MaterialFile, file_id)

    def delete(self, row: Any) -> None:
        self.session.delete(row)
        self.session.flush()

    def applications_query(self, *, person_id: int | None = None, legal_entity_id: int | None = None,
                           owner_user_id: int | None = None, status: str | None = None,
                           department_id: int | None = None, bundle_id: int | None = None,
                           mine: bool = False) -> Select:
        """Applications, newest first; ``mine`` keeps those of the person, the entity or the owner given."""
        q = select(Application).order_by(Application.id.desc())
        if mine:
            conds = []
            if person_id is not None:
                conds.append((Application.person_id == person_id) & (Application.applicant_kind == "person"))
            if legal_entity_id is not None:
                conds.append((Application.legal_entity_id == legal_entity_id)
                             & (Application.applicant_kind == "entity"))
            if owner_user_id is not None:
                conds.append(Application.owner_user_id == owner_user_id)
            if not conds:
                return q.where(Application.id.is_(None))
            cond = conds[0]
            for c in conds[1:]:
                cond = cond | c
            q = q.where(cond)
        if status:
            q = q.where(Application.status == status)
        if bundle_id is not None:
            q = q.where(Application.bundle_id == bundle_id)
        if department_id is not None:
            q = q.where(Application.id.in_(select(Part.application_id).where(Part.department_id == department_id)))
        return q

    def next_code(self, prefix: str) -> str:
        """The next application code of the day (prefix = XH + yyyymmdd)."""
        # a range on the unique index (a LIKE is case-insensitive on SQLite and collated on PostgreSQL, so
        # neither engine reads it from the index: every code was scanned); codes are prefix + 6 digits
        last = self.session.scalar(select(func.max(Application.code)).where(
            Application.code >= prefix, Application.code <= f"{prefix}999999"))
        n = int(last[len(prefix):]) + 1 if last else 1
        return f"{prefix}{n:06d}"

    def parts_of(self, application_id: int) -> list[Part]:
        return list(self.session.scalars(select(Part).where(Part.application_id == application_id).order_by(Part.id)))

    def earlier_result(self, *, kind: str, holder_id: int, item_code: str) -> str | None:
        """The code of the holder's latest application whose part of ``item_code`` was approved and completed."""
        holder = Application.person_id if kind == "person" else Application.legal_entity_id
        return self.session.scalar(
            select(Application.code).join(Part, Part.application_id == Application.id)
            .where(holder == holder_id, Application.applicant_kind == kind, Part.item_code == item_code,
                   Part.status == "completed", Part.decision == "approve")
            .order_by(Application.id.desc()).limit(1))

    def part(self, part_id: int) -> Part | None:
        return self.session.get(Part, part_id)

    def parts_query(self, *, department_id: int | None, statuses: tuple[str, ...] | None) -> Select:
        q = select(Part).order_by(Part.deadline_at.is_(None), Part.deadline_at, Part.id)
        if department_id is not None:
            q = q.where(Part.department_id == department_id)
        if statuses:
            q = q.where(Part.status.in_(statuses))
        return q

    def overdue_parts(self, now: datetime, statuses: tuple[str, ...]) -> list[Part]:
        return list(self.session.scalars(
            select(Part).where(Part.status.in_(statuses), Part.deadline_at < now, Part.paused_at.is_(None),
                               Part.supervised_at.is_(None)).order_by(Part.id).limit(500)))

    def timeline(self, application_id: int) -> list[TimelineEntry]:
        return list(self.session.scalars(select(TimelineEntry).where(TimelineEntry.application_id == application_id)
                                         .order_by(TimelineEntry.id)))

    def unrated_done(self, limit: int) -> list[int]:
        return list(self.session.scalars(select(Application.id).where(
            Application.status == "done", ~Application.id.in_(select(Rating.application_id)))
            .order_by(Application.done_at).limit(limit)))

    # --- ratings

    def rating_of(self, application_id: int) -> Rating | None:
        return self.session.scalar(select(Rating).where(Rating.application_id == application_id))

    def rectification_of(self, application_id: int) -> Rectification | None:
        return self.session.scalar(select(Rectification).where(Rectification.application_id == application_id))

    def rectification(self, rect_id: int) -> Rectification | None:
        return self.session.get(Rectification, rect_id)

    def rectifications_query(self, *, department_id: int | None, status: str | None) -> Select:
        q = select(Rectification).order_by(Rectification.id.desc())
        if department_id is not None:
            q = q.where(Rectification.department_id == department_id)
        if status:
            q = q.where(Rectification.status == status)
        return q

    # --- KPIs: one grouped pass over the parts in scope and one over the applications

    @staticmethod
    def _kpi_period(since: datetime | None, until: datetime | None) -> list[Any]:
        """Submitted applications in the period (its bounds compared in UTC, as stored). A submitted application
        has its parts (a withdrawn draft has neither parts nor ``submitted_at``)."""
        conds: list[Any] = [Application.status != "draft", Application.submitted_at.is_not(None)]
        if since is not None:
            conds.append(Application.submitted_at >= as_utc(since))
        if until is not None:
            conds.append(Application.submitted_at < as_utc(until))
        return conds

    @staticmethod
    def _kpi_part_filter(department_id: int | None, item_code: str | None) -> list[Any]:
        conds: list[Any] = []
        if department_id is not None:
            conds.append(Part.department_id == department_id)
        if item_code:
            conds.append(Part.item_code == item_code)
        return conds

    def _kpi_apps(self, since: datetime | None, until: datetime | None, department_id: int | None,
                  item_code: str | None) -> list[Any]:
        """Conditions on applications: submitted in the period, with at least one part in scope (every submitted
        one has parts, so the semi-join is only there for a department or an item)."""
        conds = self._kpi_period(since, until)
        part_filter = self._kpi_part_filter(department_id, item_code)
        if part_filter:
            conds.append(Application.id.in_(select(Part.application_id).where(*part_filter)))
        return conds

    def kpi_catalogue(self, *, department_id: int | None, item_code: str | None) -> list[Any]:
        """Current versions of active items by (department, item): 1, full online, statutory and committed days."""
        q = self.items_query(department_id=department_id)
        if item_code:
            q = q.where(Item.code == item_code)
        sub = q.order_by(None).subquery()
        return list(self.session.execute(
            select(sub.c.department_id, sub.c.code, func.count(), _sum(sub.c.online_level == "full"),
                   func.sum(sub.c.statutory_days), func.sum(sub.c.committed_days))
            .group_by(sub.c.department_id, sub.c.code)).all())

    def _local_day(self, column: Any, when: Any) -> list[Any]:
        """What to group a stored instant by for its Asia/Shanghai date (see ``local_day``), NULL unless ``when``.
        PostgreSQL: the date. SQLite keeps UTC wall time ('YYYY-MM-DD HH:…', as SQLAlchemy writes it) and its
        date functions cost most of the query, so: the UTC date and whether the hour is 16 or later (China has
        no DST)."""
        if self.session.get_bind().dialect.name == "postgresql":
            return [case((when, func.date(func.timezone("Asia/Shanghai", column))))]
        # constants inline, so that SQLite sees the GROUP BY expressions as the selected ones (bound
        # parameters make each occurrence a different expression, computed again: twice the time)
        one, ten, twelve, two = (literal_column(str(n)) for n in (1, 10, 12, 2))
        return [case((when, func.substr(column, one, ten))),
                case((when, func.substr(column, twelve, two) >= literal_column("'16'")))]

    def kpi_parts(self, *, since: datetime | None, until: datetime | None, department_id: int | None,
                  item_code: str | None, open_statuses: Sequence[str], completed: str, now: datetime) -> list[Any]:
        """ONE pass over the parts in scope, grouped by (department, item, local date of 受理, local date of 办结),
        the dates only for parts completed with both marks (NULL otherwise): count, filed online for a 全程网办
        item, 即办, open and past the deadline (the clock read at ``paused_at`` while paused, else at ``now``),
        completed with both marks. Each row: department, item, 受理 date, 办结 date, counts."""
        at = func.coalesce(Part.paused_at, literal(as_utc(now), Part.paused_at.type))
        overdue = Part.status.in_(open_statuses) & Part.deadline_at.is_not(None) & (at > Part.deadline_at)
        # a constant inline (not a bound parameter), so that the engines see the grouped CASEs as the selected ones
        handled = ((Part.status == literal_column(f"'{completed}'")) & Part.accepted_at.is_not(None)
                   & Part.done_at.is_not(None))
        acc, done = self._local_day(Part.accepted_at, handled), self._local_day(Part.done_at, handled)
        rows = self.session.execute(
            select(Part.department_id, Part.item_code, *acc, *done, func.count(),
                   _sum((Application.channel == "online") & (ItemVersion.online_level == "full")),
                   _sum(ItemVersion.instant.is_(True)), _sum(overdue), _sum(handled))
            .select_from(Part).join(Application, Application.id == Part.application_id)
            .join(ItemVersion, ItemVersion.id == Part.item_version_id)
            .where(*self._kpi_period(since, until), *self._kpi_part_filter(department_id, item_code))
            .group_by(Part.department_id, Part.item_code, *acc, *done)).all()
        k = len(acc)
        return [(r[0], r[1], local_day(r[2:2 + k]), local_day(r[2 + k:2 + 2 * k]), *(int(x) for x in r[2 + 2 * k:]))
                for r in rows]

    def _exempted(self, exempt: Sequence[str]) -> tuple[Any, Any]:
        """Per application: materials listed in ``exemptions`` and those whose status is one of ``exempt``."""
        if self.session.get_bind().dialect.name == "postgresql":
            doc = cast(Application.exemptions, JSON)
            each = func.json_array_elements(doc).table_valued("value").alias("e")
            status = each.c.value.op("->>")("status")
            total = func.json_array_length(doc)
        else:
            each = func.json_each(Application.exemptions).table_valued("value").alias("e")
            status = func.json_extract(each.c.value, "$.status")
            total = func.json_array_length(Application.exemptions)
        return total, select(func.count()).select_from(each).where(status.in_(exempt)).scalar_subquery()

    def kpi_applications(self, *, since: datetime | None, until: datetime | None, department_id: int | None,
                         item_code: str | None, exempt: Sequence[str], correction: str, good: int,
                         bad: int) -> tuple[int, ...]:
        """ONE pass over the applications in scope, with their rating and its rectification (one each at most):
        count, done, done approved without a correction ever asked for, materials listed and materials exempted;
        ratings, good (≥ ``good``), bad (≤ ``bad``), rectifications done."""
        corrected = select(TimelineEntry.id).where(TimelineEntry.application_id == Application.id,
                                                   TimelineEntry.action == correction).exists()
        total, exempted = self._exempted(exempt)
        done = Application.status == "done"
        row = self.session.execute(
            select(func.count(), _sum(done), _sum(done & (Application.outcome == "approved") & ~corrected),
                   func.coalesce(func.sum(total), 0), func.coalesce(func.sum(exempted), 0),
                   func.count(Rating.id), _sum(Rating.grade >= good), _sum(Rating.grade <= bad),
                   _sum(Rectification.status == "done"))
            .select_from(Application)
            .outerjoin(Rating, Rating.application_id == Application.id)
            .outerjoin(Rectification, Rectification.rating_id == Rating.id)
            .where(*self._kpi_apps(since, until, department_id, item_code))).one()
        return tuple(int(x) for x in row)  # PostgreSQL sums bigints as numeric


def local_day(key: Sequence[Any]) -> date | None:
    """The Asia/Shanghai date from ``_local_day``'s group key: a date (or its ISO text), or a UTC date and
    whether the instant was at 16:00 UTC or later (the next day in Shanghai); None for NULL."""
    if key[0] is None:
        return None
    d = key[0] if isinstance(key[0], date) else date.fromisoformat(key[0])
    return d + timedelta(days=1) if len(key) > 1 and key[1] else d


def _sum(cond: Any) -> Any:
    """How many rows ``cond`` holds for (0 over no rows)."""
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)
