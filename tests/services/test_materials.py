"""Materials the applicant brings, as files, on both engines: uploaded for one material (PDF, JPEG, PNG, OFD by
their content, up to 10 MB), kept outside the database by their SHA-256, listed, downloaded with their Chinese
names (every download audited), removed while a draft or in 补正; submission and 补正 need a file for each
required material; the applicant, the window clerk and the clerks of the application's departments only."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citybase.demo.documents import one_page_pdf
from citybase.kernel.models import OutboxEvent
from citybase.security.models import AuditEntry
from citybase.services import files
from citybase.services.files import FileStore
from citybase.services.models import MaterialFile

BASE = "/api/v1/services"
NEWBORN = {"child_name": "王小宝", "child_sex": "女", "child_birth_date": "2026-11-20",
           "birth_hospital": "复旦大学附属中山医院", "mother_name": "李梅", "father_name": "王强",
           "bank_account": "6222020200112233445"}
RECORD = "applicant:住院分娩记录"
PHOTO = "applicant:新生儿证件照"
MARRIAGE = "licence:marriage_certificate"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40


def ofd(with_root: bool = True) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("OFD.xml" if with_root else "content.xml", '<ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016"/>')
        z.writestr("Doc_0/Document.xml", "<ofd:Document/>")
    return buf.getvalue()


@pytest.fixture
def data_dir(city, tmp_path_factory) -> Path:  # noqa: ANN001
    return tmp_path_factory.getbasetemp() / f"materials-{city.engine.dialect.name}"


@pytest.fixture
def api(city, services_tokens, data_dir):  # noqa: ANN001
    """Calls to an app over the test city whose data folder is ``data_dir`` (Chinese unless told)."""
    from fastapi.testclient import TestClient

    from citybase.api.app import create_app
    from citybase.bus.memory import InProcessBus
    from citybase.core.settings import load_settings

    client = TestClient(create_app(load_settings(data_dir=data_dir), engine=city.engine, bus=InProcessBus()))

    def call(method: str, path: str, user: str | None, **kw):  # noqa: ANN202
        headers = {**(city.auth(user) if user else {}), **kw.pop("headers", {})}
        return client.request(method, path if path.startswith("/api/") else BASE + path, headers=headers, **kw)

    return call


def upload(api, app_id: int, key: str, user: str = "citizen", *, name: str = "材料.pdf", data: bytes | None = None,  # noqa: ANN001
           declared: str = "application/pdf", lang: str = "zh"):  # noqa: ANN201
    return api("POST", f"/applications/{app_id}/materials/{quote(key, safe='')}", user,
               files={"file": (name, one_page_pdf(key) if data is None else data, declared)},
               headers={"Accept-Language": lang})


def draft(api, user: str = "citizen") -> dict:  # noqa: ANN001
    app = api("POST", "/applications", user, json={"bundle": "newborn"}).json()
    r = api("PATCH", f"/applications/{app['id']}", user, json={
        "form": NEWBORN, "consent": ["id_card", "household_register", "marriage_certificate"]})
    assert r.status_code == 200, r.text
    return r.json()


def materials(api, app_id: int, user: str = "citizen") -> dict[str, dict]:  # noqa: ANN001
    return {m["key"]: m for m in api("GET", f"/applications/{app_id}", user).json()["materials"]}


def downloads_audited(city, file_id: int) -> list[AuditEntry]:  # noqa: ANN001
    with Session(city.engine) as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.action == "read.services_material_file",
                                                       AuditEntry.subject_ids == str(file_id))))


def test_a_chinese_named_file_is_uploaded_kept_by_its_hash_downloaded_audited_and_removed(api, city, data_dir):  # noqa: ANN001
    app = draft(api)
    assert materials(api, app["id"])[RECORD]["status"] == "to_bring"
    name = "出生医学证明 扫描件（第1页）.pdf"
    body = one_page_pdf("XH birth record")
    r = upload(api, app["id"], RECORD, name=name, data=body)
    assert r.status_code == 201, r.text
    f = r.json()
    digest = hashlib.sha256(body).hexdigest()
    assert (f["name"], f["material_name"], f["content_type"], f["size"], f["sha256"], f["stage"]) == (
        name, "住院分娩记录", "application/pdf", len(body), digest, "draft")
    assert f["uploaded_by"].endswith(":citizen")
    # the bytes live under the data folder by their SHA-256, not in the database
    assert (data_dir / "services" / "files" / digest[:2] / digest[2:4] / digest).read_bytes() == body
    assert materials(api, app["id"])[RECORD]["status"] == "uploaded"

    listed = api("GET", f"/applications/{app['id']}/files", "citizen").json()
    assert [(x["id"], x["name"], x["material_name"]) for x in listed] == [(f["id"], name, "住院分娩记录")]

    before = len(downloads_audited(city, f["id"]))
    d = api("GET", f["url"], "citizen")
    assert d.status_code == 200 and d.content == body
    assert d.headers["content-type"] == "application/pdf"
    assert d.headers["x-content-type-options"] == "nosniff"
    disposition = d.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=\"")
    assert unquote(disposition.split("filename*=UTF-8''")[1]) == name  # RFC 5987: the Chinese name round trip
    audited = downloads_audited(city, f["id"])
    assert len(audited) == before + 1 and audited[-1].actor.endswith(":citizen")

    # the same content for the same material again: the file kept, not a second one
    again = upload(api, app["id"], RECORD, name="again.pdf", data=body)
    assert again.status_code == 200 and (again.json()["id"], again.json()["material_name"]) == (f["id"], "住院分娩记录")

    assert api("DELETE", f["url"], "citizen").status_code == 204
    assert api("GET", f"/applications/{app['id']}/files", "citizen").json() == []
    assert api("GET", f["url"], "citizen").status_code == 404
    assert materials(api, app["id"])[RECORD]["status"] == "to_bring"
    with Session(city.engine) as s:
        evs = [json.loads(e.data) | {"subject": e.subject} for e in s.scalars(
            select(OutboxEvent).where(OutboxEvent.subject.like("citybase.services.material.%"))
            .order_by(OutboxEvent.seq))]
    mine = [e for e in evs if e["file_id"] == f["id"]]
    assert [e["subject"] for e in mine] == ["citybase.services.material.uploaded", "citybase.services.material.removed"]
    assert all(name not in json.dumps(e, ensure_ascii=False) for e in mine)  # ids and hashes, no file name


def test_bad_files_are_refused_saying_what_was_wrong_and_how_to_fix_it(api):  # noqa: ANN001
    app = draft(api)
    big = b"%PDF-1.4\n" + b"0" * files.MAX_BYTES
    r = upload(api, app["id"], RECORD, data=big)
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")
    assert "10 MB" in r.json()["detail"] and "超过" in r.json()["detail"] and "拆分" in r.json()["fix"]
    r = upload(api, app["id"], RECORD, data=big, lang="en")
    assert r.status_code == 413 and r.json()["detail"] == "the file is larger than 10 MB"

    # an executable named and declared as a PDF: the content decides
    r = upload(api, app["id"], RECORD, name="证明.pdf", data=b"MZ\x90\x00" + b"\x00" * 100)
    assert r.status_code == 415 and "证明.pdf" in r.json()["detail"] and "PDF" in r.json()["fix"]
    r = upload(api, app["id"], RECORD, name="scan.pdf", data=b"MZ\x90\x00", lang="en")
    assert r.status_code == 415 and "not a PDF, JPEG, PNG or OFD" in r.json()["detail"]
    r = upload(api, app["id"], RECORD, name="a.ofd", data=ofd(with_root=False), declared="application/ofd")
    assert r.status_code == 415  # a ZIP without OFD.xml is no OFD
    r = upload(api, app["id"], RECORD, data=b"")
    assert r.status_code == 422 and "为空" in r.json()["detail"]

    r = upload(api, app["id"], "applicant:no-such-material")
    assert r.status_code == 404 and "no-such-material" in r.json()["detail"]
    r = upload(api, app["id"], "licence:id_card", lang="en")  # fetched from the licence library with consent
    assert r.status_code == 409
    assert r.json()["detail"] == "居民身份证 need not be uploaded: it is fetched from your electronic licence"
    assert "无需上传" in upload(api, app["id"], "licence:id_card").json()["detail"]

    # what is allowed: PDF, a PNG declared as something else, an OFD package
    assert upload(api, app["id"], RECORD).status_code == 201
    p = upload(api, app["id"], PHOTO, name="照片.png", data=PNG, declared="application/octet-stream")
    assert p.status_code == 201 and p.json()["content_type"] == "image/png"
    o = upload(api, app["id"], MARRIAGE, name="结婚证.ofd", data=ofd())
    assert o.status_code == 201 and o.json()["content_type"] == "application/ofd"
    assert {m["status"] for k, m in materials(api, app["id"]).items() if k in (RECORD, PHOTO, MARRIAGE)} == {"uploaded"}


def test_submitting_needs_a_file_for_each_material_to_bring_and_then_the_files_are_fixed(api):  # noqa: ANN001
    app = draft(api)
    r = api("POST", f"/applications/{app['id']}/submit", "citizen")
    assert r.status_code == 422
    problems = {e["where"]: e["problem"] for e in r.json()["errors"]}
    assert set(problems) == {f"materials.{k}" for k in (RECORD, PHOTO, MARRIAGE)}
    assert "请上传" in problems[f"materials.{RECORD}"] and "10 MB" in problems[f"materials.{RECORD}"]
    # the old checkbox does not attach anything for an applicant: only a window clerk checks originals
    r = api("PATCH", f"/applications/{app['id']}", "citizen", json={"provided": [RECORD]})
    assert r.status_code == 403 and "原件" in r.json()["detail"]
    assert api("PATCH", f"/applications/{app['id']}", "citizen", json={"provided": []}).status_code == 200  # unchanged
    for key in (RECORD, PHOTO, MARRIAGE):
        assert upload(api, app["id"], key).status_code == 201
    r = api("POST", f"/applications/{app['id']}/submit", "citizen")
    assert r.status_code == 200, r.text
    ex = {e["key"]: e["status"] for e in r.json()["exemptions"]}
    assert ex[RECORD] == ex[PHOTO] == ex[MARRIAGE] == "uploaded"
    # submitted and not in 补正: the files stay as they were sent
    r = upload(api, app["id"], RECORD, data=one_page_pdf("later"))
    assert r.status_code == 409 and "补正" in r.json()["fix"]
    kept = api("GET", f"/applications/{app['id']}/files", "citizen").json()
    assert api("DELETE", kept[0]["url"], "citizen").status_code == 409


def test_who_may_upload_read_and_remove(api, city):  # noqa: ANN001
    app = draft(api)
    for key in (RECORD, PHOTO, MARRIAGE):
        upload(api, app["id"], key)
    f = api("GET", f"/applications/{app['id']}/files", "citizen").json()[0]
    # before submission no department holds a part: its clerk does not see the files
    assert api("GET", f"/applications/{app['id']}/files", "clerk-wjw").status_code == 404
    # another applicant and a clerk of an uninvolved department are not told it exists
    for user in ("firm", "clerk"):
        assert api("GET", f["url"], user).status_code == 404
        assert api("GET", f"/applications/{app['id']}/files", user).status_code == 404
    assert upload(api, app["id"], RECORD, "firm", data=one_page_pdf("intruder")).status_code == 404
    assert api("DELETE", f["url"], "firm").status_code == 404
    assert api("GET", f["url"], "analyst").status_code == 403  # KPIs, not applicants' files
    assert api("GET", f["url"], None).status_code == 401
    # the window clerk files for the applicant: may upload and read
    w = upload(api, app["id"], PHOTO, "window", name="窗口补扫.jpg", data=b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    assert w.status_code == 201 and w.json()["uploaded_by"].endswith(":window") and w.json()["content_type"] == "image/jpeg"
    assert api("GET", w.json()["url"], "window").status_code == 200
    assert api("DELETE", w.json()["url"], "window").status_code == 204

    api("POST", f"/applications/{app['id']}/submit", "citizen")
    # the clerks of the application's departments read and download (audited), never change
    listed = api("GET", f"/applications/{app['id']}/files", "clerk-wjw")
    assert listed.status_code == 200 and len(listed.json()) == 3
    before = len(downloads_audited(city, f["id"]))
    d = api("GET", f["url"], "clerk-wjw")
    assert d.status_code == 200 and d.content.startswith(b"%PDF-")
    audited = downloads_audited(city, f["id"])
    assert len(audited) == before + 1 and audited[-1].actor.endswith(":clerk-wjw")
    assert upload(api, app["id"], RECORD, "clerk-wjw").status_code == 403
    assert api("DELETE", f["url"], "clerk-wjw").status_code == 403


def test_a_correction_takes_the_corrected_file(api):  # noqa: ANN001
    app = draft(api)
    for key in (RECORD, PHOTO, MARRIAGE):
        upload(api, app["id"], key)
    app = api("POST", f"/applications/{app['id']}/submit", "citizen").json()
    part = next(p for p in app["parts"] if p["item_code"] == "XH-WJW-001")
    for action, body in (("accept", {}), ("request-correction", {"reason": "分娩记录不清晰，请重新上传"})):
        r = api("POST", f"/applications/{app['id']}/parts/{part['id']}/{action}", "clerk-wjw", json=body)
        assert r.status_code == 200, r.text
    old = next(f for f in api("GET", f"/applications/{app['id']}/files", "citizen").json()
               if f["material_key"] == RECORD)
    assert api("DELETE", old["url"], "citizen").status_code == 204
    # correcting with the required record gone is refused beside the material
    r = api("POST", f"/applications/{app['id']}/parts/{part['id']}/correct", "citizen", json={})
    assert r.status_code == 422 and r.json()["errors"][0]["where"] == f"materials.{RECORD}"
    new = upload(api, app["id"], RECORD, name="分娩记录（清晰版）.pdf", data=one_page_pdf("clearer"))
    assert new.status_code == 201 and new.json()["stage"] == "correction"
    r = api("POST", f"/applications/{app['id']}/parts/{part['id']}/correct", "citizen", json={})
    assert r.status_code == 200, r.text
    assert {p["item_code"]: p["status"] for p in r.json()["parts"]}["XH-WJW-001"] == "accepted"
    assert {e["key"]: e["status"] for e in r.json()["exemptions"]}[RECORD] == "uploaded"
    names = [f["name"] for f in api("GET", f"/applications/{app['id']}/files", "clerk-wjw").json()]
    assert "分娩记录（清晰版）.pdf" in names


def test_a_window_clerk_checks_paper_originals_at_the_counter(api, city):  # noqa: ANN001
    from sqlalchemy import text

    with Session(city.engine) as s:
        eid = s.scalar(text("SELECT max(id) FROM legal_entities WHERE address <> ''"))
    app = api("POST", "/applications", "window", json={"item": "XH-SCJG-001", "applicant_kind": "entity",
                                                       "legal_entity_id": eid}).json()
    form = {k: v for k, v in {"applicant_name": "张三", "id_number": "11010519491231002X"}.items()
            if k not in app["form"]}
    r = api("PATCH", f"/applications/{app['id']}", "window", json={
        "form": {**form, "registered_capital": 10, "business_scope": "软件开发"},
        "provided": ["applicant:公司章程", "licence:id_card"]})  # 原件已核验
    assert r.status_code == 200, r.text
    assert upload(api, app["id"], "applicant:住所使用证明", "window", name="租赁合同.pdf").status_code == 201
    r = api("POST", f"/applications/{app['id']}/submit", "window")
    assert r.status_code == 200, r.text
    ex = {e["key"]: e["status"] for e in r.json()["exemptions"]}
    assert ex["applicant:公司章程"] == ex["licence:id_card"] == "verified"
    assert ex["applicant:住所使用证明"] == "uploaded"


def test_a_failed_transaction_leaves_bytes_no_row_names_and_the_next_upload_reuses_them(city, services_tokens,  # noqa: ANN001
                                                                                       tmp_path):
    from citybase.security.models import User
    from citybase.services import service
    from citybase.services.service import Actor

    store = FileStore(tmp_path / "files")
    body = one_page_pdf("rolled back")
    with Session(city.engine) as s:
        u = s.scalar(select(User).where(User.username == "citizen"))
        actor = Actor(u.username, user_id=u.id, roles=frozenset({"citizen"}), person_id=u.person_id)
        app = service.start(session=s, actor=actor, bundle="newborn")
        s.commit()
        service.upload_material(session=s, actor=actor, application_id=app.id, material_key=RECORD,
                                name="记录.pdf", data=body, store=store)
        s.rollback()  # the transaction fails after the bytes were written
        assert s.scalars(select(MaterialFile).where(MaterialFile.application_id == app.id)).all() == []
        digest = hashlib.sha256(body).hexdigest()
        assert store.read(digest) == body  # an orphan: harmless, named by its content
        f, created, _ = service.upload_material(session=s, actor=actor, application_id=app.id, material_key=RECORD,
                                             name="记录.pdf", data=body, store=store)
        s.commit()
        assert created and f.sha256 == digest and store.read(f.sha256) == body
        assert len([p for p in (tmp_path / "files").rglob("*") if p.name != ".lock"]) == 3  # ab/, ab/cd/, the file


def test_the_sweep_deletes_content_no_file_names_a_day_after_its_last_use(city, services_tokens, tmp_path):  # noqa: ANN001
    import os
    import time

    from citybase.security.models import User
    from citybase.services import service
    from citybase.services.service import Actor

    store = FileStore(tmp_path / "files")
    kept, removed, fresh, reused = (one_page_pdf(t) for t in ("kept", "removed", "fresh orphan", "reused"))
    with Session(city.engine) as s:
        u = s.scalar(select(User).where(User.username == "citizen"))
        actor = Actor(u.username, user_id=u.id, roles=frozenset({"citizen"}), person_id=u.person_id)
        app = service.start(session=s, actor=actor, bundle="newborn")
        s.commit()
        named, _, _ = service.upload_material(session=s, actor=actor, application_id=app.id, material_key=RECORD,
                                           name="留.pdf", data=kept, store=store)
        s.commit()
        for body in (removed, fresh, reused):
            store.put(body)  # bytes no row names (a removed file's, or a failed transaction's)
        day_ago = time.time() - 2 * 86400
        for body in (kept, removed, reused):
            os.utime(store.path(hashlib.sha256(body).hexdigest()), (day_ago, day_ago))
        # an upload that reuses old orphaned bytes makes them fresh: the row about to name them finds them there
        store.put(reused)
        assert service.sweep_files(session=s, store=store) == 1
        assert store.read(named.sha256) == kept  # named by a row, however old
        assert store.read(hashlib.sha256(removed).hexdigest()) is None  # nobody's, for more than a day: gone
        assert store.read(hashlib.sha256(fresh).hexdigest()) == fresh  # may belong to an upload in flight
        assert store.read(hashlib.sha256(reused).hexdigest()) == reused
        assert service.sweep_files(session=s, store=store) == 0


def test_file_types_are_told_by_their_content_and_names_are_kept_safe():
    assert files.sniff(one_page_pdf("x")) == "application/pdf"
    assert files.sniff(b"\xff\xd8\xff\xdb") == "image/jpeg"
    assert files.sniff(PNG) == "image/png"
    assert files.sniff(ofd()) == "application/ofd"
    assert files.sniff(ofd(with_root=False)) is None
    assert files.sniff(b"PK\x03\x04 not really a zip") is None
    assert files.sniff(b"GIF89a") is None
    assert files.clean_name("C:\\fakepath\\户口簿.jpg", "image/jpeg") == "户口簿.jpg"
    assert files.clean_name("../../etc/passwd\x00", "application/pdf") == "passwd"
    assert files.clean_name("", "application/pdf") == "material.pdf"
    long = "长" * 300 + ".pdf"
    assert len(files.clean_name(long, "application/pdf")) == 200 and files.clean_name(long, "").endswith(".pdf")
    cd = files.content_disposition('营业执照 "副本".pdf')
    assert cd.startswith('attachment; filename="') and '"副本"' not in cd.split(";")[1]
    assert unquote(cd.split("filename*=UTF-8''")[1]) == '营业执照 "副本".pdf'
