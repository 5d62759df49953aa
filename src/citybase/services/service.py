"""一网通办's promises: the versioned catalogue, 一件事 bundles, applications that never ask for what the
government holds, each department's part worked through the one table in ``states``, 好差评 and the KPIs.

Functions take ``session`` keyword-only and never commit. Every step of an application appends a timeline
entry and queues an event in the transactional outbox (``citybase.kernel.outbox.queue``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from citybase.core.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge, UnsupportedMediaType
from citybase.core.i18n import Msg, from_json, render, to_json
from citybase.core.timeutil import SHANGHAI, utcnow
from citybase.kernel import outbox
from citybase.licences import service as licences
from citybase.registry import service as registry
from citybase.services import events, files, forms, results, states, workdays
from citybase.services.forms import Member
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
from citybase.services.repository import ServicesRepository
from citybase.services.states import PartStatus as S

KINDS = {"licensing": "行政许可", "confirmation": "行政确认", "payment": "行政给付", "award": "行政奖励",
         "other_power": "其他行政权力", "public_service": "公共服务"}
ONLINE_LEVELS = {"full": "全程网办", "partial": "网上办理、一次到场", "offline": "窗口办理"}
APPLICANT_KINDS = ("person", "entity")
CHANNELS = ("online", "window")
GRADES = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
RATING_CHANNELS = ("online", "window", "app", "sms")
BAD = 2  # a grade at or below this opens a rectification
RECTIFY_DAYS = 5  # working days a department has to rectify after a bad rating
STAFF_READERS = frozenset({"admin", "window_clerk"})  # read any application (audited); analysts get the KPIs


@dataclass(frozen=True)
class Actor:
    """Who takes a step: the signed-in caller, with the person or legal entity they are linked to."""

    name: str
    user_id: int | None = None
    roles: frozenset[str] = frozenset()
    department_id: int | None = None
    person_id: int | None = None
    legal_entity_id: int | None = None


SYSTEM = Actor("system")


# ---------------------------------------------------------------- the licences seam


@dataclass(frozen=True)
class LicenceProof:
    """What the licence library answers: the holder holds a valid licence of this type."""

    licence_type: str
    number: str  # the licence's identifier (GB/T 36903 in the licences domain)
    issuer: str
    valid_until: str | None = None
    source: str = "licences"  # licences | registry (the stand-in below)


@dataclass(frozen=True)
class LicenceQuery:
    """Who asks the licence library, for which application and with which consent (it logs the use)."""

    holder_kind: str  # person | entity
    holder_id: int
    licence_type: str
    application_code: str | None = None
    department_ids: tuple[int, ...] = ()
    consented: bool = False  # False: a preview for the applicant, no use to log
    actor: str = "services"


LicenceLookup = Callable[[Session, LicenceQuery], "LicenceProof | None"]


def _registry_stand_in(session: Session, q: LicenceQuery) -> LicenceProof | None:
    """What the base registries themselves prove when the licence library holds nothing: a person's ID card and
    household register, a firm's business licence from the 法人库; nothing else."""
    if q.holder_kind == "person":
        try:
            p = registry.get_person(session=session, person_id=q.holder_id)
        except NotFound:
            return None
        if q.licence_type == "id_card":
            return LicenceProof("id_card", p.id_number[:6] + "…" + p.id_number[-4:], "公安分局", source="registry")
        if q.licence_type == "household_register" and p.household_no:
            return LicenceProof("household_register", p.household_no, "公安分局", source="registry")
        return None
    try:
        e = registry.get_entity(session=session, entity_id=q.holder_id)
    except NotFound:
        return None
    if q.licence_type == "business_licence" and e.status == "active":
        return LicenceProof("business_licence", e.uscc, "市场监管局", source="registry")
    return None


def _licence_library(session: Session, q: LicenceQuery) -> LicenceProof | None:
    """The licence library (``citybase.licences``): the holder's newest valid licence of the type; with consent each
    department's use of it is logged for the holder. A type the library does not hold falls back to what the
    base registries prove."""
    holder = {"person_id": q.holder_id} if q.holder_kind == "person" else {"legal_entity_id": q.holder_id}
    try:
        found = licences.find_valid(session=session, type_key=q.licence_type, **holder)
    except NotFound:
        found = []
    if not found:
        return _registry_stand_in(session, q)
    lic = found[0]
    if q.consented:
        for dept in q.department_ids or (None,):
            licences.use(session=session, licence_id=lic.id, by_department_id=dept,
                         purpose=f"一网通办 {q.application_code}：免于提交{lic.identifier}",
                         application_ref=q.application_code, consent_ref=f"consent:{q.application_code}:{q.licence_type}",
                         actor=q.actor)
    issuer = registry.get_department_by_id(session=session, department_id=lic.issuer_department_id).short_name
    return LicenceProof(q.licence_type, lic.identifier, issuer,
                        lic.expires_on.isoformat() if lic.expires_on else None, source="licences")


_licence_lookup: LicenceLookup = _licence_library


def set_licence_lookup(fn: LicenceLookup | None) -> None:
    """Answer the seam another way (a city's own licence library); None restores ``citybase.licences``."""
    global _licence_lookup
    _licence_lookup = fn or _licence_library


def holds_licence(*, session: Session, query: LicenceQuery) -> LicenceProof | None:
    """Does the holder hold a valid licence of this type? The one place services asks the licences domain."""
    return _licence_lookup(session, query)


# ---------------------------------------------------------------- catalogue


def _loads(text: str | None, default: Any = None) -> Any:
    return json.loads(text) if text else default


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _invalid(problems: Sequence[tuple[str, Msg]], fix: Msg) -> InvalidInput:
    errors = [{"where": f"body parameter '{w}'", "problem": render(m)} for w, m in problems]
    return InvalidInput(Msg('the item is not valid: {problem}', problem=render(problems[0][1])), fix=fix,
                        errors=errors)


def _check_spec(session: Session, spec: Mapping[str, Any]) -> int:
    """The department id of a valid item spec; InvalidInput naming each wrong part."""
    bad = forms.check_schema(spec.get("form")) + forms.check_materials(spec.get("materials"))
    if spec.get("kind") not in KINDS:
        bad.append(("kind", Msg('kind must be one of: {items}', items=", ".join(KINDS))))
    if spec.get("online_level") not in ONLINE_LEVELS:
        bad.append(("online_level", Msg('online_level must be one of: {items}', items=", ".join(ONLINE_LEVELS))))
    kinds = spec.get("applicant_kinds") or []
    if not kinds or any(k not in APPLICANT_KINDS for k in kinds):
        bad.append(("applicant_kinds", Msg('applicant_kinds must be some of: {items}', items=", ".join(APPLICANT_KINDS))))
    if int(spec.get("committed_days", 0)) > int(spec.get("statutory_days", 0)):
        bad.append(("committed_days", Msg('the committed time limit cannot exceed the statutory one')))
    if bad:
        raise _invalid(bad, Msg('Correct the listed parts of the item; GET /api/v1/services/items/{{code}} shows a valid one.'))
    return registry.get_department(session=session, code=spec["department"]).id


def _version_row(item: Item, version: int, spec: Mapping[str, Any], department_id: int, actor: str) -> ItemVersion:
    return ItemVersion(
        item_id=item.id, version=version, name=spec["name"], department_id=department_id, kind=spec["kind"],
        legal_basis=spec.get("legal_basis", ""), conditions=spec.get("conditions", ""),
        applicant_kinds=",".join(spec["applicant_kinds"]), form_schema=_dumps(spec["form"]),
        materials=_dumps(spec["materials"]), fee=float(spec.get("fee", 0)),
        statutory_days=int(spec["statutory_days"]), committed_days=int(spec["committed_days"]),
        instant=bool(spec.get("instant", False)), max_visits=int(spec.get("max_visits", 0)),
        online_level=spec["online_level"], steps=_dumps(spec.get("steps") or ["受理", "审查", "决定", "办结"]),
        result_licence_type=spec.get("result_licence_type"), created_at=utcnow(), created_by=actor)


def create_item(*, session: Session, spec: Mapping[str, Any], actor: str) -> tuple[Item, ItemVersion]:
    """A new catalogue item at version 1 (``spec['department']`` is the department's GB 32100 code).
    Conflict if the code is taken; InvalidInput naming each wrong part. Flushes, never commits."""
    repo = ServicesRepository(session)
    dept = _check_spec(session, spec)
    if repo.item_by_code(spec["code"]):
        raise Conflict(Msg('item {code} exists', code=spec["code"]),
                       fix=Msg('Edit it with PUT /api/v1/services/items/{{code}} (a new version).'))
    item = repo.add(Item(code=spec["code"], current_version=1, active=True, created_at=utcnow()))
    v = repo.add(_version_row(item, 1, spec, dept, actor))
    return item, v


