"""Electronic-licence identifiers (电子证照标识) as GB/T 36904 structures them and GB/T 36903 carries them
(the 证照标识 metadata element):

    1.2.156.3005.2 . <type code> . <issuer code> . <serial> . <version> . <check>

* ``1.2.156.3005.2``: the root OID of China's electronic licences;
* type code (证照类型代码, the GB/T 36902 catalogue's code): the defining department's 18-character GB 32100
  code and a 3-digit number, e.g. ``11100000000013338W011``;
* issuer code (颁发机构代码): the issuing organ's GB 32100 code;
* serial (流水号): 1–32 digits and capital letters, unique per type and issuer;
* version (版本号): 3 digits, 001 for a first issue;
* check (校验位): ISO/IEC 7064 MOD 37,36 over type code + issuer + serial + version (dots left out).

The check agrees with identifiers published by provincial licence libraries."""

from __future__ import annotations

import re

from citybase.core.errors import InvalidIdentifier
from citybase.core.i18n import Msg
from citybase.core.ids import validate_uscc

ROOT = "1.2.156.3005.2"
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
TYPE_CODE = re.compile(r"[0-9A-Z]{18}\d{3}")
SERIAL = re.compile(r"[0-9A-Z]{1,32}")
VERSION = re.compile(r"\d{3}")


def check_char(body: str) -> str:
    """The ISO/IEC 7064 MOD 37,36 check character of ``body`` (digits and capital letters)."""
    m = 36
    p = m
    for ch in body:
        s = (p + _VALUE[ch]) % m or m
        p = (s * 2) % (m + 1)
    return ALPHABET[(1 - p) % m]


def _fail(value: str, detail: Msg, fix: Msg, position: int | None = None) -> InvalidIdentifier:
    return InvalidIdentifier(detail, fix=fix, kind="licence_identifier", value=value, position=position)


def make_identifier(type_code: str, issuer_code: str, serial: str, version: int = 1) -> str:
    """The identifier of a licence from its parts, with its check character."""
    ver = f"{version:03d}"
    body = type_code + issuer_code + serial + ver
    return ".".join((ROOT, type_code, issuer_code, serial, ver, check_char(body)))


def parse_identifier(value: str) -> dict[str, str]:
    """The parts of a valid licence identifier (type_code, issuer_code, serial, version, check);
    InvalidIdentifier naming what is wrong otherwise."""
    fix = Msg('Copy the identifier exactly as printed on the licence (1.2.156.3005.2.<type>.<issuer>.<serial>.<version>.<check>).')
    v = (value or "").strip().upper()
    if not v.startswith(ROOT + "."):
        raise _fail(value, Msg('a licence identifier starts with {root}', root=ROOT), fix, 0)
    parts = v[len(ROOT) + 1:].split(".")
    if len(parts) != 5:
        raise _fail(value, Msg('a licence identifier has five parts after {root}, this one has {n}', root=ROOT, n=len(parts)), fix)
    type_code, issuer, serial, ver, check = parts
    if not TYPE_CODE.fullmatch(type_code):
        raise _fail(value, Msg('the type code {code!r} is not 18 characters and 3 digits', code=type_code), fix, len(ROOT) + 1)
    validate_uscc(type_code[:18])
    validate_uscc(issuer)
    if not SERIAL.fullmatch(serial):
        raise _fail(value, Msg('the serial {serial!r} is not 1–32 digits and capital letters', serial=serial), fix)
    if not VERSION.fullmatch(ver):
        raise _fail(value, Msg('the version {version!r} is not 3 digits', version=ver), fix)
    expected = check_char(type_code + issuer + serial + ver)
    if check != expected:
        raise _fail(value, Msg('the check character is {got!r}, the identifier needs {expected!r}', got=check, expected=expected),
                    fix, len(v) - len(check))
    return {"type_code": type_code, "issuer_code": issuer, "serial": serial, "version": ver, "check": check}


def validate_identifier(value: str) -> str:
    """The identifier upper-cased and stripped, if its structure and check character hold."""
    parse_identifier(value)
    return value.strip().upper()
