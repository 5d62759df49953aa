"""GB/T 36904 licence identifiers: structure and the ISO/IEC 7064 MOD 37,36 check character."""

import pytest

from citybase.core.errors import InvalidIdentifier
from citybase.licences.identifiers import check_char, make_identifier, parse_identifier, validate_identifier

# identifiers as provincial licence libraries publish them (their check characters computed by those systems)
PUBLISHED = [
    "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U",
    "1.2.156.3005.2.11100000000013338W009.11330105002500287C.2025052201.002.0",
]


def uscc(body8: str) -> str:
    """A valid GB 32100 code of a Xuhui organ with this 8-character body."""
    from citybase.core.ids import org_code_check_char, uscc_check_char

    first17 = "11310104" + body8 + org_code_check_char(body8)
    return first17 + uscc_check_char(first17)


ORGAN = uscc("MA1FL000")


def test_the_check_character_agrees_with_published_identifiers():
    for ident in PUBLISHED:
        parts = ident.split(".")[5:]
        assert check_char("".join(parts[:-1])) == parts[-1]


def test_a_made_identifier_parses_back_into_its_parts():
    issuer = uscc("MA1FL001")
    ident = make_identifier(ORGAN + "001", issuer, "2026ABC123", 1)
    parts = parse_identifier(ident)
    assert parts["issuer_code"] == issuer and parts["serial"] == "2026ABC123" and parts["version"] == "001"
    assert validate_identifier(ident.lower()) == ident


def test_every_single_character_change_of_the_serial_is_caught():
    ident = make_identifier(ORGAN + "001", ORGAN, "2026ABCDEF", 1)
    head, serial, tail = ident.rsplit(".", 3)[0], "2026ABCDEF", ident.rsplit(".", 2)[1:]
    for i in range(len(serial)):
        for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ":
            if c == serial[i]:
                continue
            changed = ".".join([head, serial[:i] + c + serial[i + 1:], *tail])
            with pytest.raises(InvalidIdentifier):
                parse_identifier(changed)


@pytest.mark.parametrize("bad", ["", "1.2.156.3005.3.X", "1.2.156.3005.2.ABC.DEF", "1.2.156.3005.2.a.b.c.d.e"])
def test_a_malformed_identifier_is_refused_with_a_fix(bad):
    with pytest.raises(InvalidIdentifier) as exc:
        parse_identifier(bad)
    assert exc.value.fix