def update_item(*, session: Session, code: str, spec: Mapping[str, Any], actor: str) -> tuple[Item, ItemVersion]:
    """An admin's edit: the item's next version (the earlier ones stay, and applications keep theirs)."""
    item, _ = get_item(session=session, code=code)
    dept = _check_spec(session, spec)
    item.current_version += 1
    v = ServicesRepository(session).add(_version_row(item, item.current_version, spec, dept, actor))
    return item, v


def get_item(*, session: Session, code: str, version: int | None = None) -> tuple[Item, ItemVersion]:
    """An item and one of its versions (the current one by default); NotFound otherwise."""
    repo = ServicesRepository(session)
    item = repo.item_by_code(code)
    v = repo.version_of(item.id, version or item.current_version) if item else None
    if item is None or v is None:
        raise NotFound(Msg('no service item {code}', code=code) if item is None
                       else Msg('item {code} has no version {version}', code=code, version=version),
                       fix=Msg('List items with GET /api/v1/services/items.'))
    return item, v


def item_versions(*, session: Session, code: str) -> list[ItemVersion]:
    """Every version of an item, oldest first."""
    item, _ = get_item(session=session, code=code)
    return ServicesRepository(session).versions_of(item.id)


def list_items(*, session: Session, department: str | None = None, kind: str | None = None, name: str | None = None,
               online_level: str | None = None, page: int = 1, page_size: int = 50,
               ) -> tuple[list[tuple[Item, ItemVersion]], int]:
    """One page of the catalogue (current versions, by code) and how many match."""
    dept = registry.get_department(session=session, code=department).id if department else None
    repo = ServicesRepository(session)
    rows, total = repo.page_rows(repo.items_query(department_id=dept, kind=kind, name=name,
                                                  online_level=online_level), page, page_size)
    return [(r[0], r[1]) for r in rows], total


def member_of(v: ItemVersion, code: str, after: Sequence[str] = ()) -> Member:
    """An item version as the form and bundle arithmetic sees it."""
    return Member(code=code, name=v.name, department_id=v.department_id, form=_loads(v.form_schema),
                  materials=_loads(v.materials), committed_days=v.committed_days,
                  statutory_days=v.statutory_days, max_visits=v.max_visits, after=tuple(after))


def _bundle_members(session: Session, members: Any, applicant_kind: str) -> list[dict[str, Any]]:
    """A bundle version's members as stored ([{item, after}]) from what an admin sent; InvalidInput naming each
    wrong member (not a list, no members, an unknown or repeated item, a dependency outside the bundle, a cycle,
    an item the bundle's applicants cannot apply for)."""
    fix = Msg('Each member names a catalogue item once; it may depend only on other members, without cycles.')
    if applicant_kind not in (*APPLICANT_KINDS, "any"):
        raise InvalidInput(Msg('applicant_kind must be one of: {items}', items="person, entity, any"),
                           fix=Msg('Say who applies.'))
    if not isinstance(members, Sequence) or isinstance(members, str) or not members:
        raise InvalidInput(Msg('a bundle needs at least one member'), fix=fix)
    repo = ServicesRepository(session)
    problems: list[tuple[str, Msg]] = []
    out: list[dict[str, Any]] = []
    ms: list[Member] = []
    for n, m in enumerate(members):
        where = f"members[{n}]"
        code = m.get("item") if isinstance(m, Mapping) else None
        after = m.get("after", []) if isinstance(m, Mapping) else None
        if not isinstance(code, str) or not isinstance(after, Sequence) or isinstance(after, str) \
                or not all(isinstance(d, str) for d in after):
            problems.append((where, Msg('a member is {{"item": code, "after": [codes]}}')))
            continue
        item = repo.item_by_code(code)
        v = repo.version_of(item.id, item.current_version) if item is not None and item.active else None
        if v is None:
            problems.append((where, Msg('no service item {code}', code=code)))
            continue
        if any(o["item"] == code for o in out):
            problems.append((where, Msg('{code} is in the bundle twice', code=code)))
            continue
        if applicant_kind != "any" and applicant_kind not in v.applicant_kinds.split(","):
            problems.append((where, Msg('{name} is not for a {kind}', name=v.name, kind=applicant_kind)))
        out.append({"item": code, "after": list(dict.fromkeys(after))})
        ms.append(member_of(v, code, out[-1]["after"]))
    if not problems:
        codes = {o["item"] for o in out}
        for n, o in enumerate(out):
            for d in o["after"]:
                if d not in codes:
                    problems.append((f"members[{n}].after",
                                     Msg('{code} depends on {dep}, which is not in the bundle', code=o["item"], dep=d)))
    if not problems:
        try:
            forms.check_dependencies(ms)
        except forms.DependencyError as exc:
            problems.append(("members", Msg("the bundle's dependencies form a cycle: {cycle}",
                                            cycle=" → ".join(exc.cycle))))
    if problems:
        errors = [{"where": f"body parameter '{w}'", "problem": render(m)} for w, m in problems]
        raise InvalidInput(Msg('the bundle is not valid: {problem}', problem=problems[0][1]), fix=fix,
                           errors=errors)
    return out


def _bundle_text(name: Any, description: Any) -> tuple[str, str]:
    if not isinstance(name, str) or not 2 <= len(name.strip()) <= 100:
        raise InvalidInput(Msg('a bundle name has 2 to 100 characters'), fix=Msg('Name the bundle.'))
    if not isinstance(description, str) or len(description) > 2000:
        raise InvalidInput(Msg('a bundle description has at most 2000 characters'), fix=Msg('Shorten it.'))
    return name.strip(), description


def create_bundle(*, session: Session, code: str | None, name: str, description: str, applicant_kind: str,
                  members: Sequence[Mapping[str, Any]], actor: str = "system") -> tuple[Bundle, BundleVersion]:
    """A 一件事 bundle of catalogue items with their dependencies, at version 1; InvalidInput naming each wrong
    member (unknown item, a dependency outside the bundle, a cycle), Conflict if the code is taken."""
    repo = ServicesRepository(session)
    if not code:
        raise InvalidInput(Msg('a new bundle needs a code'),
                           fix=Msg('Give the bundle a code of lower-case letters, digits and hyphens.'))
    if repo.bundle_by_code(code):
        raise Conflict(Msg('bundle {code} exists', code=code),
                       fix=Msg('Edit it with PUT /api/v1/services/bundles/{{code}} (a new version).'))
    name, description = _bundle_text(name, description)
    stored = _bundle_members(session, members, applicant_kind)
    now = utcnow()
    b = repo.add(Bundle(code=code, current_version=1, created_at=now))
    v = repo.add(BundleVersion(bundle_id=b.id, version=1, name=name, description=description,
                               applicant_kind=applicant_kind, members=_dumps(stored), created_at=now, created_by=actor))
    return b, v


def update_bundle(*, session: Session, code: str, name: str, description: str, applicant_kind: str,
                  members: Sequence[Mapping[str, Any]], actor: str) -> tuple[Bundle, BundleVersion]:
    """An admin's edit of a bundle (members, dependencies, name, description): its next version. The earlier
    ones stay, and applications keep the one they were started on."""
    b, _ = get_bundle(session=session, code=code, for_update=True)
    name, description = _bundle_text(name, description)
    stored = _bundle_members(session, members, applicant_kind)
    repo = ServicesRepository(session)
    if not repo.next_bundle_version(b):
        raise Conflict(Msg('bundle {code} was changed meanwhile', code=code),
                       fix=Msg('Reload the bundle and make your edit again.'))
    v = repo.add(BundleVersion(
        bundle_id=b.id, version=b.current_version, name=name, description=description, applicant_kind=applicant_kind,
        members=_dumps(stored), created_at=utcnow(), created_by=actor))
    return b, v


def get_bundle(*, session: Session, code: str, version: int | None = None,
               for_update: bool = False) -> tuple[Bundle, BundleVersion]:
    """The bundle with this code and one of its versions (the current one by default); NotFound otherwise."""
    repo = ServicesRepository(session)
    b = repo.bundle_by_code(code, for_update=for_update)
    v = repo.bundle_version_of(b.id, version or b.current_version) if b else None
    if b is None or v is None:
        raise NotFound(Msg('no bundle {code}', code=code) if b is None
                       else Msg('bundle {code} has no version {version}', code=code, version=version),
                       fix=Msg('List bundles with GET /api/v1/services/bundles.'))
    return b, v


def bundle_versions(*, session: Session, code: str) -> list[BundleVersion]:
    """Every version of a bundle, oldest first."""
    b, _ = get_bundle(session=session, code=code)
    return ServicesRepository(session).bundle_versions_of(b.id)


def list_bundles(*, session: Session) -> list[tuple[Bundle, BundleVersion]]:
    """Every bundle at its current version, by id."""
    return ServicesRepository(session).bundles()


