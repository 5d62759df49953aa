"""Messages in the user's language: one catalogue, Chinese by default, English on request."""

import ast
from pathlib import Path

import pytest

from citybase.core.i18n import Msg, catalogue, choose_lang, render, set_lang

SRC = Path(__file__).resolve().parents[2] / "src" / "citybase"


def templates_in_code() -> dict[str, str]:
    """Every Msg("…") template written in the sources, with where it is."""
    found = {}
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Msg"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                found[node.args[0].value] = f"{path.relative_to(SRC)}:{node.lineno}"
    return found


def test_every_message_in_the_code_has_a_chinese_translation():
    zh = catalogue("zh")
    missing = {t: where for t, where in templates_in_code().items() if t not in zh}
    assert missing == {}, "add these to core/locale/zh/LC_MESSAGES/citybase.po"


def test_translations_keep_the_fields_of_their_template():
    import string

    def fields(s: str) -> set[str]:
        return {f for _, f, _, _ in string.Formatter().parse(s) if f}

    broken = {k: v for k, v in catalogue("zh").items() if fields(k) != fields(v)}
    assert broken == {}


def test_a_message_renders_in_the_language_asked_for():
    zh = catalogue("zh")
    template = next(iter(zh))
    import string

    params = {f: "X" for _, f, _, _ in string.Formatter().parse(template) if f}
    m = Msg(template, **params)
    assert render(m, "en") == template.format(**params)
    assert render(m, "zh") == zh[template].format(**params)
    assert m == template.format(**params)  # as text, a message is its English
    token = set_lang("en")
    try:
        assert render(m) == template.format(**params)
    finally:
        from citybase.core.i18n import _lang

        _lang.reset(token)
    assert render(m) == zh[template].format(**params)  # the default language


@pytest.mark.parametrize(("query", "header", "lang"), [
    (None, None, "zh"), ("en", None, "en"), ("zh", "en", "zh"), (None, "en-US,en;q=0.9", "en"),
    (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"), (None, "fr-FR", "zh"), (None, "de, en;q=0.5", "en"),
    ("xx", "en", "en"), (None, "en;q=0", "zh"),
])
def test_the_language_of_a_request(query, header, lang):
    assert choose_lang(query, header) == lang


def test_the_catalogue_holds_no_message_the_code_no_longer_writes():
    stale = set(catalogue("zh")) - set(templates_in_code())
    assert stale == set(), "remove these from the catalogue (or the code lost a Msg)"
