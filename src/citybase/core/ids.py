"""National identifiers with their check characters.

* GB 11643 citizen identity number: 17 digits + ISO 7064 MOD 11-2 check character.
* GB 32100 unified social credit code: 18 characters, MOD 31 check character; characters
  9–17 are a GB 11714 organisation code with its own MOD 11 check character.
* GB/T 2260 administrative division code: 6 digits whose first two name a province.

Every validator raises InvalidIdentifier naming the position and the character that is wrong.
"""

from __future__ import annotations

from datetime import date

from citybase.core.errors import InvalidIdentifier
from citybase.core.i18n import Msg

# Province-level prefixes of GB/T 2260 (mainland, plus 71/81/82).
PROVINCES = {
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82",
}

_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]  # 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2
_ID_CHECK = "10X98765432"


# The identifiers' names as shown to people (the English name is also the problem's ``identifier`` field).
KINDS = {
    "citizen ID number (GB 11643)": Msg("citizen ID number (GB 11643)"),
    "unified social credit code (GB 32100)": Msg("unified social credit code (GB 32100)"),
    "administrative division code": Msg("administrative division code"),
}


def _fail(kind: str, value: str, detail: str | Msg, fix: str | Msg, position: int | None = None) -> InvalidIdentifier:
    return InvalidIdentifier(Msg("{kind} {value!r}: {detail}", kind=KINDS.get(kind, kind), value=value, detail=detail),
                             fix=fix, identifier=kind, value=value, position=position)


def admin_code_error(code: str) -> Msg | None:
    """Why a 6-digit GB/T 2260 code is invalid, or None."""
    if len(code) != 6 or not code.isdigit():
        return Msg("must be 6 digits")
    if code[:2] not in PROVINCES:
        return Msg("characters 1-2 {part!r} are not a province code of GB/T 2260", part=code[:2])
    return None


def validate_admin_code(code: str) -> str:
    """Return the GB/T 2260 code if it is well formed, else raise InvalidIdentifier."""
    err = admin_code_error(code)
    if err:
        raise _fail("administrative division code", code, err, Msg('Use a 6-digit GB/T 2260 code such as 310104.'))
    return code


def id_check_char(first17: str) -> str:
    """The GB 11643 check character for 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def validate_id_number(value: str, *, today: date | None = None) -> str:
    """Return the normalised (upper-case) GB 11643 number, or raise InvalidIdentifier saying which character is wrong."""
    kind = "citizen ID number (GB 11643)"
    fix = Msg("Check the number against the ID card: 17 digits then a check digit or X.")
    v = value.strip().upper()
    if len(v) != 18:
        raise _fail(kind, value, Msg('has {n} characters, expected 18', n=len(v)), fix)
    for i, c in enumerate(v[:17]):
        if not c.isdigit():
            raise _fail(kind, value, Msg('character {position} is {c!r}, expected a digit', position=i + 1, c=c), fix, i + 1)
    if v[17] not in "0123456789X":
        raise _fail(kind, value, Msg('character 18 is {v!r}, expected a digit or X', v=v[17]), fix, 18)
    if v[:2] not in PROVINCES:
        raise _fail(kind, value, Msg('characters 1-2 {v!r} are not a province code', v=v[:2]), fix, 1)
    try:
        born = date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        raise _fail(kind, value, Msg('characters 7-14 {v!r} are not a valid birth date', v=v[6:14]), fix, 7) from None
    if born > (today or date.today()) or born.year < 1880:
        raise _fail(kind, value, Msg('birth date {born} (characters 7-14) is not plausible', born=born.isoformat()), fix, 7)
    expected = id_check_char(v[:17])
    if v[17] != expected:
        raise _fail(
            kind, value, Msg('character 18 (check character) is {v!r} but should be {expected!r}', v=v[17], expected=expected),
            Msg('A digit was probably mistyped; re-read the number.'), 18,
        )
    return v


def id_number_birth_sex(value: str) -> tuple[date, str]:
    """Birth date and sex ('M'/'F') encoded in a valid GB 11643 number."""
    born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    return born, ("M" if int(value[16]) % 2 else "F")


# GB 32100: 31 characters, no I, O, Z, S, V.
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_CHARS)}
_USCC_WEIGHTS = [pow(3, i, 31) for i in range(17)]  # 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28
USCC_AUTHORITIES = set("123456789ANY")
_ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters."""
    total = sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31]


def org_code_check_char(first8: str) -> str:
    """The GB 11714 check character for an 8-character organisation code body."""
    total = sum(int(c, 36) * w for c, w in zip(first8, _ORG_WEIGHTS, strict=True))
    r = 11 - total % 11
    return "X" if r == 10 else "0" if r == 11 else str(r)


def validate_uscc(value: str) -> str:
    """Return the normalised GB 32100 code, or raise InvalidIdentifier saying which character is wrong."""
    kind = "unified social credit code (GB 32100)"
    fix = Msg("Copy the 18-character code from the business licence; letters I, O, Z, S and V never occur.")
    v = value.strip().upper()
    if len(v) != 18:
        raise _fail(kind, value, Msg('has {n} characters, expected 18', n=len(v)), fix)
    for i, c in enumerate(v):
        if c not in _USCC_VALUE:
            raise _fail(kind, value, Msg('character {position} is {c!r}, which GB 32100 does not use', position=i + 1, c=c), fix, i + 1)
    if v[0] not in USCC_AUTHORITIES:
        raise _fail(kind, value, Msg('character 1 {v!r} is not a registration authority code', v=v[0]), fix, 1)
    err = admin_code_error(v[2:8])
    if err:
        raise _fail(kind, value, Msg('characters 3-8 (division code) {err}', err=err), fix, 3)
    expected_org = org_code_check_char(v[8:16])
    if v[16] != expected_org:
        raise _fail(
            kind, value,
            Msg('character 17 (organisation code check character) is {v!r} but should be {expected_org!r}', v=v[16], expected_org=expected_org),
            Msg('A character in positions 9-17 was probably mistyped.'), 17,
        )
    expected = uscc_check_char(v[:17])
    if v[17] != expected:
        raise _fail(
            kind, value, Msg('character 18 (check character) is {v!r} but should be {expected!r}', v=v[17], expected=expected),
            Msg('A character was probably mistyped; re-read the code.'), 18,
        )
    return v