def bundle_members(*, session: Session, bundle: BundleVersion) -> list[tuple[Member, ItemVersion]]:
    """A bundle version's items at their current versions, with their dependencies (what an application started
    now would keep)."""
    out = []
    for m in _loads(bundle.members):
        _, v = get_item(session=session, code=m["item"])
        out.append((member_of(v, m["item"], m["after"]), v))
    return out


def bundle_plan(*, session: Session, bundle: BundleVersion) -> dict[str, Any]:
    """What the bundle's page shows: merged form, deduplicated materials, stages run in parallel, the promised
    time (critical path) and what is saved against doing the items one by one."""
    return plan_of([m for m, _ in bundle_members(session=session, bundle=bundle)])


def plan_of(ms: Sequence[Member]) -> dict[str, Any]:
    """Merged form, deduplicated materials, stages, critical path and savings of these members."""
    days, chain = forms.critical_path(ms)
    return {"form": forms.merge_forms(ms), "materials": forms.merge_materials(ms),
            "groups": forms.parallel_groups(ms), "promised_days": days, "critical_path": chain,
            "savings": forms.savings(ms)}


def application_bundle(*, session: Session, app: Application) -> dict[str, Any] | None:
    """The bundle an application was started on, at the version it keeps, with the plan of the item versions it
    keeps (its merged form, materials and critical path, whatever the bundle and its items became since)."""
    if app.bundle_id is None:
        return None
    repo = ServicesRepository(session)
    b = repo.bundle_by_id(app.bundle_id)
    v = repo.bundle_version_by_id(app.bundle_version_id) if app.bundle_version_id else None
    ms = [m for m, _ in _members_of(session, app)]
    days, chain = forms.critical_path(ms)
    return {"code": b.code if b else None, "version": v.version if v else None, "name": v.name if v else None,
            "current_version": b.current_version if b else None, "promised_days": days, "critical_path": chain,
            "groups": forms.parallel_groups(ms)}


def load_catalogue(*, session: Session, data: Mapping[str, Any], actor: str = "system",
                   aliases: Mapping[str, str] | None = None) -> dict[str, int]:
    """Load items and bundles (the demo's ``data/catalogue.json``), naming departments by short name
    (``aliases`` maps a name the registry lacks to one it has); items and bundles already there are kept."""
    depts = {d.short_name: d.code for d in registry.list_departments(session=session)}
    aliases = aliases or {}
    repo = ServicesRepository(session)
    added = {"items": 0, "bundles": 0}
    for spec in data["items"]:
        if repo.item_by_code(spec["code"]):
            continue
        short = spec["department"]
        code = depts.get(short) or depts.get(aliases.get(short, ""))
        if code is None:
            raise InvalidInput(Msg('no department {name} in the registry', name=short),
                               fix=Msg('Give an alias to a department the registry has.'))
        create_item(session=session, spec={**spec, "department": code}, actor=actor)
        added["items"] += 1
    for b in data.get("bundles", []):
        if repo.bundle_by_code(b["code"]):
            continue
        create_bundle(session=session, code=b["code"], name=b["name"], description=b.get("description", ""),
                      applicant_kind=b["applicant_kind"], members=b["members"], actor=actor)
        added["bundles"] += 1
    return added


def load_demo_catalogue(*, session: Session) -> dict[str, int]:
    """The shipped demo catalogue of Xuhui's items and bundles (the registry has no 税务局: its items go to the
    财政局 in the demo)."""
    from importlib.resources import files

    data = json.loads(files("citybase.services").joinpath("data/catalogue.json").read_text(encoding="utf-8"))
    return load_catalogue(session=session, data=data, aliases={"税务局": "财政局"})


# ---------------------------------------------------------------- applications


def _holder(app: Application) -> tuple[str, int]:
    return (app.applicant_kind, app.person_id if app.applicant_kind == "person" else app.legal_entity_id)  # type: ignore[return-value]


def _members_of(session: Session, app: Application) -> list[tuple[Member, ItemVersion]]:
    """The application's items at the versions it keeps."""
    members = _loads(app.members)
    versions = ServicesRepository(session).versions_by_ids([m["version_id"] for m in members])
    return [(member_of(versions[m["version_id"]], m["item"], m["after"]), versions[m["version_id"]])
            for m in members]


def owns(actor: Actor, app: Application) -> bool:
    """Whether ``actor`` is the applicant (the person, the firm's account) or the account that filed it."""
    if app.applicant_kind == "person" and actor.person_id is not None and app.person_id == actor.person_id:
        return True
    if app.applicant_kind == "entity" and actor.legal_entity_id is not None \
            and app.legal_entity_id == actor.legal_entity_id:
        return True
    return actor.user_id is not None and app.owner_user_id == actor.user_id


def _may_read(session: Session, actor: Actor, app: Application) -> bool:
    if actor.roles & STAFF_READERS or owns(actor, app):
        return True
    if "clerk" in actor.roles and actor.department_id is not None:
        return any(p.department_id == actor.department_id for p in ServicesRepository(session).parts_of(app.id))
    return False


def get_application(*, session: Session, actor: Actor, application_id: int, for_update: bool = False) -> Application:
    """The application, if ``actor`` may see it (its applicant, a clerk of one of its departments, a window
    clerk, an admin); NotFound otherwise — another person's application is not shown to exist."""
    app = ServicesRepository(session).application(application_id, for_update=for_update)
    if app is None or not _may_read(session, actor, app):
        raise NotFound(Msg('no application #{application_id} of yours', application_id=application_id),
                       fix=Msg('List your applications with GET /api/v1/services/applications.'))
    return app


def _prefill(session: Session, kind: str, holder_id: int, form: Mapping[str, Any]) -> dict[str, Any]:
    """The form's answers the base registries hold for the applicant (x-prefill)."""
    values: dict[str, Any] = {}
    person = entity = None
    if kind == "person":
        person = registry.get_person(session=session, person_id=holder_id)
    else:  # a firm: its own fields, and its legal representative's for the applicant's
        entity = registry.get_entity(session=session, entity_id=holder_id)
        reps, _ = registry.list_persons(session=session, id_number=entity.legal_rep_id_number, page_size=1)
        person = reps[0] if reps else None
    sources: dict[str, Any] = {}
    if person is not None:
        sources = {"person.name": person.name, "person.id_number": person.id_number, "person.phone": person.phone,
                   "person.household_no": person.household_no, "person.address": person.registered_address,
                   "person.sex": "男" if person.sex == "M" else "女", "person.birth_date": person.birth_date.isoformat()}
    if entity is not None:
        sources |= {"entity.name": entity.name, "entity.uscc": entity.uscc, "entity.address": entity.address,
                   "entity.legal_rep_name": entity.legal_rep_name}
    for key, prop in form.get("properties", {}).items():
        value = sources.get(prop.get("x-prefill", ""))
        if value:
            values[key] = value
    return values


def start(*, session: Session, actor: Actor, bundle: str | None = None, item: str | None = None,
          applicant_kind: str | None = None, person_id: int | None = None, legal_entity_id: int | None = None,
          ) -> Application:
    """A draft application for a bundle or one item, its form prefilled from the base registries; the bundle
    version it is started on and the item versions it will be processed under are kept with it. A citizen applies for the person (or the firm) they
    are linked to; a window clerk files for the person or firm named (一窗受理). Flushes, never commits."""
    if (bundle is None) == (item is None):
        raise InvalidInput(Msg('give either bundle or item'), fix=Msg('Name the 一件事 bundle or the single item.'))
    window = "window_clerk" in actor.roles or "admin" in actor.roles
    if window and (person_id or legal_entity_id):
        pid, eid = person_id, legal_entity_id
    else:
        pid, eid = actor.person_id, actor.legal_entity_id
    b, bv = get_bundle(session=session, code=bundle) if bundle else (None, None)
    if applicant_kind is None:
        serves = ([bv.applicant_kind] if bv else get_item(session=session, code=item)[1].applicant_kinds.split(","))  # type: ignore[arg-type]
        applicant_kind = "person" if serves == ["person"] else "entity" if serves == ["entity"] or eid else "person"
    kind = applicant_kind
    if kind not in APPLICANT_KINDS:
        raise InvalidInput(Msg('applicant_kind must be one of: {items}', items="person, entity"),
                           fix=Msg('Apply as a person or for your firm.'))
    holder = pid if kind == "person" else eid
    if holder is None:
        raise Forbidden(Msg('your account is not linked to a {kind} in the registry', kind=kind),
                        fix=Msg('Sign in through the unified identity service, or ask a window clerk to file for you.'))
    holder_id: int = holder
    if bv is not None:
        pairs = bundle_members(session=session, bundle=bv)
        if bv.applicant_kind not in ("any", kind):
            raise InvalidInput(Msg('{name} is applied for by a {kind}', name=bv.name, kind=bv.applicant_kind),
                               fix=Msg('Choose a bundle for your kind of applicant.'))
    else:
        _, v = get_item(session=session, code=item)  # type: ignore[arg-type]
        pairs = [(member_of(v, item), v)]  # type: ignore[arg-type]
    for _, v in pairs:
        if kind not in v.applicant_kinds.split(","):
            raise InvalidInput(Msg('{name} is not for a {kind}', name=v.name, kind=kind),
                               fix=Msg('Apply as the kind of applicant the item serves.'))
    ms = [m for m, _ in pairs]
    merged = forms.merge_forms(ms)
    answers = _prefill(session, kind, holder_id, merged)
    now = utcnow()
    repo = ServicesRepository(session)
    app = repo.add(Application(
        code=repo.next_code(f"XH{now.astimezone(SHANGHAI):%Y%m%d}"), status="draft", bundle_id=b.id if b else None,
        bundle_version_id=bv.id if bv else None,
        item_version_id=None if b else pairs[0][1].id, applicant_kind=kind,
        person_id=pid if kind == "person" else None, legal_entity_id=eid if kind == "entity" else None,
        owner_user_id=None if window else actor.user_id, filed_by=actor.name,
        channel="window" if window else "online",
        members=_dumps([{"item": m.code, "version_id": v.id, "after": list(m.after)} for m, v in pairs]),
        form=_dumps(answers), prefilled=_dumps(sorted(answers)), exemptions="[]", consent="[]", provided="[]",
        promised_days=forms.critical_path(ms)[0], created_at=now, updated_at=now))
    _log(session, app, None, actor, "draft", None, "draft")
    return app


