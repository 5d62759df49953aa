"""The language of each request: ``?lang=`` first, then ``Accept-Language``, else Chinese (core.i18n)."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from citybase.core.i18n import _lang, choose_lang


class LanguageMiddleware:
    """Sets the current language for everything the request runs (messages render in it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("lang", [None])[0]
        header = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"accept-language"), None)
        token = _lang.set(choose_lang(query, header))
        try:
            await self.app(scope, receive, send)
        finally:
            _lang.reset(token)
