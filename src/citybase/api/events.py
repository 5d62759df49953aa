"""The event catalogue over HTTP: the AsyncAPI document of every subject the platform publishes."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from citybase import __version__
from citybase.kernel.catalogue import asyncapi
from citybase.security.deps import allow
from citybase.security.roles import PUBLIC

router = APIRouter(tags=["platform"])


@router.get("/events/asyncapi.json", summary="The event catalogue (AsyncAPI 3.0): every subject and its schema")
def event_catalogue(_: object = Depends(allow(PUBLIC))) -> dict:
    return asyncapi(version=__version__)
