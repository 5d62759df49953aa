"""Messages in the user's language from one catalogue: Chinese by default, English on request.

Code writes a message once, in English, as a template with named fields: ``Msg("no incident #{id}", id=5)``.
The template is the key of ``core/locale/zh/LC_MESSAGES/citybase.po`` (a gettext catalogue read with
Babel); the message is rendered when it is shown, in the language the caller asked for. A template
missing from the catalogue is shown in English (and a test makes sure none is missing)."""

from __future__ import annotations

import contextvars
from functools import cache
from pathlib import Path
from typing import Any

from babel.core import negotiate_locale
from babel.messages.pofile import read_po

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"
CATALOGUE = Path(__file__).parent / "locale" / "{lang}" / "LC_MESSAGES" / "citybase.po"

_lang: contextvars.ContextVar[str] = contextvars.ContextVar("citybase_lang", default=DEFAULT_LANG)


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The translations of one language (template -> translated template); empty for English."""
    path = Path(str(CATALOGUE).format(lang=lang))
    if lang == "en" or not path.exists():
        return {}
    with path.open("rb") as f:
        cat = read_po(f, locale=lang)
    return {str(m.id): str(m.string) for m in cat if m.id and m.string and not m.fuzzy}


def translate(template: str, lang: str | None = None) -> str:
    """The template in ``lang`` (the current request's language by default), or as written if untranslated."""
    return catalogue(lang or _lang.get()).get(template, template)


class Msg(str):
    """A message in English (it *is* that string, so code and logs may treat it as text) that remembers its
    template and fields, to be rendered in the reader's language where it is shown (``render``)."""

    template: str
    params: dict[str, Any]

    def __new__(cls, template: str, **params: Any) -> Msg:
        try:
            english = template.format(**params)
        except (KeyError, IndexError, ValueError):
            english = template
        self = super().__new__(cls, english)
        self.template = template
        self.params = params
        return self

    def render(self, lang: str | None = None) -> str:
        """The message in ``lang`` (default: the current language), fields filled in."""
        text = translate(self.template, lang)
        params = {k: (v.render(lang) if isinstance(v, Msg) else v) for k, v in self.params.items()}
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):  # a broken translation must not hide the message
            return str.__str__(self)

    def __repr__(self) -> str:
        return f"Msg({self.template!r}, **{self.params!r})"

    def __reduce__(self):  # pickling keeps the template (e.g. across processes)
        return (_rebuild, (self.template, self.params))


def _rebuild(template: str, params: dict[str, Any]) -> Msg:
    return Msg(template, **params)


def to_json(value: str | Msg) -> Any:
    """A message as JSON (template and fields, nested messages too), to store and render later; a str stays."""
    if not isinstance(value, Msg):
        return str(value)
    return {"msg": value.template, "params": {k: to_json(v) if isinstance(v, Msg) else v
                                              for k, v in value.params.items()}}


def from_json(value: Any) -> str | Msg:
    """The message ``to_json`` stored (a plain string is returned as it is)."""
    if isinstance(value, dict) and isinstance(value.get("msg"), str):
        params = value.get("params") if isinstance(value.get("params"), dict) else {}
        return Msg(value["msg"], **{k: from_json(v) for k, v in params.items()})
    return value if isinstance(value, str) else str(value)


def render(value: str | Msg | None, lang: str | None = None) -> str | None:
    """A plain string for a message or a string (None stays None)."""
    if value is None:
        return None
    return value.render(lang) if isinstance(value, Msg) else str(value)


def choose_lang(query_lang: str | None, accept_language: str | None) -> str:
    """The language of a request: ``?lang=`` wins, then the Accept-Language header, then Chinese."""
    if query_lang in LANGS:
        return query_lang  # type: ignore[return-value]
    if accept_language:
        prefs = []
        for part in accept_language.split(","):
            tag, _, q = part.strip().partition(";q=")
            try:
                weight = float(q) if q else 1.0
            except ValueError:
                weight = 0.0
            if tag:
                prefs.append((weight, tag.strip().replace("-", "_")))
        ordered = [t for _w, t in sorted(prefs, key=lambda p: -p[0]) if _w > 0]
        found = negotiate_locale(ordered, ["zh", "en"], sep="_")
        if found:
            return found.split("_")[0]
        for tag in ordered:
            if tag == "*":
                return DEFAULT_LANG
    return DEFAULT_LANG


def set_lang(lang: str) -> contextvars.Token[str]:
    """Make ``lang`` the current language (per request or task); returns the token to reset it."""
    return _lang.set(lang if lang in LANGS else DEFAULT_LANG)


def current_lang() -> str:
    """The current request's language."""
    return _lang.get()
