"""The NGSI-LD query languages of ETSI GS CIM 009 v1.8: ``q`` (§4.9), entity type selection (§4.17) and
``scopeQ`` (§4.19). A query is parsed once into a small tree, which is then either evaluated in Python on an
entity (:func:`matches`, for subscriptions) or compiled into one SQL ``WHERE`` clause (:func:`to_sql`) for
SQLite or PostgreSQL. The three back ends implement one semantics, written down here because the
specification leaves parts of it open and every back end must agree on them:

* A term looks at the *elements* its attribute path reaches: every instance of the attribute (any
  datasetId), then, for ``attr.sub``, each instance's sub-attribute. Navigation follows SQL/JSON "lax" mode,
  which PostgreSQL's jsonpath implements and the Python and SQLite evaluators copy: a member step into an
  array steps into each of its elements (one level).
* An element's *target* depends on its type: ``value`` (Property, GeoProperty), ``valueList``
  (ListProperty), ``json`` (JsonProperty), ``object`` (Relationship), ``vocab`` (VocabProperty, compared with
  the query's strings expanded) and the values of ``languageMap`` (LanguageProperty; ``name[en]`` picks one
  language, ``name[*]`` or plain ``name`` any). ``attr.observedAt`` (and the other core members) target the
  member itself. A trailing ``[key.sub]`` walks into the target (``*`` is any member). A target that is an
  array is compared element by element.
* ``==``, ``>``, ``>=``, ``<``, ``<=``, ranges, value lists and ``~=`` match an element when any of its target
  items matches; the entity matches when any element does. Values only meet values of their own type
  (number, string, boolean, date/time), so ``speed=="80"`` never matches a number and nothing errors.
* ``!=`` is the negation of ``==`` per element (§4.9: different types are unequal): the element has the
  target and none of its items is equal, in the range or in the list. ``!~=`` asks for an element with string
  items none of which matches. A Relationship only takes ``==`` and ``!=``.
* Dates and times compare in time order: a dateTime literal (UTC when it has no offset) meets stored
  dateTimes with ``Z`` or an offset (a stored dateTime without one is not comparable); a date meets stored
  dates and the UTC calendar day of stored dateTimes (``observedAt==2026-01-01`` is "on that day"); a time
  meets stored times (``Z`` ignored). At most microseconds count.
* Regular expressions match anywhere in the string (``re.search``, PostgreSQL ``~``); anchor with ``^``/``$``.
  Python's ``re`` validates the pattern, so keep to the POSIX extended syntax the two engines share.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Any, NoReturn

from sqlalchemy import ColumnElement, and_, case, cast, func, literal, literal_column, or_, select, true
from sqlalchemy.dialects.postgresql import JSONB, JSONPATH
from sqlalchemy.sql.selectable import Exists

Expand = Callable[[str], str]


class QSyntaxError(ValueError):
    """A query that does not follow the grammar: ``message`` says what was expected where (and includes the
    0-based ``position`` in the query text), ready for an NGSI-LD BadRequestData."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


# --- Dates and times ---------------------------------------------------------------------------------------
# One table of shapes shared by the Python evaluator, the SQLite function and the PostgreSQL jsonpath, so a
# stored string is a dateTime, a date or a time for all three alike.

_D = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
_T = "[0-9]{2}:[0-9]{2}:[0-9]{2}"
_F = "[.][0-9]{1,6}"
_OFFSET = "[+-][0-9]{2}:[0-9]{2}"
_STORED_DATETIME = re.compile(rf"({_D})T({_T})(?:[.]([0-9]{{1,6}}))?(Z|{_OFFSET})")
_STORED_DATE = re.compile(_D)
_STORED_TIME = re.compile(rf"({_T})(?:[.]([0-9]{{1,6}}))?Z?")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _micros(fraction: str | None) -> int:
    return int((fraction or "0").ljust(6, "0")[:6])


def _clock(hms: str, fraction: str | None) -> time:
    h, m, s = (int(p) for p in hms.split(":"))
    return time(h, m, s, _micros(fraction))


