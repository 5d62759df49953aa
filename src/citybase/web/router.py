"""Pages: the district map with registry counts, and the incident loop's pages (sign-in, dispatcher
workbench, handler tasks, citizen reports). Chinese first, English with ?lang=en.

The pages are public HTML; everything they show comes from the platform's HTTP API, called from the
browser with the signed-in person's bearer token (kept in localStorage)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import xstatic.pkg.leaflet as xleaflet
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from citybase.core.errors import NotFound
from citybase.core.i18n import Msg
from citybase.security.deps import allow
from citybase.security.roles import PUBLIC, STAFF
from citybase.web.i18n import LANGS, page_texts, texts

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)
ASSET_DIRS = {"leaflet": Path(xleaflet.BASE_DIR), "citybase": HERE / "static"}
LANG = Query("zh", pattern="^(zh|en)$")

# The header's links between pages: (path, text key).
NAV = (("/", "nav_map"), ("/report", "nav_report"), ("/ops/workbench", "nav_workbench"),
       ("/ops/tasks", "nav_tasks"), ("/iot", "nav_iot"), ("/services", "nav_services"),
       ("/licences/mine", "nav_licences"), ("/licences/verify", "nav_verify"), ("/login", "nav_login"))
# Links shown only to these roles once someone is signed in (ops.js hides the others); signed out, all show.
NAV_ROLES = {"/iot": STAFF}


def _nav(t: dict, lang: str, here: str) -> list[dict]:
    """The header's links; a page below a link (/iot/alarms below /iot) marks that link as the current one."""
    suffix = "?lang=en" if lang == "en" else ""
    return [{"href": path + suffix, "label": t[key], "id": "nav-" + key[4:], "roles": " ".join(NAV_ROLES.get(path, ())),
             "on": path == here or (path != "/" and here.startswith(path + "/"))} for path, key in NAV]


def _lang_links(request: Request) -> dict[str, str]:
    """The same page in each language, keeping the rest of the query (e.g. ?next=)."""
    return {code: request.url.path + "?" + request.url.include_query_params(lang=code).query for code in LANGS}


def _page(request: Request, template: str, lang: str, page: str, *, leaflet: bool = False,
          extra: dict | None = None) -> HTMLResponse:
    t = page_texts(lang)
    return templates.TemplateResponse(request, template, {
        "t": t, "lang": lang, "langs": LANGS, "lang_links": _lang_links(request), "nav": _nav(t, lang, request.url.path),
        "page": page, "leaflet": leaflet, **(extra or {})})


@router.get("/", response_class=HTMLResponse)
def index(request: Request, lang: str = LANG, _: object = Depends(allow(PUBLIC))):
    return templates.TemplateResponse(request, "index.html", {"t": texts(lang), "lang": lang, "langs": LANGS,
                                                              "nav": _nav(page_texts(lang), lang, "/")})


@router.get("/login", response_class=HTMLResponse)
def login(request: Request, lang: str = LANG, _: object = Depends(allow(PUBLIC))):
    return _page(request, "login.html", lang, "login")


@router.get("/ops/workbench", response_class=HTMLResponse)
def workbench(request: Request, lang: str = LANG, _: object = Depends(allow(PUBLIC))):
    return _page(request, "workbench.html", lang, "workbench", leaflet=True)


@router.get("/ops/tasks", response_class=HTMLResponse)
def handler_tasks(request: Request, lang: str = LANG, _: object = Depends(allow(PUBLIC))):
    return _page(request, "tasks.html", lang, "tasks")


@router.get("/report", response_class=HTMLResponse)
def report(request: Request, lang: str = LANG, _: object = Depends(allow(PUBLIC))):
    return _page(request, "report.html", lang, "report", leaflet=True)


@router.get("/services", response_class=HTMLResponse)
def services_home(request: Request, lang: str = LANG, _: object = Depends(allow(PUBLIC))):
    """一网通办: my applications, services for my life events (一件事), ratings."""
    return _page(request, "services_home.html", lang, "services_home")


