"""National identifiers: valid ones pass, each kind of mistake is named with its position."""

from datetime import date

import pytest

from citybase.core.errors import InvalidIdentifier
from citybase.core.ids import (
    id_check_char,
    id_number_birth_sex,
    org_code_check_char,
    uscc_check_char,
    validate_admin_code,
    validate_id_number,
    validate_uscc,
)


def test_published_sample_id_number_is_valid():
    # The sample number printed in GB 11643 explanations: check character X.
    assert validate_id_number("11010519491231002x") == "11010519491231002X"
    assert id_number_birth_sex("11010519491231002X") == (date(1949, 12, 31), "F")


def test_wrong_check_character_is_named_with_the_expected_one():
    with pytest.raises(InvalidIdentifier) as e:
        validate_id_number("110105194912310021")
    assert "character 18" in e.value.detail and "'X'" in e.value.detail
    assert e.value.extra["position"] == 18


@pytest.mark.parametrize(
    "value, words, position",
    [
        ("1101051949123100", "16 characters", None),
        ("11010519491231A02X", "character 15", 15),
        ("99010519491231002X", "province", 1),
        ("11010519491331002X", "birth date", 7),
        ("11010520991231002X", "not plausible", 7),
    ],
)
def test_malformed_id_numbers_say_what_is_wrong(value, words, position):
    with pytest.raises(InvalidIdentifier) as e:
        validate_id_number(value)
    assert words in e.value.detail
    assert e.value.extra["position"] == position
    assert e.value.fix


def test_every_single_digit_typo_in_an_id_number_is_caught():
    good = "310104198803150417"
    assert validate_id_number(good[:17] + id_check_char(good[:17]))
    base = good[:17] + id_check_char(good[:17])
    for i in range(17):
        for d in "0123456789":
            if d == base[i]:
                continue
            typo = base[:i] + d + base[i + 1:]
            try:
                validate_id_number(typo)
            except InvalidIdentifier:
                continue
            pytest.fail(f"typo at {i + 1} ({typo}) passed validation")


def _make_uscc(prefix: str, body: str) -> str:
    first17 = prefix + body + org_code_check_char(body)
    return first17 + uscc_check_char(first17)


def test_uscc_built_by_the_standard_validates():
    code = _make_uscc("91310104", "MA1FL123")
    assert validate_uscc(code.lower()) == code


def test_uscc_with_a_wrong_check_character_names_position_18():
    code = _make_uscc("91310104", "MA1FL123")
    wrong = code[:17] + ("0" if code[17] != "0" else "1")
    with pytest.raises(InvalidIdentifier) as e:
        validate_uscc(wrong)
    assert "character 18" in e.value.detail and repr(code[17]) in e.value.detail


def test_uscc_with_a_wrong_organisation_code_check_names_position_17():
    code = _make_uscc("91310104", "MA1FL123")
    bad17 = code[:16] + ("0" if code[16] != "0" else "1")
    bad = bad17 + uscc_check_char(bad17)
    with pytest.raises(InvalidIdentifier) as e:
        validate_uscc(bad)
    assert "character 17" in e.value.detail


@pytest.mark.parametrize(
    "value, words",
    [("91310104MA1FL12", "15 characters"), ("91310104MA1FLI23X0", "character 14"), ("X1310104MA1FL1234X", "authority"),
     ("91990104MA1FL1234X", "division code")],
)
def test_malformed_uscc_say_what_is_wrong(value, words):
    with pytest.raises(InvalidIdentifier) as e:
        validate_uscc(value)
    assert words in e.value.detail


def test_admin_codes():
    assert validate_admin_code("310104") == "310104"
    for bad in ("31010", "990104", "31a104"):
        with pytest.raises(InvalidIdentifier):
            validate_admin_code(bad)