def _time_key(t: time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * 1_000_000 + t.microsecond


def temporal_key(kind: str, text: Any) -> int | None:
    """The order key of a stored string read as ``kind`` ("dateTime": microseconds since the epoch; "date":
    the day number; "time": microseconds since midnight), or None when it is not one. Registered on SQLite
    connections as ``ngsild_temporal`` so SQL and Python read dates with the very same code."""
    if not isinstance(text, str):
        return None
    try:
        if kind == "dateTime":
            m = _STORED_DATETIME.fullmatch(text)
            if not m:
                return None
            ymd, hms, fraction, zone = m.groups()
            tz = UTC if zone == "Z" else timezone((-1 if zone[0] == "-" else 1)
                                                  * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
            moment = datetime.combine(date.fromisoformat(ymd), _clock(hms, fraction), tz)
            return (moment - _EPOCH) // _MICRO
        if kind == "date":
            return date.fromisoformat(text).toordinal() if _STORED_DATE.fullmatch(text) else None
        m = _STORED_TIME.fullmatch(text)
        if not m:
            return None
        return _time_key(_clock(m.group(1), m.group(2)))
    except ValueError:  # the right shape, but no such day or hour (2026-02-30, 25:00:00)
        return None


def _pattern(source: str) -> str:
    return json.dumps(f"^{source}$")


# jsonpath templates for the stored shapes; PostgreSQL's .datetime() does not read a trailing "Z" by itself.
_PG_DATETIME = (  # (shape, .datetime() call, True when it reads an offset-aware timestamp)
    (_pattern(f"{_D}T{_T}Z"), '.datetime("YYYY-MM-DD\\"T\\"HH24:MI:SS\\"Z\\"")', False),
    (_pattern(f"{_D}T{_T}{_F}Z"), '.datetime("YYYY-MM-DD\\"T\\"HH24:MI:SS.US\\"Z\\"")', False),
    (_pattern(f"{_D}T{_T}({_F})?{_OFFSET}"), ".datetime()", True),
)
_PG_TIME = (
    (_pattern(f"{_T}({_F})?"), ".datetime()"),
    (_pattern(f"{_T}Z"), '.datetime("HH24:MI:SS\\"Z\\"")'),
    (_pattern(f"{_T}{_F}Z"), '.datetime("HH24:MI:SS.US\\"Z\\"")'),
)
TEMPORAL = ("dateTime", "date", "time")


# --- Conditions on one target item ---------------------------------------------------------------------------

_PY_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq, ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


class _Vars:
    """The values a jsonpath refers to as ``$v0``, ``$v1``…, passed as one JSON bind parameter (``vars``)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any) -> str:
        name = f"v{len(self.values)}"
        self.values[name] = value
        return "$" + name


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


@dataclass(frozen=True)
class _Cmp:
    """``item <op> value`` for items of ``kind``; items of another type never match. Temporal values are
    held as their order key, with ``iso`` the UTC text PostgreSQL parses."""

    kind: str
    op: str
    value: Any
    iso: str = ""

    def test(self, x: Any) -> bool:
        if self.kind == "number":
            ok = _is_number(x)
        elif self.kind == "string":
            ok = isinstance(x, str)
        elif self.kind == "boolean":
            ok = isinstance(x, bool)
        else:
            x = temporal_key(self.kind, x)
            ok = x is not None
        return ok and _PY_OPS[self.op](x, self.value)

    def jsonpath(self, v: _Vars) -> str:
        op = self.op
        if self.kind in ("number", "string", "boolean"):
            return f'(@.type() == "{self.kind}" && @ {op} {v.add(self.value)})'
        if self.kind == "date":
            return (f'(@.type() == "string" && @ like_regex {_pattern(_D)} '
                    f"&& @.datetime() {op} {v.add(self.iso)}.datetime())")
        if self.kind == "time":
            ref = v.add(self.iso)
            return ('(@.type() == "string" && ('
                    + " || ".join(f"(@ like_regex {shape} && @{read} {op} {ref}.datetime())" for shape, read in _PG_TIME)
                    + "))")
        naive, aware = v.add(self.iso), v.add(self.iso + "+00:00")
        return ('(@.type() == "string" && ('
                + " || ".join(f"(@ like_regex {shape} && @{read} {op} {aware if tz else naive}.datetime())"
                              for shape, read, tz in _PG_DATETIME)
                + "))")

    def sqlite(self, type_: Any, value: Any) -> ColumnElement[bool]:
        compare = _PY_OPS[self.op]
        if self.kind == "number":  # SQLite integers stop at 64 bits; JSON reads bigger ones as reals too
            bound = self.value if -(2**63) <= self.value < 2**63 else float(self.value)
            return and_(type_.in_(("integer", "real")), compare(value, bound))
        if self.kind == "string":
            return and_(type_ == "text", compare(value, self.value))
        if self.kind == "boolean":
            return type_ == ("true" if self.value else "false")
        return and_(type_ == "text", compare(func.ngsild_temporal(self.kind, value), self.value))

    def expanded(self, expand: Expand) -> _Cmp:
        return _Cmp(self.kind, self.op, expand(self.value)) if self.kind == "string" else self


@dataclass(frozen=True)
class _Any:
    """Any of the conditions (a value list; a date against a date or against a dateTime's day)."""

    parts: tuple[_Cond, ...]

    def test(self, x: Any) -> bool:
        return any(p.test(x) for p in self.parts)

    def jsonpath(self, v: _Vars) -> str:
        return "(" + " || ".join(p.jsonpath(v) for p in self.parts) + ")"

    def sqlite(self, type_: Any, value: Any) -> ColumnElement[bool]:
        return or_(*(p.sqlite(type_, value) for p in self.parts))

    def expanded(self, expand: Expand) -> _Any:
        return _Any(tuple(p.expanded(expand) for p in self.parts))


@dataclass(frozen=True)
class _All:
    """All of the conditions (a range's two ends, a day's two bounds)."""

    parts: tuple[_Cond, ...]

    def test(self, x: Any) -> bool:
        return all(p.test(x) for p in self.parts)

    def jsonpath(self, v: _Vars) -> str:
        return "(" + " && ".join(p.jsonpath(v) for p in self.parts) + ")"

    def sqlite(self, type_: Any, value: Any) -> ColumnElement[bool]:
        return and_(*(p.sqlite(type_, value) for p in self.parts))

    def expanded(self, expand: Expand) -> _All:
        return _All(tuple(p.expanded(expand) for p in self.parts))


_Cond = _Cmp | _Any | _All


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _sqlite_regexp(pattern: Any, value: Any) -> bool:
    """SQLite's ``regexp(pattern, value)``, behind its REGEXP operator; patterns are compiled once."""
    return isinstance(value, str) and isinstance(pattern, str) and _compiled(pattern).search(value) is not None


@dataclass(frozen=True)
class _Regex:
    """A string item the pattern finds a match in (``~=``); for ``!~=`` see the plan's mode."""

    source: str
    compiled: re.Pattern[str]

    def test(self, x: Any) -> bool:
        return isinstance(x, str) and self.compiled.search(x) is not None

    def sqlite(self, type_: Any, value: Any) -> ColumnElement[bool]:
        return and_(type_ == "text", func.regexp(self.source, value))


@dataclass(frozen=True)
class _IsString:
    """Any string item: what ``!~=`` needs before a non-match counts."""

    def test(self, x: Any) -> bool:
        return isinstance(x, str)

    def sqlite(self, type_: Any, value: Any) -> ColumnElement[bool]:
        return type_ == "text"


_IS_STRING = _IsString()
_ItemTest = _Cond | _Regex | _IsString


# --- The tree ------------------------------------------------------------------------------------------------

CORE_MEMBERS = frozenset({"observedAt", "modifiedAt", "createdAt", "unitCode", "datasetId"})


@dataclass(frozen=True)
class AttrPath:
    """``attr.sub.sub[key.key]``: ``attr`` and ``subattrs`` expanded; ``core`` the last segment when it is a
    core member (observedAt…); ``keys`` the compound-value path inside the brackets, None without brackets."""

    attr: str
    subattrs: tuple[str, ...] = ()
    core: str | None = None
    keys: tuple[str, ...] | None = None
    text: str = ""


@dataclass(frozen=True)
class Atom:
    """One literal. ``kind`` is number, string, boolean, dateTime, date or time; ``form`` tells a quoted
    string from an unquoted URI or term (which only take ``==``/``!=``); temporal values are datetime (UTC),
    date or time objects."""

    kind: str
    value: Any
    text: str
    form: str = "literal"


@dataclass(frozen=True)
class Range:
    """``low..high``, both ends included, of one kind."""

    low: Atom
    high: Atom


@dataclass(frozen=True)
class ValueList:
    """``a,b,c``: ``==`` any of them, ``!=`` none of them."""

    atoms: tuple[Atom, ...]


@dataclass(frozen=True)
class Pattern:
    """The regular expression of ``~=`` / ``!~=``, compiled once at parse time."""

    source: str
    compiled: re.Pattern[str] = field(compare=False, repr=False)


@dataclass(frozen=True)
class _Spec:
    """How one family of element types is tested: ``types`` the element types (None: any element), ``seed``
    the members from the element to the target (``*`` every member), ``test`` the condition on items."""

    types: tuple[str, ...] | None
    seed: tuple[str, ...]
    test: _ItemTest | None


@dataclass(frozen=True)
class _Plan:
    """What a term asks of each element. ``mode``: "exists" (the target exists), "some" (an item passes),
    "none" (the target exists and no item passes: ``!=``), "nomatch" (string items, none matching:
    ``!~=``). No specs: the term only asks that the attribute path reaches something."""

    mode: str
    specs: tuple[_Spec, ...]


@dataclass(frozen=True)
class Term:
    """A query term: ``path`` alone (``op`` and ``value`` None: existence), or ``path op value``; ``plan`` is
    what :func:`parse_q` decided to test, once."""

    path: AttrPath
    op: str | None
    value: Atom | Range | ValueList | Pattern | None
    plan: _Plan = field(compare=False, repr=False)


@dataclass(frozen=True)
class And:
    children: tuple[QNode, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[QNode, ...]


@dataclass(frozen=True)
class TypeIs:
    """The entity has this (expanded) type."""

    iri: str


@dataclass(frozen=True)
class ScopeIs:
    """The entity has a scope equal to ``text`` or, with ``+``/``#`` wildcards, one ``regex`` matches."""

    text: str
    regex: re.Pattern[str] | None = field(default=None, compare=False)


QNode = And | Or | Term | TypeIs | ScopeIs

# What a comparison looks at, by the element's type (CIM 009 §4.9).
_TARGETS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("Property", "GeoProperty"), "value"),
    (("ListProperty",), "valueList"),
    (("JsonProperty",), "json"),
    (("Relationship",), "object"),
    (("VocabProperty",), "vocab"),
    (("LanguageProperty",), "languageMap"),
)


def _atom_test(op: str, a: Atom) -> _Cond:
    if a.kind == "dateTime":
        return _Cmp("dateTime", op, (a.value - _EPOCH) // _MICRO,
                    a.value.replace(tzinfo=None).isoformat(timespec="microseconds"))
    if a.kind == "date":
        # A date also meets a dateTime, by the dateTime's UTC day: rewritten on the day's bounds.
        start = datetime.combine(a.value, time(), UTC)
        lo, hi = (Atom("dateTime", start + timedelta(days=n), "") for n in (0, 1))
        by_day = {"==": _All((_atom_test(">=", lo), _atom_test("<", hi))), ">": _atom_test(">=", hi),
                  ">=": _atom_test(">=", lo), "<": _atom_test("<", lo), "<=": _atom_test("<", hi)}[op]
        return _Any((_Cmp("date", op, a.value.toordinal(), a.value.isoformat()), by_day))
    if a.kind == "time":
        return _Cmp("time", op, _time_key(a.value), a.value.isoformat(timespec="microseconds"))
    return _Cmp(a.kind, op, a.value)


def _takes_strings(test: _ItemTest | None) -> bool:
    if isinstance(test, _Cmp):
        return test.kind not in ("number", "boolean")
    if isinstance(test, _Any | _All):
        return any(_takes_strings(p) for p in test.parts)
    return True


def _plan(path: AttrPath, op: str | None, value: Atom | Range | ValueList | Pattern | None,
          expand: Expand) -> _Plan:
    """Decide, once per parse, what the term tests on which element types."""
    test: _ItemTest | None
    if op is None:
        mode, test = "exists", None
    elif isinstance(value, Pattern):
        mode, test = ("some" if op == "~=" else "nomatch"), _Regex(value.source, value.compiled)
    else:
        base = "==" if op == "!=" else op
        if isinstance(value, Range):
            test = _All((_atom_test(">=", value.low), _atom_test("<=", value.high)))
        elif isinstance(value, ValueList):
            test = _Any(tuple(_atom_test("==", a) for a in value.atoms))
        else:
            assert isinstance(value, Atom)
            test = _atom_test(base, value)
        mode = "none" if op == "!=" else "some"
    if op is None and path.keys is None and path.core is None:
        return _Plan("exists", ())
    if path.core is not None:
        return _Plan(mode, (_Spec(None, (path.core,), test),))
    specs = []
    for types, member in _TARGETS:
        if member == "object" and op not in (None, "==", "!="):
            continue  # a Relationship only takes == and != (§4.9)
        # Objects and vocabs are URIs, language maps hold strings: no member path reaches into a URI, and a
        # number or a boolean never meets a string, so those families are left out rather than tested.
        if member in ("object", "vocab") and path.keys is not None:
            continue
        if mode == "some" and member in ("object", "vocab", "languageMap") and not _takes_strings(test):
            continue
        keys = path.keys if path.keys is not None else ("*",) if member == "languageMap" else ()
        seed = (member, *keys)
        t = test.expanded(expand) if member == "vocab" and isinstance(test, _Cmp | _Any | _All) else test
        specs.append(_Spec(types, seed, t))
    return _Plan(mode, tuple(specs))


# --- The q parser --------------------------------------------------------------------------------------------

_NAME = re.compile(r"[^\W\d]\w*(?::[^\W\d]\w*)?")  # AttrName, or a compact IRI prefix:name
_KEY = re.compile(r"[^\s.\[\]=!<>~;|(),\"{}]+|\*")  # a JSON member name in [...]
_OPERATORS = ("!~=", "==", "!=", "~=", ">=", "<=", ">", "<")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LIT_DATETIME = re.compile(rf"({_D})T({_T})(?:\.([0-9]+))?(Z|{_OFFSET})?")
_LIT_TIME = re.compile(rf"({_T})(?:\.([0-9]+))?Z?")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
_TERM = re.compile(r"[^\W\d]\w*")
_VALUE_END = frozenset(';|),"') | frozenset(" \t\r\n")
_WHITESPACE = " \t\r\n"


def _describe(text: str, i: int) -> str:
    return "the end of the query" if i >= len(text) else repr(text[i])


class _QParser:
    """Recursive descent over the text: ``|`` of ``;`` of terms or parenthesised groups (AND binds tighter)."""

    def __init__(self, text: str, expand: Expand) -> None:
        self.s = text
        self.i = 0
        self.expand = expand

    def fail(self, message: str, at: int | None = None) -> NoReturn:
        raise QSyntaxError(message, self.i if at is None else at)

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in _WHITESPACE:
            self.i += 1

    def peek(self, token: str) -> bool:
        self.ws()
        return self.s.startswith(token, self.i)

    def query(self) -> QNode:
        if not self.s.strip():
            self.fail("the query is empty: expected an attribute name or '('")
        if "\x00" in self.s:  # nor could a JSON document in PostgreSQL hold one
            at = self.s.index("\x00")
            self.fail(f"the query contains a NUL character at position {at}", at)
        node = self.disjunction()
        self.ws()
        if self.i < len(self.s):
            if self.s[self.i] == ")":
                self.fail(f"unexpected ')' at position {self.i}: there is no '(' to close")
            self.fail(f"expected ';', '|' or the end of the query at position {self.i}, "
                      f"found {_describe(self.s, self.i)}")
        return node

    def disjunction(self) -> QNode:
        parts = [self.conjunction()]
        while self.peek("|"):
            self.i += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def conjunction(self) -> QNode:
        parts = [self.operand()]
        while self.peek(";"):
            self.i += 1
            parts.append(self.operand())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def operand(self) -> QNode:
        if self.peek("("):
            opened = self.i
            self.i += 1
            node = self.disjunction()
            if not self.peek(")"):
                self.fail(f"expected ')' at position {self.i} to close the '(' at position {opened}, "
                          f"found {_describe(self.s, self.i)}")
            self.i += 1
            return node
        return self.term()

    def term(self) -> Term:
        path = self.path()
        self.ws()
        at = self.i
        op = next((o for o in _OPERATORS if self.s.startswith(o, at)), None)
        if op is None:
            if at < len(self.s) and self.s[at] == "=":
                self.fail(f"'=' at position {at} is not an operator: write '==' to compare")
            if at < len(self.s) and self.s[at] not in ";|)":
                self.fail(f"expected an operator (==, !=, >, >=, <, <=, ~=, !~=), ';', '|' or ')' after "
                          f"'{path.text}' at position {at}, found {_describe(self.s, at)}")
            return Term(path, None, None, _plan(path, None, None, self.expand))
        self.i += len(op)
        value: Atom | Range | ValueList | Pattern = self.pattern(op) if op in ("~=", "!~=") else self.values(op, at)
        return Term(path, op, value, _plan(path, op, value, self.expand))

    def path(self) -> AttrPath:
        self.ws()
        start = self.i
        names: list[str] = []
        while True:
            m = _NAME.match(self.s, self.i)
            if not m:
                what = "an attribute name" if not names else "a sub-attribute name after '.'"
                self.fail(f"expected {what} at position {self.i}, found {_describe(self.s, self.i)}")
            if len(names) > 1 and names[-1] in CORE_MEMBERS:
                self.fail(f"'{names[-1]}' is a core member: it has no sub-attribute '{m.group()}' "
                          f"(position {self.i})")
            names.append(m.group())
            self.i = m.end()
            if not self.s.startswith(".", self.i):
                break
            self.i += 1
        keys: tuple[str, ...] | None = None
        if self.s.startswith("{", self.i):
            self.fail(f"linked-entity queries ('{names[0]}{{...}}', position {self.i}) are not supported")
        if self.s.startswith("[", self.i):
            if len(names) > 1 and names[-1] in CORE_MEMBERS:
                self.fail(f"'{names[-1]}' is a core member: it has no compound value to index at position {self.i}")
            opened = self.i
            self.i += 1
            found: list[str] = []
            while True:
                m = _KEY.match(self.s, self.i)
                if not m:
                    self.fail(f"expected a member name or '*' inside '[...]' at position {self.i}, "
                              f"found {_describe(self.s, self.i)}")
                found.append(m.group())
                self.i = m.end()
                if not self.s.startswith(".", self.i):
                    break
                self.i += 1
            if not self.s.startswith("]", self.i):
                self.fail(f"expected ']' at position {self.i} to close the '[' at position {opened}, "
                          f"found {_describe(self.s, self.i)}")
            self.i += 1
            if self.i < len(self.s) and self.s[self.i] in ".[":
                self.fail(f"the compound value path '[...]' must end the attribute path (position {self.i})")
            keys = tuple(found)
        core = names[-1] if len(names) > 1 and names[-1] in CORE_MEMBERS else None
        subs = names[1:-1] if core else names[1:]
        return AttrPath(self.expand(names[0]), tuple(self.expand(n) for n in subs), core, keys,
                        self.s[start:self.i])

    def values(self, op: str, op_at: int) -> Atom | Range | ValueList:
        self.ws()
        first_at = self.i
        first = self.atom(op)
        if self.peek(".."):
            self.i += 2
            self.ws()
            second_at = self.i
            second = self.atom(op)
            if op not in ("==", "!="):
                self.fail(f"a range can only follow '==' or '!=', not '{op}' at position {op_at}", op_at)
            for a, at in ((first, first_at), (second, second_at)):
                if a.kind == "boolean" or a.form in ("uri", "term"):
                    self.fail(f"a range needs numbers, quoted strings or dates/times: {a.text} at position "
                              f"{at} is not one", at)
            if first.kind != second.kind:
                self.fail(f"both ends of a range must be of the same type: {first.text} is a {first.kind}, "
                          f"{second.text} at position {second_at} is a {second.kind}", second_at)
            return Range(first, second)
        if self.peek(","):
            atoms = [first]
            while self.peek(","):
                self.i += 1
                atoms.append(self.atom(op))
            if op not in ("==", "!="):
                self.fail(f"a list of values can only follow '==' or '!=', not '{op}' at position {op_at}", op_at)
            return ValueList(tuple(atoms))
        if op not in ("==", "!=") and (first.kind == "boolean" or first.form in ("uri", "term")):
            self.fail(f"'{op}' at position {op_at} orders numbers, quoted strings and dates/times: "
                      f"{first.text} can only be compared with '==' or '!='", op_at)
        return first

    def atom(self, op: str) -> Atom:
        self.ws()
        start = self.i
        if self.s.startswith('"', start):
            j = start + 1
            while j < len(self.s) and self.s[j] != '"':
                j += 2 if self.s[j] == "\\" else 1
            if j >= len(self.s):
                self.fail(f"unterminated string starting at position {start}: expected a closing '\"'")
            raw = self.s[start:j + 1]
            try:
                text = json.loads(raw)
            except json.JSONDecodeError as exc:
                self.i = start + exc.pos
                self.fail(f"invalid escape in the string starting at position {start}: {exc.msg}")
            if "\x00" in text:
                self.fail(f"the string starting at position {start} contains a NUL character, "
                          "which no stored value can hold", start)
            self.i = j + 1
            return Atom("string", text, raw, "quoted")
        j = start
        while j < len(self.s) and self.s[j] not in _VALUE_END and not self.s.startswith("..", j):
            j += 1
        token = self.s[start:j]
        if not token:
            self.fail(f"expected a value after '{op}' at position {start} (a number, a quoted string, true, "
                      f"false, a date/time or a URI), found {_describe(self.s, start)}")
        self.i = j
        return self.classify(token, start)

    def classify(self, token: str, start: int) -> Atom:
        if _NUMBER.fullmatch(token):
            number = float(token) if any(c in token for c in ".eE") else int(token)
            return Atom("number", number, token)
        if token in ("true", "false"):
            return Atom("boolean", token == "true", token)
        try:
            if m := _LIT_DATETIME.fullmatch(token):
                ymd, hms, fraction, zone = m.groups()
                naive = datetime.combine(date.fromisoformat(ymd), _clock(hms, fraction))
                aware = (naive.replace(tzinfo=UTC) if zone in (None, "Z")
                         else datetime.fromisoformat(f"{naive.isoformat()}{zone}"))
                return Atom("dateTime", aware.astimezone(UTC), token)
            if _STORED_DATE.fullmatch(token):
                d = date.fromisoformat(token)
                if d == date.max:
                    raise ValueError
                return Atom("date", d, token)
            if m := _LIT_TIME.fullmatch(token):
                return Atom("time", _clock(m.group(1), m.group(2)), token)
        except ValueError:
            self.fail(f"{token} at position {start} is not a valid date or time", start)
        if _URI.fullmatch(token):
            return Atom("string", token, token, "uri")
        if _TERM.fullmatch(token):
            return Atom("string", token, token, "term")
        self.fail(f"expected a value at position {start} (a number, a quoted string, true, false, a date/time "
                  f"or a URI), found '{token}'", start)

    def pattern(self, op: str) -> Pattern:
        self.ws()
        start = self.i
        if self.s.startswith('"', start):
            source = self.atom(op).value
        else:
            depth, j, in_class = 0, start, False
            while j < len(self.s):
                c = self.s[j]
                if c == "\\":
                    j += 2
                    continue
                if in_class:
                    in_class = c != "]"
                elif c == "[":
                    in_class = True
                    j += 2 if self.s.startswith("]", j + 1) else 1  # a leading ']' is a literal
                    continue
                elif c == "(":
                    depth += 1
                elif c == ")":
                    if depth == 0:
                        break
                    depth -= 1
                elif c in ";|" and depth == 0:
                    break
                j += 1
            source = self.s[start:j]
            self.i = j
        if not source:
            self.fail(f"expected a regular expression after '{op}' at position {start}, "
                      f"found {_describe(self.s, start)}")
        try:
            return Pattern(source, _compiled(source))
        except re.error as exc:
            raise QSyntaxError(f"invalid regular expression after '{op}' at position {start}: {exc.msg}"
                               + (f" (at offset {exc.pos} of the pattern)" if exc.pos is not None else ""),
                               start) from None


def parse_q(text: str, expand: Expand) -> QNode:
    """Parse an NGSI-LD ``q`` expression. Attribute and sub-attribute names go through ``expand`` (except the
    core members observedAt, modifiedAt, createdAt, unitCode, datasetId); compound-value keys in ``[...]``
    do not. Raises :class:`QSyntaxError`."""
    return _QParser(text, expand).query()


# --- Type and scope expressions ------------------------------------------------------------------------------


def _boolean_expression(text: str, what: str, leaf: Callable[[str, int], QNode]) -> QNode:
    """``a,b`` / ``a|b`` (OR), ``a;b`` (AND, binding tighter) and parentheses over leaves ``leaf(token, at)``."""
    tokens = [(m.group(), m.start()) for m in re.finditer(r"[,;|()]|[^,;|()\s]+", text)]
    pos = 0

    def fail(message: str, at: int) -> NoReturn:
        raise QSyntaxError(message, at)

    def at() -> int:
        return tokens[pos][1] if pos < len(tokens) else len(text)

    def found() -> str:
        return repr(tokens[pos][0]) if pos < len(tokens) else "the end of the expression"

    def disjunction() -> QNode:
        nonlocal pos
        parts = [conjunction()]
        while pos < len(tokens) and tokens[pos][0] in ",|":
            pos += 1
            parts.append(conjunction())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def conjunction() -> QNode:
        nonlocal pos
        parts = [operand()]
        while pos < len(tokens) and tokens[pos][0] == ";":
            pos += 1
            parts.append(operand())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def operand() -> QNode:
        nonlocal pos
        if pos < len(tokens) and tokens[pos][0] == "(":
            opened = tokens[pos][1]
            pos += 1
            node = disjunction()
            if pos >= len(tokens) or tokens[pos][0] != ")":
                fail(f"expected ')' at position {at()} to close the '(' at position {opened}, found {found()}", at())
            pos += 1
            return node
        if pos >= len(tokens) or tokens[pos][0] in ",;|)":
            fail(f"expected {what} or '(' at position {at()}, found {found()}", at())
        token, start = tokens[pos]
        pos += 1
        return leaf(token, start)

    if not tokens:
        fail(f"the expression is empty: expected {what}", 0)
    node = disjunction()
    if pos < len(tokens):
        fail(f"expected ',', ';', '|' or the end of the expression at position {at()}, found {found()}", at())
    return node


def parse_type_query(text: str, expand: Expand) -> QNode:
    """Parse an entity type selection (``Building,House``, ``(Building;Smart)|House``) into TypeIs leaves
    combined with And/Or; every name goes through ``expand``."""
    return _boolean_expression(text, "an entity type", lambda token, _at: TypeIs(expand(token)))


_SCOPE_LEVEL = re.compile(r"\w+")


def _scope_leaf(token: str, start: int) -> ScopeIs:
    """``/a/b`` (that scope), ``/a/+/c`` (``+`` any one level), ``/a/#`` (``/a`` and everything below)."""
    if not token.startswith("/"):
        raise QSyntaxError(f"a scope starts with '/' (position {start}), found '{token}'", start)
    levels = token[1:].split("/")
    parts = []
    for n, level in enumerate(levels):
        at = start + 1 + sum(len(x) + 1 for x in levels[:n])
        if level == "#" and n == len(levels) - 1:
            parts.append("#")
        elif level == "+" or _SCOPE_LEVEL.fullmatch(level):
            parts.append(level)
        else:
            raise QSyntaxError(f"expected a scope level (letters, digits, '_'), '+' or a final '#' at position "
                               f"{at}, found '{level}'", at)
    if "+" not in parts and "#" not in parts:
        return ScopeIs(token)
    regex = "".join("/[^/]+" if p == "+" else "(/.*)?" if p == "#" else "/" + re.escape(p) for p in parts)
    return ScopeIs(token, re.compile(f"^{regex}$"))


def parse_scope_query(text: str) -> QNode:
    """Parse a ``scopeQ`` (``/Madrid/#``, ``/Madrid/+/Gardens``, combined with ``;``, ``|`` and ``,``)."""
    return _boolean_expression(text, "a scope", _scope_leaf)


# --- Evaluation in Python ------------------------------------------------------------------------------------


def _member(items: Iterable[Any], key: str) -> Iterator[Any]:
    """A lax member step: into each object (each element of an array), ``*`` taking every member."""
    for x in items:
        for y in x if isinstance(x, list) else (x,):
            if isinstance(y, dict):
                if key == "*":
                    yield from y.values()
                elif key in y:
                    yield y[key]


def _unwrap(items: Iterable[Any]) -> Iterator[Any]:
    for x in items:
        if isinstance(x, list):
            yield from x
        else:
            yield x


def _reached(attrs: dict[str, Any], path: AttrPath) -> list[Any]:
    """What ``$."attr"[*]."sub"…`` reaches: instances, or their sub-attributes."""
    items: Iterable[Any] = _unwrap(_member([attrs], path.attr))
    for sub in path.subattrs:
        items = _member(items, sub)
    return list(items)


def _spec_holds(plan: _Plan, spec: _Spec, element: dict[str, Any]) -> bool:
    targets: Iterable[Any] = [element]
    for key in spec.seed:
        targets = _member(targets, key)
    targets = list(targets)
    if plan.mode == "exists":
        return bool(targets)
    assert spec.test is not None
    items = list(_unwrap(targets))
    hit = any(spec.test.test(x) for x in items)
    if plan.mode == "some":
        return hit
    if plan.mode == "none":
        return bool(targets) and not hit
    return any(_IS_STRING.test(x) for x in items) and not hit


def _types_of(entity: dict[str, Any]) -> list[str]:
    t = entity.get("type")
    return [t] if isinstance(t, str) else list(t or ())


def matches(node: QNode, entity: dict[str, Any]) -> bool:
    """Whether the entity (internal representation: expanded names, ``attrs`` of instance lists) matches."""
    if isinstance(node, And):
        return all(matches(c, entity) for c in node.children)
    if isinstance(node, Or):
        return any(matches(c, entity) for c in node.children)
    if isinstance(node, TypeIs):
        return node.iri in _types_of(entity)
    if isinstance(node, ScopeIs):
        scopes = entity.get("scope") or []
        scopes = [scopes] if isinstance(scopes, str) else scopes
        if node.regex is None:
            return node.text in scopes
        return any(node.regex.fullmatch(s) for s in scopes)
    reached = _reached(entity.get("attrs") or {}, node.path)
    plan = node.plan
    if not plan.specs:
        return bool(reached)
    return any(
        isinstance(e, dict) and any(
            (spec.types is None or e.get("type") in spec.types) and _spec_holds(plan, spec, e)
            for spec in plan.specs)
        for e in _unwrap(reached))


# --- Compilation to SQL: PostgreSQL --------------------------------------------------------------------------


def _jp_key(key: str) -> str:
    """A jsonpath member accessor: a JSON string literal is a valid jsonpath one, whatever the name holds."""
    return ".*" if key == "*" else "." + json.dumps(key, ensure_ascii=False)


def _jp_elements(path: AttrPath) -> str:
    return "$" + _jp_key(path.attr) + "[*]" + "".join(_jp_key(s) for s in path.subattrs)


def _jp_selector(spec: _Spec) -> str:
    assert spec.types is not None
    return "(" + " || ".join(f'@."type" == {json.dumps(t)}' for t in spec.types) + ")"


def _jsonpath(path: str) -> ColumnElement[Any]:
    return cast(literal(path), JSONPATH)


def _jsonb(value: Any) -> ColumnElement[Any]:
    return cast(literal(json.dumps(value, ensure_ascii=False)), JSONB)


def _pg_text(x: Any) -> ColumnElement[Any]:
    return x.op("#>>")(literal_column("'{}'"))


def _pg_rows(target: Any, path: str) -> Any:
    """``jsonb_path_query(target, path) AS anon(value)``: the items a path yields, as rows."""
    return func.jsonb_path_query(target, _jsonpath(path)).table_valued("value").render_derived()


def _equal_values(test: _ItemTest | None) -> list[Any] | None:
    if isinstance(test, _Cmp) and test.op == "==" and test.kind not in TEMPORAL:
        return [test.value]
    if isinstance(test, _Any):
        values = [_equal_values(p) for p in test.parts]
        return None if any(v is None for v in values) else [x for v in values for x in v or ()]
    return None


def _containment(term: Term) -> list[dict[str, Any]]:
    """``attrs @> …`` documents that every row the term matches contains (assuming attributes hold lists of
    instance objects and sub-attributes one object): OR-ed in front of the exact jsonpath test, they let a
    GIN ``jsonb_path_ops`` index find the candidates of an equality. Empty when no such prefilter exists."""
    plan, path = term.plan, term.path
    if plan.mode != "some" or term.op != "==" or path.keys is not None or path.core is not None:
        return []
    arms: dict[str, dict[str, Any]] = {}
    for spec in plan.specs:
        if spec.types == ("LanguageProperty",):
            leaves: list[dict[str, Any]] = [{"type": "LanguageProperty"}]
        else:
            values = _equal_values(spec.test)
            if values is None:
                return []
            leaves = [leaf for v in values for leaf in ({spec.seed[0]: v}, {spec.seed[0]: [v]})]
        for leaf in leaves:
            for sub in reversed(path.subattrs):
                leaf = {sub: leaf}
            arm = {path.attr: [leaf]}
            arms[json.dumps(arm, sort_keys=True)] = arm
    return list(arms.values()) if len(arms) <= 64 else []


def _pg_term(term: Term, attrs: Any) -> ColumnElement[bool]:
    plan, elements = term.plan, _jp_elements(term.path)
    if not plan.specs:
        return func.jsonb_path_exists(attrs, _jsonpath(elements))
    if isinstance(plan.specs[0].test, _Regex):
        return _pg_pattern(plan, elements, attrs)
    v = _Vars()
    preds = []
    for spec in plan.specs:
        seed = "@" + "".join(_jp_key(k) for k in spec.seed)
        if plan.mode == "exists":
            pred = f"exists({seed})"
        else:
            assert isinstance(spec.test, _Cmp | _Any | _All)
            hit = f"exists({seed} ? ({spec.test.jsonpath(v)}))"
            pred = hit if plan.mode == "some" else f"(exists({seed}) && !{hit})"
        preds.append(f"({_jp_selector(spec)} && {pred})" if spec.types else pred)
    exact = func.jsonb_path_exists(attrs, _jsonpath(f"{elements} ? ({' || '.join(preds)})"), _jsonb(v.values))
    arms = _containment(term)
    if not arms:
        return exact
    return and_(or_(*(attrs.op("@>")(_jsonb(arm)) for arm in arms)), exact)


def _pg_pattern(plan: _Plan, elements: str, attrs: Any) -> ColumnElement[bool]:
    """``~=`` / ``!~=``: jsonpath's like_regex takes no variables, so the elements and their strings come out
    as rows and meet the pattern (a bind parameter) through PostgreSQL's ``~``."""
    element = _pg_rows(attrs, elements + ' ? (@.type() == "object")')
    preds = []
    for spec in plan.specs:
        assert isinstance(spec.test, _Regex)
        strings = "$" + "".join(_jp_key(k) for k in spec.seed) + ' ? (@.type() == "string")'
        matching = _pg_rows(element.c.value, strings)
        pred: ColumnElement[bool] = select(literal(1)).select_from(matching).where(
            _pg_text(matching.c.value).op("~")(spec.test.source)).exists()
        if plan.mode == "nomatch":
            pred = and_(select(literal(1)).select_from(_pg_rows(element.c.value, strings)).exists(), ~pred)
        if spec.types:
            pred = and_(func.jsonb_extract_path_text(element.c.value, "type").in_(spec.types), pred)
        preds.append(pred)
    return select(literal(1)).select_from(element).where(or_(*preds)).exists()


# --- Compilation to SQL: SQLite ------------------------------------------------------------------------------


def _each(arg: Any) -> Any:
    """``json_each(arg)``: one row (key, value, type) per element or member; none for NULL."""
    return func.json_each(arg).table_valued("key", "value", "type")


def _each2(arg: Any, path: Any) -> Any:
    """``json_each(arg, path)``: the rows of what the path reaches in ``arg``."""
    return func.json_each(arg, path).table_valued("key", "value", "type")


def _wrapped(row: Any) -> ColumnElement[Any]:
    """A row's value as an array to step into: an array itself, an object as ``[object]``, else NULL."""
    return case((row.c.type == "array", row.c.value),
                (row.c.type == "object", func.json_array(func.json(row.c.value))))


class _Chain:
    """A chain of ``json_each`` joined on 1 = 1, each reading the previous one's row: lax navigation in SQL."""

    def __init__(self) -> None:
        self.froms: list[Any] = []
        self.where: list[ColumnElement[bool]] = []

    def each(self, arg: Any) -> Any:
        row = _each(arg)
        self.froms.append(row)
        return row

    def member(self, row: Any, key: str) -> Any:
        """The lax member step: into the row's object, or into each object of its array."""
        inner = self.each(_wrapped(row))
        found = self.each(case((inner.c.type == "object", inner.c.value)))
        if key != "*":
            self.where.append(found.c.key == key)
        return found

    def exists(self, *conditions: ColumnElement[bool]) -> Exists:
        joined = self.froms[0]
        for row in self.froms[1:]:
            joined = joined.join(row, true())
        return select(literal(1)).select_from(joined).where(*self.where, *conditions).exists()


def _sqlite_any_item(row: Any, test: _ItemTest) -> ColumnElement[bool]:
    """Some item of the target passes: the target itself, or one element of it when it is an array."""
    return _sqlite_any_of(row.c.type, row.c.value, test)


def _sqlite_any_of(type_: Any, value: Any, test: _ItemTest) -> ColumnElement[bool]:
    """:func:`_sqlite_any_item` of a target given by its JSON type and SQL value (``json_type``/``json_extract``
    or a ``json_each`` row's columns, which follow the same conventions)."""
    inner = _each(case((type_ == "array", value)))
    return or_(and_(type_ != "array", test.sqlite(type_, value)),
               and_(type_ == "array",  # the subquery is run only for an array (AND stops at a false operand)
                    select(literal(1)).select_from(inner).where(test.sqlite(inner.c.type, inner.c.value)).exists()))


def _json_path(key: str) -> str | None:
    """SQLite's JSON path of one member, or None when the name cannot be written in one (a ``"`` or ``\\``)."""
    return None if '"' in key or "\\" in key or key == "*" else f'$."{key}"'


def _sqlite_direct_spec(mode: str, spec: _Spec, element: Any, where: str) -> ColumnElement[bool]:
    """:func:`_sqlite_spec` when the target is one member of the element: read with ``json_type`` and
    ``json_extract`` on the element rather than through a ``json_each`` of its members (the same rows, read
    several times faster)."""
    t, v = func.json_type(element.c.value, where), func.json_extract(element.c.value, where)
    present = t.is_not(None)
    if mode == "exists":
        pred: ColumnElement[bool] = present
    else:
        assert spec.test is not None
        hit = _sqlite_any_of(t, v, spec.test)
        missed = func.coalesce(hit, 0) == 0  # NOT EXISTS in the general form: an unknown (NULL) is no hit
        if mode == "some":
            pred = hit
        elif mode == "nomatch":
            pred = and_(_sqlite_any_of(t, v, _IS_STRING), missed)
        else:
            pred = and_(present, missed)
    if spec.types is None:
        return pred
    return and_(func.json_extract(element.c.value, "$.type").in_(spec.types), pred)


def _sqlite_spec(mode: str, spec: _Spec, element: Any) -> ColumnElement[bool]:
    if len(spec.seed) == 1 and (where := _json_path(spec.seed[0])) is not None:
        return _sqlite_direct_spec(mode, spec, element, where)
    def target() -> tuple[_Chain, Any]:
        chain = _Chain()
        row = chain.each(element.c.value)
        chain.where.append(row.c.key == spec.seed[0])
        for key in spec.seed[1:]:
            row = chain.member(row, key)
        return chain, row

    first, first_row = target()
    if mode == "exists":
        pred: ColumnElement[bool] = first.exists()
    else:
        assert spec.test is not None
        if mode == "some":
            pred = first.exists(_sqlite_any_item(first_row, spec.test))
        else:
            second, second_row = target()
            present = _sqlite_any_item(first_row, _IS_STRING) if mode == "nomatch" else true()
            pred = and_(first.exists(present), ~second.exists(_sqlite_any_item(second_row, spec.test)))
    if spec.types is None:
        return pred
    return and_(func.json_extract(element.c.value, "$.type").in_(spec.types), pred)


def _sqlite_term(term: Term, attrs: Any) -> ColumnElement[bool]:
    path, plan = term.path, term.plan
    chain = _Chain()
    where = _json_path(path.attr)
    if where is None:
        attr = chain.each(attrs)
        chain.where.append(attr.c.key == path.attr)
        if not plan.specs and not path.subattrs:
            return chain.exists(or_(attr.c.type != "array", func.json_array_length(attr.c.value) > 0))
        row = chain.each(_wrapped(attr))
    else:  # the attribute read by its path, not found among every attribute by a json_each
        t, v = func.json_type(attrs, where), func.json_extract(attrs, where)
        if not plan.specs and not path.subattrs:
            return and_(t.is_not(None), or_(t != "array", func.json_array_length(attrs, where) > 0))
        # json_each at the path: an array's elements (the stored form), an object wrapped as [object]; a scalar
        # gives one row that no later step takes
        obj = t == "object"
        row = _each2(case((obj, func.json_array(func.json(v))), else_=attrs), case((obj, "$"), else_=where))
        chain.froms.append(row)
    for sub in path.subattrs:
        row = chain.member(row, sub)
    if not plan.specs:
        return chain.exists()
    element = chain.each(_wrapped(row))
    return chain.exists(element.c.type == "object", or_(*(_sqlite_spec(plan.mode, s, element) for s in plan.specs)))


# --- Compilation to SQL ------------------------------------------------------------------------------------


def to_sql(node: QNode, *, dialect: str, attrs: Any, types: Any = None, scopes: Any = None) -> ColumnElement[bool]:
    """A WHERE clause with the semantics of :func:`matches`. ``attrs`` is the JSON column of the entity's
    attributes (JSONB on PostgreSQL, JSON text on SQLite), ``types`` and ``scopes`` JSON arrays of the same
    kind (needed only by type and scope terms). On SQLite the connection must have
    :func:`register_sqlite_functions`. Every value from the query travels as a bind parameter."""
    if dialect not in ("postgresql", "sqlite"):
        raise ValueError(f"unsupported dialect {dialect!r}: expected 'postgresql' or 'sqlite'")
    pg = dialect == "postgresql"
    if isinstance(node, And):
        return and_(*(to_sql(c, dialect=dialect, attrs=attrs, types=types, scopes=scopes) for c in node.children))
    if isinstance(node, Or):
        return or_(*(to_sql(c, dialect=dialect, attrs=attrs, types=types, scopes=scopes) for c in node.children))
    if isinstance(node, Term):
        return _pg_term(node, attrs) if pg else _sqlite_term(node, attrs)
    column = types if isinstance(node, TypeIs) else scopes
    if column is None:
        raise ValueError(f"a {'type' if isinstance(node, TypeIs) else 'scope'} query needs its column")
    exact = node.iri if isinstance(node, TypeIs) else node.text
    regex = node.regex if isinstance(node, ScopeIs) else None
    if pg:
        if regex is None:
            return column.op("@>")(_jsonb([exact]))  # a GIN index on the column serves it
        s = func.jsonb_array_elements_text(column).table_valued("value").render_derived()
        return select(literal(1)).select_from(s).where(s.c.value.op("~")(regex.pattern)).exists()
    e = _each(column)
    matched = e.c.value == exact if regex is None else func.regexp(regex.pattern, e.c.value)
    return select(literal(1)).select_from(e).where(matched).exists()


def register_sqlite_functions(dbapi_conn: Any) -> None:
    """Give a SQLite DB-API connection what :func:`to_sql` compiles to: ``regexp(pattern, text)`` (also behind
    ``REGEXP``) and ``ngsild_temporal(kind, text)``. Call it from the engine's ``connect`` event."""
    dbapi_conn.create_function("regexp", 2, _sqlite_regexp, deterministic=True)
    dbapi_conn.create_function("ngsild_temporal", 2, temporal_key, deterministic=True)