def item_names(*, session: Session, app: Application) -> dict[str, str]:
    """The names of the application's items (at the versions it keeps), by code."""
    return {m.code: m.name for m, _ in _members_of(session, app)}


def part_item_names(*, session: Session, parts: Sequence[Part]) -> dict[int, str]:
    """The item name of each part (at the version it keeps), by part id."""
    repo = ServicesRepository(session)
    return {p.id: repo.version_by_id(p.item_version_id).name for p in parts}  # type: ignore[union-attr]


def department_names(*, session: Session) -> dict[int, str]:
    """Department short names by id (the pages name departments, not ids)."""
    return {d.id: d.short_name for d in registry.list_departments(session=session)}


def form_of(*, session: Session, app: Application) -> dict[str, Any]:
    """The application's merged form schema (the versions it keeps)."""
    return forms.merge_forms([m for m, _ in _members_of(session, app)])


def _field_errors(errors: list[dict[str, Any]]) -> InvalidInput:
    first = errors[0]
    return InvalidInput(Msg('{count} field(s) of the form need correcting: {problem}', count=len(errors),
                            problem=first["problem"]),
                        fix=Msg('Correct the fields listed in errors; your draft is kept.'), errors=errors)


def save_draft(*, session: Session, actor: Actor, application_id: int, form: Mapping[str, Any] | None = None,
               consent: Sequence[str] | None = None, provided: Sequence[str] | None = None) -> Application:
    """Keep answers of a draft (a null answer clears a field), the licence types the applicant consents to
    fetch and, at the counter, the materials whose paper original the window clerk checked (原件已核验; an
    applicant uploads files instead, ``upload_material``). The answers given are checked field by field;
    missing ones may wait until submitting. Nothing is kept when a field is refused (InvalidInput lists every
    one)."""
    app = get_application(session=session, actor=actor, application_id=application_id)
    _require_editor(actor, app)
    if provided is not None and set(provided) != set(_loads(app.provided, [])):
        _require_counter(actor)  # an applicant may send the list back unchanged, never change it
    if app.status != "draft":
        raise Conflict(Msg('application {code} is no longer a draft', code=app.code),
                       fix=Msg('Follow it with GET /api/v1/services/applications/{{id}}.'))
    if form:
        schema = form_of(session=session, app=app)
        answers = {**_loads(app.form, {}), **form}
        answers = {k: v for k, v in answers.items() if v is not None}
        errors = forms.validate(schema, {k: v for k, v in form.items() if v is not None}, complete=False)
        errors += _identity_changes(session, app, schema, form)
        if errors:
            raise _field_errors(errors)
        app.form = _dumps(answers)
    if consent is not None:
        app.consent = _dumps(sorted(set(consent)))
    if provided is not None:
        app.provided = _dumps(sorted(set(provided)))
    app.updated_at = utcnow()
    return app


IDENTITY = ("person.id_number", "person.name", "entity.uscc")  # who applies: as the registries say, never typed


