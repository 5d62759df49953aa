import pytest

from citybase.core.masking import mask_id_number, mask_name, mask_phone


def test_id_numbers_keep_region_and_last_four():
    assert mask_id_number("310104199001011234") == "310104********1234"


def test_phones_keep_prefix_and_last_four():
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone(None) is None


def test_names_keep_the_surname_only():
    assert mask_name("张三") == "张*"
    assert mask_name("张三丰") == "张**"
    assert mask_name("欧阳娜娜") == "欧阳**"


# ---------------------------------------------------------------- free text (property-style)

import re  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from citybase.core.masking import mask_text  # noqa: E402

FILLER = st.text(alphabet="楼下井盖坏了请尽快处理，。！？ 路灯不亮噪音很大", max_size=12)
DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=1)
MOBILE = st.builds(lambda b, rest: "1" + b + rest, st.sampled_from("3456789"),
                   st.text(alphabet="0123456789", min_size=9, max_size=9))
MOBILE_FORMATS = ["{a}{b}{c}", "{a}-{b}-{c}", "{a} {b} {c}", "+86 {a}{b}{c}", "+86-{a}-{b}-{c}", "+86{a}{b}{c}",
                  "0086{a}{b}{c}", "0086-{a}{b}{c}", "(+86){a} {b} {c}", "86-{a}{b}{c}", "{a}－{b}－{c}"]
LANDLINE_FORMATS = ["{area}-{local}", "{area} {local}", "({area}){local}", "（{area}）{local}", "{area}{local}",
                    "{area}-{l1}-{l2}", "+86 {area1} {local}", "电话{local}", "座机：{local}", "电话 {l1}-{l2}",
                    "联系方式:{local}"]


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def _assert_masks(text: str, secret: str) -> str:
    out = mask_text(text)
    assert len(out) == len(text), "masking replaces characters, it never drops or adds any"
    assert secret not in _digits(out) and secret not in out
    assert mask_text(out) == out
    return out


@settings(max_examples=300, deadline=None)
@given(MOBILE, st.sampled_from(MOBILE_FORMATS), FILLER, FILLER)
def test_a_mobile_in_any_common_spelling_is_masked(number, fmt, before, after):
    written = fmt.format(a=number[:3], b=number[3:7], c=number[7:])
    out = _assert_masks(before + written + after, number)
    assert number[-4:] in out and out.count("*") >= 4  # the last four stay, to tell numbers apart


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["021", "010", "0571", "0755"]), st.sampled_from("2345678"),
       st.text(alphabet="0123456789", min_size=7, max_size=7), st.sampled_from(LANDLINE_FORMATS), FILLER, FILLER)
def test_a_landline_in_any_common_spelling_is_masked(area, first, rest, fmt, before, after):
    local = first + rest
    written = fmt.format(area=area, area1=area[1:], local=local, l1=local[:4], l2=local[4:])
    _assert_masks(before + written + after, local)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from("123456"), st.text(alphabet="0123456789", min_size=16, max_size=16),
       st.sampled_from("0123456789Xx"), st.booleans(), st.sampled_from(["", " "]), FILLER, FILLER)
def test_id_numbers_new_and_old_are_masked(first, body, check, old, sep, before, after):
    idn = (first + body[:13] + check) if old else (first + body + check)
    birth = 12 if old else 14  # written as people group them: region, birth date, the rest
    written = sep.join((idn[:6], idn[6:birth], idn[birth:]))
    out = _assert_masks(before + written + after, idn)
    assert idn[:6] + "*" * (len(idn) - 10) + idn[-4:] in out.replace(" ", "")


NAME_CHARS = "建国娜丽伟芳敏静强磊洋艳勇军杰娟涛明超秀英华慧巧美"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["找", "叫", "联系", "联系人", "联系人：", "姓名:", "我是", "我叫", "名叫"]),
       st.sampled_from(["王", "李", "张", "刘", "陈", "欧阳", "司马", "诸葛"]),
       st.text(alphabet=NAME_CHARS, min_size=1, max_size=2), FILLER)
def test_names_after_a_word_that_introduces_them_keep_only_the_surname(intro, surname, given_name, after):
    text = f"请{intro}{surname}{given_name}{'，' + after if after else ''}"
    out = mask_text(text)
    assert f"{intro}{surname}{'*' * len(given_name)}" in out and given_name not in out.replace(after, "")


@pytest.mark.parametrize("text", [
    "漕溪北路101弄3号楼2单元502室", "工单 2026031500000123 已办结", "2026-03-15 10:00 前处理", "罚款 1500 元",
    "找不到井盖", "狗叫声很大", "找李先生确认", "请找物业处理", "宜山路 407 号", "限高 4.5 米，共 12 辆车",
    "统一社会信用代码 91310104MA1FL0X123", "请联系房东处理", "联系方式见上", "我是商户，找管理处", "找师傅来修",
])
def test_text_without_personal_data_is_left_as_it_is(text):
    assert mask_text(text) == text


def test_the_hotline_example_is_masked_whole():
    out = mask_text("请回电13800001111，我身份证310104199001010008，找王建国或拨 021-64871234")
    assert out == "请回电138****1111，我身份证310104********0008，找王**或拨 021-****1234"
    assert mask_text(None) is None and mask_text("") == ""
