"""JSON-LD @contexts for the twin: the NGSI-LD core context served from the package, every other context
kept in the database (hosted by us, or cached after its first use, or preloaded from a folder), and per
context one ``Resolver`` — the term ↔ IRI maps PyLD computes once — so that no request expands terms with
the JSON-LD algorithms on its hot path."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from pyld import jsonld

from citybase.twin.errors import BadRequestData, LdContextNotAvailable

CORE_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
# the versions of the core context a client may name: all answered by our v1.8 (their terms are a subset)
CORE_URLS = frozenset({CORE_URL, "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
                       *(f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.{n}.jsonld" for n in range(3, 10)),
                       "https://easy-global-market.github.io/ngsild-api-data-models/shared-jsonld-contexts/"
                       "ngsi-ld-core-context-v1.8.jsonld"})
# @contexts shipped in the package besides the core one, answered from it (never fetched): URL -> (local id, file)
CITY_URL = "https://citybase.dev/ns/citybase-city-v1.jsonld"
PACKAGED = {CITY_URL: ("citybase-city", "contexts/citybase-city.jsonld")}
NGSI = "https://uri.etsi.org/ngsi-ld/"
DEFAULT_VOCAB = NGSI + "default-context/"
JSONLD_REL = "http://www.w3.org/ns/json-ld#context"
LINK = re.compile(r'<([^>]*)>\s*((?:;\s*[\w-]+\s*=\s*"?[^";,]*"?\s*)*)')
FETCH_TIMEOUT = 5.0  # seconds a remote context may take on its first use


@cache
def core_document() -> dict[str, Any]:
    """The core context as served at CORE_URL."""
    text = resources.files("citybase.twin").joinpath("contexts/ngsi-ld-core-context-v1.8.jsonld").read_text("utf-8")
    return json.loads(text)


@cache
def packaged_document(url: str) -> dict[str, Any]:
    """A context shipped in the package (one of PACKAGED), as served at its URL."""
    text = resources.files("citybase.twin").joinpath(PACKAGED[url][1]).read_text("utf-8")
    return json.loads(text)


def packaged_url(local_id: str) -> str | None:
    """The URL of the packaged context with this local id (``citybase-city``) or URL, or None."""
    for url, (lid, _) in PACKAGED.items():
        if local_id in (lid, url):
            return url
    return None


def parse_link(header: str | None) -> str | None:
    """The @context URL of a ``Link`` header (rel json-ld#context), or None; several are an error."""
    if not header:
        return None
    found = []
    for m in LINK.finditer(header):
        params = dict((k.strip().lower(), v.strip().strip('"')) for k, _, v in
                      (p.partition("=") for p in m.group(2).split(";") if "=" in p))
        if params.get("rel") == JSONLD_REL:
            found.append(m.group(1).strip())
    if len(found) > 1:
        raise BadRequestData("the request has more than one JSON-LD Link header; send one @context link")
    return found[0] if found else None


def check_context(ctx: Any) -> None:
    """Refuse what cannot be a JSON-LD @context (a number, a boolean, a list holding one) before expanding."""
    items = ctx if isinstance(ctx, list) else [ctx]
    for item in items:
        if item is None:
            continue
        if not isinstance(item, str | dict):
            raise BadRequestData(f"@context may hold only URLs (strings) and objects, not {json.dumps(item)[:40]}")
        if isinstance(item, str) and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", item):
            raise BadRequestData(f"@context URL {item[:200]!r} is not an absolute URL")


@dataclass
class Resolver:
    """Terms and IRIs of one @context (the caller's, with the core context applied last)."""

    context: Any  # what the caller sent (URL, list or object), echoed in answers; None = core only
    terms: dict[str, dict[str, Any]]  # term -> PyLD's definition (@id, @type, @container, _prefix)
    vocab: str | None
    _inverse: dict[str, str] = field(default_factory=dict)
    _expanded: dict[str, str] = field(default_factory=dict)
    _compacted: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the shortest term for each IRI; a term of the caller's wins over the core's for the same IRI
        for term, d in sorted(self.terms.items(), key=lambda kv: (kv[1].get("protected", False), len(kv[0]), kv[0])):
            iri = d.get("@id")
            if isinstance(iri, str) and not iri.startswith("@") and iri not in self._inverse:
                self._inverse[iri] = term

    @property
    def link(self) -> str:
        """The URL to put in a ``Link`` header for answers in application/json."""
        if isinstance(self.context, str):
            return self.context
        return CORE_URL

    def expand(self, term: str) -> str:
        """The IRI of an attribute name or type: a term of the context, a compact IRI ``prefix:rest``, an
        absolute IRI, or else the default vocabulary (``@vocab``)."""
        got = self._expanded.get(term)
        if got is not None:
            return got
        d = self.terms.get(term)
        if d is not None and isinstance(d.get("@id"), str):
            iri = d["@id"]
        elif ":" in term:
            prefix, _, rest = term.partition(":")
            pd = self.terms.get(prefix)
            iri = pd["@id"] + rest if pd is not None and pd.get("@id") and not rest.startswith("//") else term
        else:
            iri = (self.vocab or DEFAULT_VOCAB) + term
        if len(self._expanded) < 50_000:
            self._expanded[term] = iri
        return iri

    def compact(self, iri: str) -> str:
        """The caller's name for an IRI: its term, a compact IRI with one of its prefixes, the name relative to
        ``@vocab``, or the IRI itself."""
        got = self._compacted.get(iri)
        if got is not None:
            return got
        out = self._inverse.get(iri)
        if out is None:
            vocab = self.vocab or DEFAULT_VOCAB
            rest = iri[len(vocab):] if iri.startswith(vocab) else ""
            if rest and "/" not in rest and rest not in self.terms:  # not when the name means another IRI
                out = rest
            else:
                best = ""
                for term, d in self.terms.items():
                    p = d.get("@id")
                    if d.get("_prefix") and isinstance(p, str) and iri.startswith(p) and len(p) > len(best) and iri != p:
                        best, out = p, f"{term}:{iri[len(p):]}"
                out = out or iri
        if len(self._compacted) < 50_000:
            self._compacted[iri] = out
        return out

    def is_vocab(self, term_iri: str) -> bool:
        """True when values of this attribute are IRIs to compact (``@type: @vocab`` in the context)."""
        d = self.terms.get(self.compact(term_iri))
        return bool(d and d.get("@type") == "@vocab")


Loader = Callable[[str], dict[str, Any] | None]  # URL -> stored document ({"@context": ...}) or None


class ContextStore:
    """Where @contexts come from: the core context, documents the database holds (``stored``), and on first
    use a fetch (kept through ``keep``); resolvers cached per context."""

    def __init__(self, stored: Loader, keep: Callable[[str, dict[str, Any]], None], *, fetch: bool = True,
                 max_resolvers: int = 512) -> None:
        self._stored, self._keep, self._fetch = stored, keep, fetch
        self._docs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._resolvers: OrderedDict[str, Resolver] = OrderedDict()
        self._max = max_resolvers
        self._lock = threading.Lock()
        self._processor = jsonld.JsonLdProcessor()
        self._hits: dict[str, int] = {}

    def hits(self, url: str) -> int:
        """How often requests of this process used the @context at ``url`` since it started."""
        return self._hits.get(url, 0)

    def _count(self, ctx: Any) -> None:
        for item in ctx if isinstance(ctx, list) else [ctx]:
            if isinstance(item, str) and item not in CORE_URLS and len(self._hits) < 100_000:
                self._hits[item] = self._hits.get(item, 0) + 1

    def forget(self, url: str | None = None) -> None:
        """Drop a document (all, when None) and every resolver: a context was deleted or replaced."""
        with self._lock:
            if url is None:
                self._docs.clear()
            else:
                self._docs.pop(url, None)
            self._resolvers.clear()

    def document(self, url: str) -> dict[str, Any]:
        """The document at ``url`` ({"@context": ...}); LdContextNotAvailable when it cannot be had,
        BadRequestData when what is there is no JSON-LD context."""
        if url in CORE_URLS:
            return core_document()
        if url in PACKAGED:
            return packaged_document(url)
        with self._lock:
            doc = self._docs.get(url)
        if doc is not None:
            return doc
        doc = self._stored(url)
        if doc is None:
            if not self._fetch:
                raise LdContextNotAvailable(f"the @context {url} is not preloaded and fetching is off; load it "
                                            "with `citybase twin contexts load DIR` or POST it to /ngsi-ld/v1/jsonldContexts")
            doc = self._download(url)
            self._keep(url, doc)
        with self._lock:
            self._docs[url] = doc
            if len(self._docs) > 1024:
                self._docs.popitem(last=False)
        return doc

    @staticmethod
    def _download(url: str) -> dict[str, Any]:
        if not url.startswith(("http://", "https://")):
            raise LdContextNotAvailable(f"the @context {url[:200]} is not an http(s) URL and is not known here")
        try:
            req = urllib.request.Request(url, headers={"Accept": "application/ld+json, application/json"})
            with urllib.request.urlopen(req, timeout=FETCH_TIMEOUT) as resp:  # noqa: S310 - http(s) checked above
                raw = resp.read(2_000_001)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise LdContextNotAvailable(f"the @context {url} could not be retrieved ({exc.__class__.__name__}: "
                                        f"{str(exc)[:120]}); preload it or fix the URL") from None
        if len(raw) > 2_000_000:
            raise BadRequestData(f"the @context {url} is larger than 2 MB")
        return validate_document(url, raw)

    def resolver(self, ctx: Any) -> Resolver:
        """The resolver of a caller's @context (None: the core context alone)."""
        key = json.dumps(ctx, sort_keys=True, ensure_ascii=False)
        with self._lock:
            self._count(ctx)
            r = self._resolvers.get(key)
            if r is not None:
                self._resolvers.move_to_end(key)
                return r
        check_context(ctx)
        local = ([] if ctx is None else ctx if isinstance(ctx, list) else [ctx]) + [CORE_URL]
        try:
            active = self._processor.process_context(self._processor._get_initial_context({}), local,
                                                     {"documentLoader": self._pyld_loader})
        except jsonld.JsonLdError as exc:
            cause = _root_cause(exc)
            if isinstance(cause, LdContextNotAvailable | BadRequestData):
                raise cause from None
            raise BadRequestData(f"the @context is not valid JSON-LD: {_describe(exc)}") from None
        r = Resolver(context=ctx, terms=dict(active.get("mappings", {})), vocab=active.get("@vocab"))
        with self._lock:
            self._resolvers[key] = r
            if len(self._resolvers) > self._max:
                self._resolvers.popitem(last=False)
        return r

    def _pyld_loader(self, url: str, options: dict | None = None) -> dict[str, Any]:
        return {"contextUrl": None, "documentUrl": url, "document": self.document(url)}


def validate_document(url: str, raw: bytes | str) -> dict[str, Any]:
    """A context document from its bytes: JSON with an ``@context`` member, else BadRequestData."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequestData(f"the @context at {url} is not JSON") from None
    if not isinstance(doc, dict) or "@context" not in doc:
        raise BadRequestData(f"the document at {url} has no @context member")
    check_context(doc["@context"])
    return doc


def _root_cause(exc: BaseException) -> BaseException:
    seen = 0
    while seen < 20:
        nxt = getattr(exc, "cause", None) or exc.__cause__ or exc.__context__
        if nxt is None:
            return exc
        exc, seen = nxt, seen + 1
        if isinstance(exc, LdContextNotAvailable | BadRequestData):
            return exc
    return exc


def _describe(exc: jsonld.JsonLdError) -> str:
    msg = str(getattr(exc, "message", "") or exc).splitlines()[0]
    code = getattr(exc, "code", None)
    return f"{msg} ({code})" if code else msg