@router.get("/services/apply", response_class=HTMLResponse)
def services_apply(request: Request, lang: str = LANG, _: object = Depends(allow(PUBLIC))):
    """The apply wizard (?bundle= or ?item=; ?counter=1 for the window clerk's counter, 一窗受理)."""
    return _page(request, "services_apply.html", lang, "services_apply")


@router.get("/services/workbench", response_class=HTMLResponse)
def services_workbench(request: Request, lang: str = LANG, _: object = Depends(allow(PUBLIC))):
    """The approvals clerk's workbench: the department's parts, with lights, and the KPIs."""
    return _page(request, "services_workbench.html", lang, "services_workbench")


@router.get("/services/catalogue", response_class=HTMLResponse)
def services_catalogue(request: Request, lang: str = LANG, _: object = Depends(allow(PUBLIC))):
    """事项目录管理 (admins): items and 一件事 bundles, each edit a new version, their versions and what changed."""
    return _page(request, "services_catalogue.html", lang, "services_catalogue")


@router.get("/iot", response_class=HTMLResponse)
def iot_devices(request: Request, lang: str = LANG, _: object = Depends(allow(PUBLIC))):
    """物联感知: the devices on the map by type and state, their health by type and department, the list."""
    return _page(request, "iot_devices.html", lang, "iot_devices", leaflet=True)


@router.get("/iot/alarms", response_class=HTMLResponse)
def iot_alarms(request: Request, lang: str = LANG, _: object = Depends(allow(PUBLIC))):
    """告警: the open alarms, acknowledged and cleared by the roles the API allows."""
    return _page(request, "iot_alarms.html", lang, "iot_alarms")


@router.get("/iot/devices/{device_id}", response_class=HTMLResponse)
def iot_device(request: Request, device_id: str, lang: str = LANG, _: object = Depends(allow(PUBLIC))):
    """One device: its facts, latest values, trend per attribute, alarms and dead letters (all from the API)."""
    return _page(request, "iot_device.html", lang, "iot_device", leaflet=True, extra={"device_id": device_id[:64]})


@router.get("/licences/verify", response_class=HTMLResponse)
def licence_verifier(request: Request, lang: str = LANG, _: object = Depends(allow(PUBLIC))):
    """亮证 verification: the token (from the QR code's link fragment, or pasted) is checked in the browser."""
    return _page(request, "licences_verify.html", lang, "licences_verify")


# The verifier's offline shell: what the service worker keeps. Its version is a digest of these files, so a
# release that changes one of them installs a new worker with a fresh cache.
_SW_SHELL = ("static/licences_sw.js", "static/licences_verify.js", "static/ops.js", "static/app.css", "static/ops.css",
             "templates/licences_verify.html", "templates/base.html", "i18n.py")


@functools.cache
def _verifier_worker() -> str:
    digest = hashlib.sha256(b"".join((HERE / f).read_bytes() for f in _SW_SHELL)).hexdigest()[:16]
    return (HERE / "static" / "licences_sw.js").read_text(encoding="utf-8").replace("__VERSION__", digest)


@router.get("/licences/sw.js", include_in_schema=False)
def licence_verifier_worker(_: object = Depends(allow(PUBLIC))) -> Response:
    """The verifier's service worker (scope /licences/): the page opens and verifies offline once seen online."""
    return Response(_verifier_worker(), media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "no-cache"})


@router.get("/licences/mine", response_class=HTMLResponse)
def my_licences(request: Request, lang: str = LANG, _: object = Depends(allow(PUBLIC))):
    """我的证照: the signed-in holder's licences, their QR codes and who used them."""
    return _page(request, "licences_mine.html", lang, "licences_mine")


@router.get("/assets/{package}/{path:path}")
def asset(package: str, path: str, _: object = Depends(allow(PUBLIC))) -> FileResponse:
    base = ASSET_DIRS.get(package)
    if base is None:
        raise NotFound(Msg('no asset package {package!r}', package=package), fix=Msg('Use one of: {items}.', items=', '.join(ASSET_DIRS)))
    target = (base / path).resolve()
    if not target.is_file() or base.resolve() not in target.parents:
        raise NotFound(Msg('no asset {path!r} in {package}', path=path, package=package), fix=Msg('Check the asset path.'))
    return FileResponse(target, headers={"Cache-Control": "public, max-age=3600"})
