"""Masking of personal data for callers whose role does not need it in full."""

from __future__ import annotations

import re


def mask_id_number(value: str | None) -> str | None:
    """310104199001011234 -> 310104********1234."""
    if not value:
        return value
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_phone(value: str | None) -> str | None:
    """13812345678 -> 138****5678."""
    if not value:
        return value
    if len(value) < 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_name(value: str | None) -> str | None:
    """张三丰 -> 张**; the surname stays (two-character compound surnames included)."""
    if not value:
        return value
    keep = 2 if len(value) >= 4 else 1
    return value[:keep] + "*" * (len(value) - keep)


# ---------------------------------------------------------------- free text
#
# One function masks what people write or say (descriptions, notes, results, outcome texts) for every
# reader whose role does not need personal data in full: the API's masked reads and the public feed.
# Masking only ever replaces characters with "*" (never inserts or drops any), so a text search
# that matches the masked text also matches the stored text; the search in ops relies on it.

_NOT_ALNUM_BEFORE = r"(?<![0-9A-Za-z])"
_NOT_ALNUM_AFTER = r"(?![0-9A-Za-z])"
_SEP = r"[ \-－]"
# 18-digit (GB 11643) and old 15-digit ID numbers, optionally written in groups; the region code never
# starts with 0, so 0086 and a mobile (15 digits) is left to the phone pattern.
_ID_IN_TEXT = re.compile(
    _NOT_ALNUM_BEFORE + r"(?:[1-9]\d{5}" + _SEP + r"?\d{8}" + _SEP + r"?\d{3}[0-9Xx]|[1-9]\d{5}" + _SEP + r"?\d{6}"
    + _SEP + r"?\d{2}[0-9Xx])" + _NOT_ALNUM_AFTER)
# Mobiles: 13800001111, 138-0000-1111, 138 0000 1111, with +86 / 0086 / (+86) / 86- before them.
_MOBILE_IN_TEXT = re.compile(
    r"(?<!\d)(?P<pre>[(（]?(?:\+|＋|00)?86[)）]?" + _SEP + r"?)?(?P<num>1[3-9]\d(?:" + _SEP + r"?\d{4}){2})(?!\d)")
# Landlines with an area code: 021-64871234, 021 64871234, (021)64871234, （021）6487-1234, 02164871234,
# +86 21 64871234.
_LANDLINE_IN_TEXT = re.compile(
    r"(?<!\d)(?P<pre>(?:(?:\+|＋|00)86" + _SEP + r"?[(（]?0?\d{2,3}[)）]?|[(（]0\d{2,3}[)）]|0\d{2,3})" + _SEP
    + r"?)(?P<num>[2-9]\d{2,3}" + _SEP + r"?\d{4})(?!\d)")
# A local number without an area code counts as a phone only where the text says so (电话 64871234).
_LOCAL_IN_TEXT = re.compile(
    r"(?P<pre>(?:电话|座机|固话|手机|号码|联系方式|分机|tel|Tel|TEL)[号码是为：:\s]{0,3})"
    r"(?P<num>[2-9]\d{2,3}" + _SEP + r"?\d{4})(?!\d)")

# Common surnames (compound ones first): a name is masked only where a surname follows a word that
# introduces a name, so "找不到" or "狗叫声" stay as they are.
_COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "令狐", "慕容", "司徒", "夏侯", "尉迟",
                      "公孙", "长孙", "宇文", "轩辕", "端木", "西门", "南宫", "独孤", "澹台")
_SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
             "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付傅方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武"
             "戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯"
             "纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉"
             "缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑"
             "郎甄丛仲虞敖巩明佘池查麻苑迟邝")
_NAME_INTRO = ("联系人", "联系", "姓名", "名字", "我是", "我叫", "名叫", "叫做", "本人", "找", "叫")
_NAME_IN_TEXT = re.compile(
    "(?P<pre>(?:" + "|".join(_NAME_INTRO) + r")[：:\s]{0,2})"
    "(?P<sur>" + "|".join(_COMPOUND_SURNAMES) + "|[" + _SURNAMES + "])"
    r"(?P<given>[\u4e00-\u9fff]{1,2})")
# After a surname these say who, not which person: 找李先生 stays readable and names nobody.
_TITLES = ("先生", "女士", "小姐", "师傅", "老师", "阿姨", "经理", "大爷", "大妈", "大姐", "大哥", "同志", "主任",
           "老板", "书记", "警官", "医生", "律师", "总", "工", "姐", "哥", "叔", "伯", "婆", "某")
# Words that begin with a surname's character but name nobody: 联系房东, 找管理处, 我是商户.
_NOT_NAMES = ("方式", "方面", "方法", "房东", "房主", "房客", "房管", "商家", "商户", "商铺", "管理", "管委", "安全",
              "安排", "时间", "时候", "高层", "司机", "单位", "车主", "车辆", "明天", "全部", "全体", "应该", "师傅",
              "路人", "路政", "江边", "和平", "万一", "于是", "成功", "华为", "文明", "龙头", "金额", "石头", "包裹")
# A second "given" character that is really the next word: 找王明反映 masks only 明.
_NOT_IN_NAMES = set("的了在说来去和反打电是要帮把给家这那有没不也就都吗呢吧啊处")


def _star_digits(text: str, keep_head: int, keep_tail: int) -> str:
    """Replace every digit of ``text`` but the first ``keep_head`` and last ``keep_tail`` with "*"."""
    positions = [i for i, ch in enumerate(text) if ch.isdigit()]
    hidden = set(positions[keep_head:len(positions) - keep_tail])
    return "".join("*" if i in hidden else ch for i, ch in enumerate(text))


def _star_id(m: re.Match[str]) -> str:
    s = m.group(0)
    chars = [i for i, ch in enumerate(s) if ch not in " -－"]
    hidden = set(chars[6:len(chars) - 4])
    return "".join("*" if i in hidden else ch for i, ch in enumerate(s))


def _star_phone(m: re.Match[str], keep_head: int) -> str:
    return (m.group("pre") or "") + _star_digits(m.group("num"), keep_head, 4)


def _star_name(m: re.Match[str]) -> str:
    given = m.group("given")
    if any(given.startswith(t) for t in _TITLES) or (m.group("sur") + given)[:2] in _NOT_NAMES:
        return m.group(0)
    if len(given) == 2 and given[1] in _NOT_IN_NAMES:
        return m.group("pre") + m.group("sur") + "*" + given[1]
    return m.group("pre") + m.group("sur") + "*" * len(given)


def mask_text(text: str | None) -> str | None:
    """Free text with the personal data in it masked: ID numbers (18 and 15 digits), mobiles and
    landlines in every common spelling, and names after 找/叫/联系人/姓名/我是/我叫…; only characters
    are replaced by "*", so the text keeps its length and everything else in it."""
    if not text:
        return text
    text = _ID_IN_TEXT.sub(_star_id, text)
    text = _MOBILE_IN_TEXT.sub(lambda m: _star_phone(m, 3), text)
    text = _LANDLINE_IN_TEXT.sub(lambda m: _star_phone(m, 0), text)
    text = _LOCAL_IN_TEXT.sub(lambda m: _star_phone(m, 0), text)
    return _NAME_IN_TEXT.sub(_star_name, text)