def _identity_changes(session: Session, app: Application, schema: Mapping[str, Any],
                      form: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A refusal for each answer that would change who applies (the registries' name, ID number, credit code)."""
    kind, holder_id = _holder(app)
    fixed = {k: p for k, p in schema.get("properties", {}).items() if p.get("x-prefill") in IDENTITY}
    truth = _prefill(session, kind, holder_id, {"properties": fixed})
    out = []
    for key, value in form.items():
        if key in truth and value != truth[key]:
            title = fixed[key].get("title", key)
            out.append({"where": f"form.{key}", "field": key, "label": title, "input": None,
                        "problem": render(Msg('{label} is taken from the base registries and cannot be changed here',
                                              label=title))})
    return out


def _require_counter(actor: Actor) -> None:
    if not actor.roles & STAFF_READERS:
        raise Forbidden(Msg('only a window clerk checks paper originals (原件已核验)'),
                        fix=Msg('Upload each material with POST /api/v1/services/applications/{{id}}/materials/{{key}}.'))


def _require_editor(actor: Actor, app: Application) -> None:
    if owns(actor, app) or "window_clerk" in actor.roles or "admin" in actor.roles:
        return
    raise Forbidden(Msg('only the applicant (or a window clerk for them) may change application {code}', code=app.code),
                    fix=Msg('Sign in as the applicant.'))


def materials_view(*, session: Session, app: Application) -> list[dict[str, Any]]:
    """Each material of the application (deduplicated over the bundle) with where it comes from: a licence the
    applicant holds (a preview, fetched only with consent), a registry field, another item's result, or the
    applicant. Nothing is fetched for use here."""
    ms = [m for m, _ in _members_of(session, app)]
    kind, holder_id = _holder(app)
    consent = set(_loads(app.consent, []))
    provided = set(_loads(app.provided, []))
    uploaded: dict[str, int] = {}
    for f in ServicesRepository(session).files_of(app.id):
        uploaded[f.material_key] = uploaded.get(f.material_key, 0) + 1
    form = _loads(app.form, {})
    out = []
    for mat in forms.merge_materials(ms):
        src = mat["source"]
        row = {**mat, "status": "to_bring", "consented": False, "provided": mat["key"] in provided, "proof": None,
               "files": uploaded.get(mat["key"], 0)}
        if src["kind"] == "licence":
            proof = holds_licence(session=session, query=LicenceQuery(kind, holder_id, src["type"]))
            row["consented"] = src["type"] in consent
            if proof is not None:
                row["proof"] = {"number": proof.number, "issuer": proof.issuer, "valid_until": proof.valid_until,
                                "source": proof.source}
                row["status"] = "from_licence" if row["consented"] else "needs_consent"
        elif src["kind"] == "registry":
            row["status"] = "from_registry" if _registry_has(session, kind, holder_id, src["field"], form) else "to_bring"
        elif mat["internal"]:
            row["status"] = "from_item"
        elif src["kind"] == "item":  # the result of an item the applicant obtained earlier on the platform
            earlier = ServicesRepository(session).earlier_result(kind=kind, holder_id=holder_id, item_code=src["item"])
            if earlier:
                row["status"], row["proof"] = "from_item", {"number": earlier, "issuer": src["item"],
                                                            "valid_until": None, "source": "services"}
        if row["status"] in ("to_bring", "needs_consent") and row["files"]:
            row["status"] = "uploaded"
        elif row["status"] == "to_bring" and row["provided"]:
            row["status"] = "verified"  # 原件已核验 at the counter
        out.append(row)
    return out


def _registry_has(session: Session, kind: str, holder_id: int, field_: str, form: Mapping[str, Any]) -> bool:
    if field_.startswith(kind if kind == "entity" else "person"):
        fake = {"properties": {"x": {"x-prefill": field_}}}
        return bool(_prefill(session, kind, holder_id, fake).get("x"))
    return False


def submit(*, session: Session, actor: Actor, application_id: int) -> Application:
    """Submit a draft: every required field answered and valid, every required material proven (a licence
    with consent, a registry field, another item of the bundle), uploaded, or its paper original checked at
    the counter. The exempted materials are
    recorded with their source; each item becomes a department's part (those waiting for another item wait).
    Queues ``citybase.services.application.submitted`` and a ``part.release`` per part sent on."""
    app = get_application(session=session, actor=actor, application_id=application_id, for_update=True)
    _require_editor(actor, app)
    if app.status != "draft":
        raise Conflict(Msg('application {code} is no longer a draft', code=app.code),
                       fix=Msg('Follow it with GET /api/v1/services/applications/{{id}}.'))
    schema = form_of(session=session, app=app)
    errors = forms.validate(schema, _loads(app.form, {}), complete=True)
    view = materials_view(session=session, app=app)
    for row in view:
        if row["required"] and row["status"] in ("to_bring", "needs_consent"):
            msg = (Msg('{name}: consent to fetching it from your licence, or upload it', name=row["name"])
                   if row["status"] == "needs_consent"
                   else Msg('{name} is required: upload it ({types}, up to {mb} MB)', name=row["name"],
                            types=files.TYPE_NAMES, mb=files.MAX_BYTES // 2**20))
            errors.append({"where": f"materials.{row['key']}", "field": row["key"], "label": row["name"],
                           "problem": render(msg), "input": None})
    if errors:
        raise _field_errors(errors)
    kind, holder_id = _holder(app)
    pairs = _members_of(session, app)
    code = app.code
    depts = tuple(sorted({m.department_id for m, _ in pairs}))
    exemptions = []
    for row in view:
        src = row["source"]
        entry = {"key": row["key"], "name": row["name"], "items": row["items"], "status": row["status"],
                 "required": row["required"]}
        if row["status"] == "from_item" and row["proof"]:
            entry["proof"] = row["proof"]
        if row["status"] == "from_licence":
            users = tuple(sorted({m.department_id for m, _ in pairs if m.code in row["items"]})) or depts
            proof = holds_licence(session=session, query=LicenceQuery(kind, holder_id, src["type"], code, users, True,
                                                                      actor.name))
            entry["proof"] = None if proof is None else {"number": proof.number, "issuer": proof.issuer,
                                                         "source": proof.source, "valid_until": proof.valid_until}
        exemptions.append(entry)
    now = utcnow()
    app.exemptions = _dumps(exemptions)
    app.status = "processing"
    app.submitted_at = now
    app.updated_at = now
    repo = ServicesRepository(session)
    parts = []
    for m, v in pairs:
        parts.append(repo.add(Part(application_id=app.id, item_version_id=v.id, item_code=m.code,
                                   department_id=v.department_id, status=S.WAITING if m.after else S.PENDING,
                                   after=_dumps(list(m.after)), committed_days=v.committed_days, corrections=0)))
    _log(session, app, None, actor, "submit", "draft", "processing")
    outbox.queue(session, events.APPLICATION_SUBMITTED, _app_event(session, app).model_dump())
    for p, (_, v) in zip(parts, pairs, strict=True):
        if p.status == S.PENDING:
            _part_event(session, app, p, v, actor, "release")
    return app


def withdraw(*, session: Session, actor: Actor, application_id: int) -> Application:
    """Drop a draft (it stays, marked withdrawn); Conflict once submitted."""
    app = get_application(session=session, actor=actor, application_id=application_id)
    _require_editor(actor, app)
    if app.status != "draft":
        raise Conflict(Msg('application {code} is no longer a draft', code=app.code),
                       fix=Msg('A submitted application is decided by its departments.'))
    app.status = "withdrawn"
    app.updated_at = utcnow()
    _log(session, app, None, actor, "withdraw", "draft", "withdrawn")
    return app


def list_applications(*, session: Session, actor: Actor, status: str | None = None, mine: bool = False,
                      page: int = 1, page_size: int = 50) -> tuple[list[Application], int]:
    """One page of the applications ``actor`` may see (newest first): a citizen's own, a clerk's department's,
    everything for admins and window clerks (``mine`` keeps only one's own)."""
    repo = ServicesRepository(session)
    staff = bool(actor.roles & STAFF_READERS) and not mine
    dept = actor.department_id if "clerk" in actor.roles and not staff and not mine else None
    own = not staff and dept is None
    q = repo.applications_query(person_id=actor.person_id, legal_entity_id=actor.legal_entity_id,
                                owner_user_id=actor.user_id, status=status, department_id=dept, mine=own)
    return repo.page(q, page, page_size)


def parts_of(*, session: Session, app: Application) -> list[Part]:
    """The application's parts, in the order of its items."""
    return ServicesRepository(session).parts_of(app.id)


def timeline(*, session: Session, app: Application) -> list[TimelineEntry]:
    """The application's timeline, oldest first."""
    return ServicesRepository(session).timeline(app.id)


def _log(session: Session, app: Application, part: Part | None, actor: Actor, action: str, before: str | None,
         after: str | None, note: str | Msg | None = None) -> None:
    session.add(TimelineEntry(application_id=app.id, part_id=part.id if part else None, at=utcnow(), actor=actor.name,
                              action=action, from_status=before, to_status=after,
                              note=_dumps(to_json(note)) if note is not None else None))


def note_of(entry: TimelineEntry) -> str | None:
    """A timeline entry's note in the reader's language."""
    return render(from_json(json.loads(entry.note))) if entry.note else None


def reason_of(part: Part) -> str | None:
    """A part's reason (refusal, non-acceptance, correction asked) in the reader's language."""
    return render(from_json(json.loads(part.reason))) if part.reason else None


def _app_event(session: Session, app: Application) -> events.ApplicationEvent:
    b = ServicesRepository(session).bundle_by_id(app.bundle_id) if app.bundle_id else None
    return events.ApplicationEvent(
        application_id=app.id, code=app.code, bundle=b.code if b else None, applicant_kind=app.applicant_kind,
        person_id=app.person_id, legal_entity_id=app.legal_entity_id, channel=app.channel, status=app.status,
        outcome=app.outcome, departments=sorted({v.department_id for _, v in _members_of(session, app)}))


def _part_event(session: Session, app: Application, part: Part, v: ItemVersion, actor: Actor, action: str,
                licence: str | None = None) -> None:
    approved = part.status == S.COMPLETED and part.decision == "approve"
    outbox.queue(session, events.part_subject(action), events.PartStep(licence_identifier=licence,
        application_id=app.id, part_id=part.id, code=app.code, item_code=part.item_code,
        department_id=part.department_id, status=S(part.status), decision=part.decision,
        result_licence_type=v.result_licence_type if approved else None, holder_kind=app.applicant_kind,
        person_id=app.person_id, legal_entity_id=app.legal_entity_id, actor=actor.name,
        deadline_at=part.deadline_at.isoformat() if part.deadline_at else None).model_dump(mode="json"))


# ---------------------------------------------------------------- materials the applicant brings: files


EDITABLE = ("draft", "correction")  # an application whose files may change: a draft, or while a part is in 补正
BROUGHT = ("to_bring", "needs_consent", "uploaded", "verified")  # a material's statuses that ask the applicant
_EXEMPT_WHY = {"from_licence": Msg('it is fetched from your electronic licence'),
               "from_registry": Msg('the base registries already hold it'),
               "from_item": Msg('another item of the application provides it')}


def _material_rows(session: Session, app: Application) -> dict[str, dict[str, Any]]:
    """The application's materials by key with their status: live while a draft, as recorded at submission after."""
    if app.status == "draft":
        return {r["key"]: r for r in materials_view(session=session, app=app)}
    return {e["key"]: e for e in _loads(app.exemptions, [])}


def _require_editable(app: Application) -> None:
    if app.status not in EDITABLE:
        raise Conflict(Msg('application {code} is {status}: its materials can no longer change', code=app.code,
                           status=app.status),
                       fix=Msg('Files are uploaded or removed while the application is a draft, or while a '
                               'department asks for a correction (补正).'))


def _file_event(session: Session, app: Application, f: MaterialFile, actor: Actor) -> dict[str, Any]:
    depts = sorted({p.department_id for p in ServicesRepository(session).parts_of(app.id)})
    return events.MaterialFileEvent(application_id=app.id, code=app.code, file_id=f.id, material_key=f.material_key,
                                    content_type=f.content_type, size=f.size, sha256=f.sha256, stage=f.stage,
                                    departments=depts, actor=actor.name).model_dump()


class Uploaded(NamedTuple):
    """What an upload kept: the file, whether it is new (False: the same content was already kept for the
    material), and the material's name."""

    file: MaterialFile
    created: bool
    material_name: str


def upload_material(*, session: Session, actor: Actor, application_id: int, material_key: str, name: str | None,
                    data: bytes, store: files.FileStore) -> Uploaded:
    """A file for one material the applicant brings (not one a licence, a registry or another item provides),
    by the applicant or a window clerk for them, while the application is a draft or in 补正: at most
    ``files.MAX_BYTES``, a PDF, JPEG, PNG or OFD by its content. The bytes are kept in ``store`` first, then the
    row that names them (a failed transaction leaves an orphan the store reuses, never a row naming nothing).
    The same content for the same material again answers the file kept (``created`` False). Queues
    ``citybase.services.material.uploaded``; flushes, never commits."""
    app = get_application(session=session, actor=actor, application_id=application_id)
    _require_editor(actor, app)
    _require_editable(app)
    row = _material_rows(session, app).get(material_key)
    if row is None:
        raise NotFound(Msg('application {code} asks for no material {key}', code=app.code, key=material_key),
                       fix=Msg('Use a key of the materials listed by GET /api/v1/services/applications/{{id}}.'))
    if row["status"] not in BROUGHT:
        raise Conflict(Msg('{name} need not be uploaded: {why}', name=row["name"],
                           why=_EXEMPT_WHY.get(row["status"], Msg('it is not asked of you'))),
                       fix=Msg('Nothing to upload for it; upload only the materials marked to bring.'))
    if len(data) > files.MAX_BYTES:
        raise TooLarge(Msg('the file is larger than {mb} MB', mb=files.MAX_BYTES // 2**20),
                       fix=Msg('Scan at a lower resolution, or split the material into several files of at most '
                               '{mb} MB each.', mb=files.MAX_BYTES // 2**20))
    if not data:
        raise InvalidInput(Msg('the file is empty'), fix=Msg('Choose the file again and upload it.'),
                           errors=[{"where": "body parameter 'file'", "problem": render(Msg('the file is empty'))}])
    content_type = files.sniff(data)
    if content_type is None:
        raise UnsupportedMediaType(
            Msg('{file} is not a PDF, JPEG, PNG or OFD file (checked by its content, not its name)',
                file=files.clean_name(name, "")),
            fix=Msg('Save or scan the material as PDF, JPEG, PNG or OFD and upload that file.'))
    repo = ServicesRepository(session)
    kept = repo.files_of(app.id, material_key)
    digest = hashlib.sha256(data).hexdigest()
    for f in kept:
        if f.sha256 == digest:
            return Uploaded(f, False, row["name"])
    if len(kept) >= files.MAX_FILES_PER_MATERIAL:
        raise Conflict(Msg('{name} already has {n} files', name=row["name"], n=len(kept)),
                       fix=Msg('Remove a file you no longer need, or join pages into one PDF.'))
    store.put(data)  # the bytes first, the row naming them after
    f = repo.add(MaterialFile(application_id=app.id, material_key=material_key,
                              name=files.clean_name(name, content_type), content_type=content_type, size=len(data),
                              sha256=digest, stage="draft" if app.status == "draft" else "correction",
                              uploaded_by=actor.name, uploaded_at=utcnow()))
    outbox.queue(session, events.MATERIAL_UPLOADED, _file_event(session, app, f, actor))
    return Uploaded(f, True, row["name"])


def material_files(*, session: Session, actor: Actor, application_id: int,
                   ) -> tuple[Application, list[MaterialFile], dict[str, str]]:
    """The files uploaded for an application (oldest first) and its materials' names by key, for whoever may
    read the application (its applicant, the clerks of its departments, window clerks, admins)."""
    app = get_application(session=session, actor=actor, application_id=application_id)
    names = {k: r["name"] for k, r in _material_rows(session, app).items()}
    return app, ServicesRepository(session).files_of(app.id), names


def _app_file(session: Session, actor: Actor, application_id: int, file_id: int) -> tuple[Application, MaterialFile]:
    app = get_application(session=session, actor=actor, application_id=application_id)
    f = ServicesRepository(session).file(file_id)
    if f is None or f.application_id != app.id:
        raise NotFound(Msg('application {code} has no file #{file_id}', code=app.code, file_id=file_id),
                       fix=Msg('List its files with GET /api/v1/services/applications/{{id}}/files.'))
    return app, f


def material_file(*, session: Session, actor: Actor, application_id: int, file_id: int) -> MaterialFile:
    """One uploaded file of an application the actor may read; NotFound otherwise."""
    return _app_file(session, actor, application_id, file_id)[1]


def sweep_files(*, session: Session, store: files.FileStore, grace: float = 86400.0, now: float | None = None) -> int:
    """Delete the uploaded content that no material file names any more (removed, or left by a failed
    transaction) once ``grace`` seconds passed since it was last written or reused; how many went."""
    return store.sweep(lambda: ServicesRepository(session).file_digests(), grace=grace, now=now)


def file_content(*, row: MaterialFile, store: files.FileStore) -> bytes:
    """The bytes of an uploaded file, from the store (NotFound if the store lost them)."""
    data = store.read(row.sha256)
    if data is None:
        raise NotFound(Msg('the content of file #{file_id} is missing from the file store', file_id=row.id),
                       fix=Msg('Ask the applicant to upload the file again; an operator may restore the data folder.'))
    return data


def remove_material_file(*, session: Session, actor: Actor, application_id: int, file_id: int) -> MaterialFile:
    """Remove one file (the applicant or a window clerk for them, while a draft or in 补正); its bytes stay in
    the content-addressed store, where other rows may name them. Queues ``citybase.services.material.removed``."""
    app, f = _app_file(session, actor, application_id, file_id)
    _require_editor(actor, app)
    _require_editable(app)
    data = _file_event(session, app, f, actor)
    ServicesRepository(session).delete(f)
    outbox.queue(session, events.MATERIAL_REMOVED, data)
    return f


def _brought_missing(session: Session, app: Application) -> list[dict[str, Any]]:
    """After a correction: the recorded status of each material brought, from the files and the originals
    checked now; a refusal for each required one left with neither."""
    uploaded = {f.material_key for f in ServicesRepository(session).files_of(app.id)}
    provided = set(_loads(app.provided, []))
    entries = _loads(app.exemptions, [])
    errors = []
    for e in entries:
        if e["status"] not in BROUGHT:
            continue
        e["status"] = "uploaded" if e["key"] in uploaded else "verified" if e["key"] in provided else (
            "to_bring" if e["status"] in ("uploaded", "verified") else e["status"])
        if e.get("required") and e["status"] not in ("uploaded", "verified"):
            errors.append({"where": f"materials.{e['key']}", "field": e["key"], "label": e["name"], "input": None,
                           "problem": render(Msg('{name} is required: upload it ({types}, up to {mb} MB)',
                                                 name=e["name"], types=files.TYPE_NAMES,
                                                 mb=files.MAX_BYTES // 2**20))})
    app.exemptions = _dumps(entries)
    return errors


# ---------------------------------------------------------------- approvals: each department's part


def _check(part: Part, action: str, app: Application) -> None:
    if part.status not in states.allowed_from(action):
        raise Conflict(Msg('cannot {action} part {item} of {code}: it is {status}', action=action,
                           item=part.item_code, code=app.code, status=part.status),
                       fix=Msg('{action} is possible only when the part is {items}.', action=action,
                               items=", ".join(states.allowed_from(action))))


def _require_department(actor: Actor, part: Part) -> None:
    if "admin" in actor.roles:
        return
    if "clerk" in actor.roles and actor.department_id == part.department_id:
        return
    raise Forbidden(Msg('this part belongs to another department'),
                    fix=Msg("Work the parts of your own department's queue (GET /api/v1/services/parts)."))


def act(*, session: Session, actor: Actor, application_id: int, part_id: int, action: str,
        reason: str | None = None, form: Mapping[str, Any] | None = None, provided: Sequence[str] | None = None,
        now: datetime | None = None) -> Part:
    """Take ``action`` on one department's part (the table in ``states`` says where it is allowed and where it
    leads): 受理 starts the committed time in working days, 补正 stops it until the applicant corrects, 决定
    and 办结 finish it; a completed approval sends on the parts that waited for it, a failure voids them.
    Appends a timeline entry and queues ``citybase.services.part.<action>``; flushes, never commits."""
    t = states.TRANSITIONS.get(action)
    if t is None or not t.roles:
        raise NotFound(Msg('no action {action}', action=action), fix=Msg('See GET /api/v1/services/workflow.'))
    now = now or utcnow()
    app = get_application(session=session, actor=actor, application_id=application_id)
    repo = ServicesRepository(session)
    part = repo.part(part_id)
    if part is None or part.application_id != app.id:
        raise NotFound(Msg('application {code} has no part #{part_id}', code=app.code, part_id=part_id),
                       fix=Msg('See the parts in GET /api/v1/services/applications/{{id}}.'))
    if action == "correct":
        _require_editor(actor, app)
    else:
        _require_department(actor, part)
    _check(part, action, app)
    if t.needs_reason and not (reason and reason.strip()):
        raise InvalidInput(Msg('{action} needs a reason', action=action),
                           fix=Msg('Say why, in words the applicant understands.'), errors=[
                               {"where": "body parameter 'reason'", "problem": render(Msg('a reason is required'))}])
    v = repo.version_by_id(part.item_version_id)
    before = part.status
    if action == "accept":
        part.status = S.ACCEPTED
        part.accepted_at = now
        part.deadline_at = workdays.due(now, part.committed_days)
        part.warn_at = workdays.warn(now, part.committed_days)
    elif action == "not-accept":
        part.status, part.done_at = S.NOT_ACCEPTED, now
        part.reason = _dumps(reason)
    elif action == "request-correction":
        part.paused_from, part.paused_at = part.status, now
        part.status = S.CORRECTION
        part.corrections += 1
        part.reason = _dumps(reason)
    elif action == "correct":
        if form:
            schema = form_of(session=session, app=app)
            answers = {**_loads(app.form, {}), **{k: x for k, x in form.items() if x is not None}}
            errors = forms.validate(schema, answers, complete=True) + _identity_changes(session, app, schema, form)
            if errors:
                raise _field_errors(errors)
            app.form = _dumps(answers)
        if provided:
            _require_counter(actor)
            app.provided = _dumps(sorted(set(_loads(app.provided, [])) | set(provided)))
        missing = _brought_missing(session, app)
        if missing:
            raise _field_errors(missing)
        if part.deadline_at is not None and part.paused_at is not None:
            part.deadline_at = workdays.shift(part.deadline_at, paused_at=part.paused_at, resumed_at=now)
            part.warn_at = workdays.shift(part.warn_at or part.deadline_at, paused_at=part.paused_at, resumed_at=now)
        part.status, part.paused_at = S(part.paused_from or S.ACCEPTED), None
        part.paused_from = None
    elif action == "review":
        part.status = S.REVIEWING
    elif action in ("approve", "refuse"):
        part.status = S.APPROVED if action == "approve" else S.REFUSED
        part.decision, part.decided_at = action, now
        if reason:
            part.reason = _dumps(reason)
    elif action == "complete":
        part.status, part.done_at = S.COMPLETED, now
    _log(session, app, part, actor, action, before, part.status, reason)
    session.flush()
    issued = _issue_result(session, app, part, v, actor) if action == "complete" else None  # type: ignore[arg-type]
    _part_event(session, app, part, v, actor, action, issued)  # type: ignore[arg-type]
    if part.status in states.TERMINAL:
        _after_part(session, app, part)
    _recompute(session, app, now)
    return part


def _issue_result(session: Session, app: Application, part: Part, v: ItemVersion, actor: Actor) -> str | None:
    """The electronic licence a completed approval issues (``citybase.licences``), when the item's result is one and
    its holder is of the applicant's kind; its GB/T 36904 identifier, on the timeline."""
    if part.decision != "approve" or not v.result_licence_type:
        return None
    fields = results.licence_fields(v.result_licence_type, _loads(app.form, {}), app.code)
    try:
        t = licences.get_type(session=session, key=v.result_licence_type)
    except NotFound:
        return None
    if fields is None or t.holder_kind != app.applicant_kind:
        return None
    holder = {"person_id": app.person_id} if app.applicant_kind == "person" else {"legal_entity_id": app.legal_entity_id}
    lic = licences.issue(session=session, type_key=v.result_licence_type, fields=fields,
                         issuer_department_id=part.department_id, application_ref=app.code, **holder)
    _log(session, app, part, actor, "issue", part.status, part.status,
         Msg('licence {identifier} issued', identifier=lic.identifier))
    return lic.identifier


def _after_part(session: Session, app: Application, done: Part) -> None:
    """Send on the parts whose items are all completed and approved; void those that can no longer be."""
    repo = ServicesRepository(session)
    parts = repo.parts_of(app.id)
    by_code = {p.item_code: p for p in parts}
    changed = True
    while changed:
        changed = False
        for p in parts:
            if p.status != S.WAITING:
                continue
            deps = [by_code[c] for c in _loads(p.after, []) if c in by_code]
            failed = any(d.status in (S.NOT_ACCEPTED, S.VOID) or (d.status == S.COMPLETED and d.decision != "approve")
                         for d in deps)
            ready = all(d.status == S.COMPLETED and d.decision == "approve" for d in deps)
            if failed or ready:
                action = "void" if failed else "release"
                p.status = S.VOID if failed else S.PENDING
                if failed:
                    p.done_at = utcnow()
                _log(session, app, p, SYSTEM, action, S.WAITING, p.status)
                session.flush()
                _part_event(session, app, p, repo.version_by_id(p.item_version_id), SYSTEM, action)  # type: ignore[arg-type]
                changed = True


def _recompute(session: Session, app: Application, now: datetime) -> None:
    parts = ServicesRepository(session).parts_of(app.id)
    if all(p.status in states.TERMINAL for p in parts):
        approved = [p for p in parts if p.status == S.COMPLETED and p.decision == "approve"]
        outcome = "approved" if len(approved) == len(parts) else ("refused" if not approved else "partly")
        if app.status != "done":
            app.status, app.outcome, app.done_at = "done", outcome, now
            _log(session, app, None, SYSTEM, "done", "processing", "done", outcome)
            outbox.queue(session, events.APPLICATION_DONE, _app_event(session, app).model_dump())
        return
    status = "correction" if any(p.status == S.CORRECTION for p in parts) else "processing"
    if app.status != status:
        app.status = status


def department_queue(*, session: Session, actor: Actor, department_id: int | None = None,
                     statuses: Sequence[str] | None = None, page: int = 1, page_size: int = 50,
                     ) -> tuple[list[Part], int]:
    """A department's parts to work (a clerk sees their own department's), nearest deadline first."""
    if "admin" not in actor.roles:
        department_id = actor.department_id
    bad = [s for s in statuses or () if s not in S.__members__.values()]
    if bad:
        raise InvalidInput(Msg('unknown status {value}', value=bad[0]),
                           fix=Msg('Use one of: {items}.', items=", ".join(S)))
    wanted = tuple(statuses) if statuses else tuple(s for s in states.OPEN if s != S.WAITING)
    repo = ServicesRepository(session)
    return repo.page(repo.parts_query(department_id=department_id, statuses=wanted), page, page_size)


def light_of(part: Part, now: datetime | None = None) -> str:
    """The part's light: green, yellow, red, or grey once finished (or before 受理)."""
    return workdays.light(now or utcnow(), warn_at=part.warn_at, deadline_at=part.deadline_at,
                          open_=part.status in states.OPEN, paused_at=part.paused_at)


def supervise_overdue(*, session: Session, now: datetime | None = None) -> list[Part]:
    """督办: each part past its deadline with its clock running is raised once to its department (a timeline
    entry and ``citybase.services.part.supervise``). Never commits."""
    now = now or utcnow()
    repo = ServicesRepository(session)
    out = []
    for part in repo.overdue_parts(now, tuple(states.CLOCK_RUNS)):
        part.supervised_at = now
        app = repo.application(part.application_id)
        _log(session, app, part, SYSTEM, "supervise", part.status, part.status,  # type: ignore[arg-type]
             Msg('overdue since {deadline}', deadline=f"{part.deadline_at.astimezone(SHANGHAI):%Y-%m-%d %H:%M}"))  # type: ignore[union-attr]
        session.flush()
        _part_event(session, app, part, repo.version_by_id(part.item_version_id), SYSTEM, "supervise")  # type: ignore[arg-type]
        out.append(part)
    return out


def unrated_done(*, session: Session, limit: int = 20) -> list[int]:
    """Finished applications nobody has rated yet, the longest finished first (for the living demo)."""
    return ServicesRepository(session).unrated_done(limit)


# ---------------------------------------------------------------- 好差评


def rate(*, session: Session, actor: Actor, application_id: int, grade: int, channel: str,
         comment: str | None = None, department_id: int | None = None) -> Rating:
    """The applicant's one rating of a finished application (5 非常满意 … 1 非常不满意) on a channel; a bad
    one (≤ 2) opens a rectification (整改) for the department named (or the one that finished last) with a
    deadline of ``RECTIFY_DAYS`` working days. Conflict for a second rating."""
    app = get_application(session=session, actor=actor, application_id=application_id)
    _require_editor(actor, app)
    if grade not in GRADES:
        raise InvalidInput(Msg('grade must be 1 to 5'), fix=Msg('5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意.'))
    if channel not in RATING_CHANNELS:
        raise InvalidInput(Msg('channel must be one of: {items}', items=", ".join(RATING_CHANNELS)),
                           fix=Msg('Say where the rating was given.'))
    if app.status != "done":
        raise Conflict(Msg('application {code} is not finished yet', code=app.code),
                       fix=Msg('Rate it once every department has finished.'))
    repo = ServicesRepository(session)
    if repo.rating_of(app.id):
        raise Conflict(Msg('application {code} is already rated', code=app.code),
                       fix=Msg('Each application is rated once.'))
    now = utcnow()
    r = repo.add(Rating(application_id=app.id, grade=grade, channel=channel, comment=comment, by=actor.name, at=now))
    rect = None
    parts = repo.parts_of(app.id)
    if grade <= BAD:
        depts = {p.department_id for p in parts}
        if department_id is not None and department_id not in depts:
            raise InvalidInput(Msg('department {department_id} had no part in this application',
                                   department_id=department_id),
                               fix=Msg('Name one of the departments that worked it, or leave it out.'))
        if department_id is None:
            failed = [p for p in parts if p.status in (S.NOT_ACCEPTED,) or p.decision == "refuse"]
            last = max(failed or parts, key=lambda p: (p.done_at or now, p.id))
            department_id = last.department_id
        rect = repo.add(Rectification(rating_id=r.id, application_id=app.id, department_id=department_id,
                                      status="open", deadline_at=workdays.due(now, RECTIFY_DAYS), created_at=now))
        outbox.queue(session, events.RECTIFICATION_OPENED, _rect_event(rect).model_dump())
    _log(session, app, None, actor, "rate", app.status, app.status, f"{grade} {GRADES[grade]}")
    outbox.queue(session, events.RATED, events.RatingGiven(
        application_id=app.id, code=app.code, grade=grade, channel=channel,
        rectification_id=rect.id if rect else None).model_dump())
    return r


def _rect_event(rect: Rectification) -> events.RectificationStep:
    return events.RectificationStep(rectification_id=rect.id, application_id=rect.application_id,
                                    department_id=rect.department_id, status=rect.status,
                                    deadline_at=rect.deadline_at.isoformat())


def rating_of(*, session: Session, app: Application) -> tuple[Rating | None, Rectification | None]:
    """The application's rating and the rectification it opened, if any."""
    repo = ServicesRepository(session)
    return repo.rating_of(app.id), repo.rectification_of(app.id)


def rectify(*, session: Session, actor: Actor, rectification_id: int, action_taken: str, callback_note: str,
            ) -> Rectification:
    """The department's rectification done, with the call-back to the applicant (回访); visible to them."""
    repo = ServicesRepository(session)
    rect = repo.rectification(rectification_id)
    if rect is None:
        raise NotFound(Msg('no rectification #{rectification_id}', rectification_id=rectification_id),
                       fix=Msg('List them with GET /api/v1/services/rectifications.'))
    if "admin" not in actor.roles and actor.department_id != rect.department_id:
        raise Forbidden(Msg('this rectification belongs to another department'),
                        fix=Msg("Work your own department's rectifications."))
    if rect.status != "open":
        raise Conflict(Msg('rectification #{rectification_id} is already done', rectification_id=rect.id),
                       fix=Msg('Nothing more to do.'))
    if not action_taken.strip() or not callback_note.strip():
        raise InvalidInput(Msg('say what was rectified and what the applicant said on the call-back'),
                           fix=Msg('Fill action_taken and callback_note.'))
    now = utcnow()
    rect.status, rect.action_taken, rect.callback_note = "done", action_taken, callback_note
    rect.callback_at = rect.done_at = now
    app = repo.application(rect.application_id)
    _log(session, app, None, actor, "rectify", app.status, app.status, action_taken)  # type: ignore[arg-type]
    outbox.queue(session, events.RECTIFICATION_DONE, _rect_event(rect).model_dump())
    return rect


def list_rectifications(*, session: Session, actor: Actor, status: str | None = None, page: int = 1,
                        page_size: int = 50) -> tuple[list[Rectification], int]:
    """Rectifications, newest first: a clerk's department's, every one for admins and analysts."""
    dept = None if actor.roles & {"admin", "analyst"} else actor.department_id
    repo = ServicesRepository(session)
    return repo.page(repo.rectifications_query(department_id=dept, status=status), page, page_size)


# ---------------------------------------------------------------- KPIs


EXEMPT = ("from_licence", "from_registry", "from_item")  # a material's statuses that mean it was not asked for


@dataclass
class _Tally:
    items: int = 0
    full_online_items: int = 0
    statutory: int = 0
    committed: int = 0
    parts: int = 0
    online_parts: int = 0
    instant_parts: int = 0
    overdue: int = 0
    done_parts: int = 0
    done_days: int = 0


def _rate(n: float, d: float) -> float | None:
    return round(n / d, 4) if d else None


def _cumulative_workdays(dates: set[date]) -> dict[date, int]:
    """W(d) for each date given: working days in (min date, d], so W(b) − W(a) = working days in (a, b]."""
    if not dates:
        return {}
    out, n, d, last = {}, 0, min(dates), max(dates)
    while True:
        if d in dates:
            out[d] = n
        if d >= last:
            return out
        d += timedelta(days=1)
        n += workdays.is_workday(d)


def kpis(*, session: Session, since: datetime | None = None, until: datetime | None = None,
         department: str | None = None, item: str | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The seeds' indicators, computed live from the platform's own rows for a period, a department, an item:
    全程网办率 (items offered fully online), 实际网办率 (parts filed online for such items), 材料减免率,
    时限压缩率 (1 − committed/statutory), 即办率, 一次办成率 (done, approved, no correction), 好评率, 差评整改率,
    average handling days (working days from 受理 to 办结); and the same by department and by item.

    Three grouped queries: the catalogue; ONE pass over the parts in scope, by department, item and the local
    dates of 受理 and 办结 of the completed ones; ONE over the applications in scope with their ratings and
    rectifications. Only the handling days are finished here: Σ count × (W(办结) − W(受理)) with W the
    cumulative working days on the State Council calendar."""
    dept_id = registry.get_department(session=session, code=department).id if department else None
    repo = ServicesRepository(session)
    scope = {"since": since, "until": until, "department_id": dept_id, "item_code": item}
    tallies: dict[tuple[int, str], _Tally] = {}
    for d, code, n, full, statutory, committed in repo.kpi_catalogue(department_id=dept_id, item_code=item):
        t = tallies.setdefault((d, code), _Tally())
        t.items += n
        t.full_online_items += full
        t.statutory += statutory
        t.committed += committed
    rows = repo.kpi_parts(**scope, open_statuses=tuple(states.OPEN), completed=S.COMPLETED, now=now or utcnow())
    w = _cumulative_workdays({r[2] for r in rows if r[2]} | {r[3] for r in rows if r[3]})
    for d, code, accepted, done_on, n, online, instant, overdue, handled in rows:
        t = tallies.setdefault((d, code), _Tally())
        t.parts += n
        t.online_parts += online
        t.instant_parts += instant
        t.overdue += overdue
        if handled:  # working days in (受理, 办结]; a part finished before its 受理 counts 0
            t.done_parts += handled
            t.done_days += handled * max(0, w[done_on] - w[accepted])

    def indicators(ts: Sequence[_Tally]) -> dict[str, Any]:
        items_ = sum(t.items for t in ts)
        parts_ = sum(t.parts for t in ts)
        done_ = sum(t.done_parts for t in ts)
        return {"items": items_, "parts": parts_,
                "full_online_rate": _rate(sum(t.full_online_items for t in ts), items_),
                "actual_online_rate": _rate(sum(t.online_parts for t in ts), parts_),
                "time_cut_rate": _rate(sum(t.statutory - t.committed for t in ts), sum(t.statutory for t in ts)),
                "instant_rate": _rate(sum(t.instant_parts for t in ts), parts_),
                "average_handling_days": round(sum(t.done_days for t in ts) / done_, 2) if done_ else None}

    apps, done, first_time, total_mat, exempt_mat, ratings, good, bad, fixed = repo.kpi_applications(
        **scope, exempt=EXEMPT, correction="request-correction", good=4, bad=BAD)
    overall = indicators(list(tallies.values()))
    overall.update({
        "applications": apps, "done": done,
        "material_exemption_rate": _rate(exempt_mat, total_mat),
        "once_done_rate": _rate(first_time, done),
        "ratings": ratings, "good_rating_rate": _rate(good, ratings),
        "bad_ratings": bad, "rectification_rate": _rate(fixed, bad),
        "overdue_open_parts": sum(t.overdue for t in tallies.values()),
    })
    by_dept: dict[int, list[_Tally]] = {}
    by_item: dict[str, list[_Tally]] = {}
    for (d, code), t in tallies.items():
        by_dept.setdefault(d, []).append(t)
        by_item.setdefault(code, []).append(t)
    dept_names = {d.id: d.name for d in registry.list_departments(session=session)}
    names = {i.code: v.name for i, v in repo.current_versions()}
    item_dept = {code: d for d, code in sorted(tallies)}
    return {"since": since.isoformat() if since else None, "until": until.isoformat() if until else None,
            "department": department, "item": item, "overall": overall,
            "by_department": [{"department_id": d, "department": dept_names.get(d, str(d)), **indicators(ts)}
                              for d, ts in sorted(by_dept.items())],
            "by_item": [{"item": code, "name": names.get(code, code), "department_id": item_dept[code],
                         **indicators(ts)} for code, ts in sorted(by_item.items())]}
