"""Pages: the district map with registry counts (Chinese first, English with ?lang=en)."""

from __future__ import annotations

from pathlib import Path

import xstatic.pkg.leaflet as xleaflet
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from citybase.core.errors import NotFound
from citybase.security.deps import allow
from citybase.security.roles import PUBLIC
from citybase.web.i18n import LANGS, texts

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)
ASSET_DIRS = {"leaflet": Path(xleaflet.BASE_DIR), "citybase": HERE / "static"}


@router.get("/", response_class=HTMLResponse)
def index(request: Request, lang: str = Query("zh", pattern="^(zh|en)$"), _: object = Depends(allow(PUBLIC))):
    return templates.TemplateResponse(request, "index.html", {"t": texts(lang), "lang": lang, "langs": LANGS})


@router.get("/assets/{package}/{path:path}")
def asset(package: str, path: str, _: object = Depends(allow(PUBLIC))) -> FileResponse:
    base = ASSET_DIRS.get(package)
    if base is None:
        raise NotFound(f"no asset package {package!r}", fix=f"Use one of: {', '.join(ASSET_DIRS)}.")
    target = (base / path).resolve()
    if not target.is_file() or base.resolve() not in target.parents:
        raise NotFound(f"no asset {path!r} in {package}", fix="Check the asset path.")
    return FileResponse(target, headers={"Cache-Control": "public, max-age=3600"})
