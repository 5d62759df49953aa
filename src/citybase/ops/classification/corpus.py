"""A synthetic, deterministic corpus of incident reports as citizens and grid inspectors phrase them.

Each category has its own paraphrases (what callers actually say, beyond the catalogue keywords) and
a few official terms (what inspectors write); sentence templates give the frame: complaints, questions,
reports, urgent pleas, rambling call transcripts and terse patrol notes, with locations, times, moods,
polite fillers and irrelevant asides; words are sometimes swapped for synonyms (饭店/餐馆/饭馆, 晚上/夜里 …)
and a few texts carry a homophone typo (拉圾, 燥音, 再/在 …).

Honest held-out evaluation: the templates are split ~70/30 into ``train`` and ``heldout`` (disjoint), and
each category's paraphrases, inspector terms and synonym groups likewise (index % 10 in {3, 6, 9} is
held out). A held-out text draws half its paraphrases from the held-out-only lists, so scoring on it
measures generalisation to new phrasing rather than recall of memorised sentences.

The words themselves are package data, ``corpus.json`` beside this module, read on first use: the
runtime package carries no 700 lines of literals, and the corpus can be edited without touching code."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from citybase.ops.catalogue.defaults import CATEGORIES

STYLES = ("train", "heldout")


@dataclass(frozen=True)
class Corpus:
    """The corpus's material, as ``corpus.json`` holds it (lists become tuples)."""

    say: dict[str, tuple[str, ...]]  # what callers say, per category
    note: dict[str, tuple[str, ...]]  # what inspectors write, per category
    templates: dict[str, tuple[str, ...]]  # sentence frames by style
    hi: tuple[str, ...]
    who: tuple[str, ...]
    when: tuple[str, ...]
    feel: tuple[str, ...]
    ask: tuple[str, ...]
    aside: tuple[str, ...]
    roads: tuple[str, ...]
    xq: tuple[str, ...]
    spots: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...]
    typos: tuple[tuple[str, str], ...]


@cache
def corpus() -> Corpus:
    """The corpus material, read once from the package data file ``corpus.json``."""
    raw = json.loads(resources.files(__package__).joinpath("corpus.json").read_text(encoding="utf-8"))
    by_key = {k: {c: tuple(v) for c, v in raw[k].items()} for k in ("say", "note", "templates")}
    lists = {k: tuple(raw[k]) for k in ("hi", "who", "when", "feel", "ask", "aside", "roads", "xq", "spots")}
    return Corpus(**by_key, **lists, synonyms=tuple(tuple(g) for g in raw["synonyms"]),
                  typos=tuple((a, b) for a, b in raw["typos"]))


def _split(items: tuple[str, ...], styles: str) -> tuple[str, ...]:
    """The train part (index % 10 not in {3, 6, 9}) or the held-out-only part of a list."""
    held = tuple(x for i, x in enumerate(items) if i % 10 in (3, 6, 9))
    if styles == "heldout":
        return held
    return tuple(x for i, x in enumerate(items) if i % 10 not in (3, 6, 9))


def templates(styles: str = "train") -> tuple[str, ...]:
    """The sentence templates of that split (train and heldout are disjoint)."""
    _check(styles)
    held = styles == "heldout"
    return tuple(t for group in corpus().templates.values() for i, t in enumerate(group) if (i % 3 == 2) == held)


def paraphrases(code: str, styles: str = "train") -> tuple[str, ...]:
    """What callers say about a category in that split (heldout: all of them, some never used in train)."""
    _check(styles)
    say = corpus().say
    return say[code] if styles == "heldout" else _split(say[code], "train")


def _check(styles: str) -> None:
    if styles not in STYLES:
        raise ValueError(f"styles must be one of {STYLES}, not {styles!r}")


def _where(rnd: random.Random) -> str:
    c = corpus()
    road, xq = rnd.choice(c.roads), rnd.choice(c.xq)
    form = rnd.randrange(7)
    if form == 0:
        return f"{road}{rnd.randint(1, 999)}号{rnd.choice(c.spots)}"
    if form == 1:
        return f"{road}{rnd.choice([r for r in c.roads if r != road])}路口"
    if form == 2:
        return f"{xq}{rnd.randint(1, 40)}号楼"
    if form == 3:
        return f"{road}{rnd.randint(1, 1500)}弄{xq}{rnd.choice(c.spots)}"
    if form == 4:
        return f"{road}地铁站{rnd.randint(1, 6)}号口"
    if form == 5:
        return f"{xq}{rnd.choice(c.spots)}"
    return f"{road}上"


def _pick(rnd: random.Random, train: tuple[str, ...], held: tuple[str, ...], styles: str) -> str:
    if styles == "heldout" and held and rnd.random() < 0.5:
        return rnd.choice(held)
    return rnd.choice(train)


def _typo(rnd: random.Random, text: str) -> str:
    hits = [(a, b) for a, b in corpus().typos if a in text]
    if not hits:
        return text
    a, b = rnd.choice(hits)
    return text.replace(a, b, 1)


@cache
def _synonym_table(styles: str) -> tuple[re.Pattern[str], dict[str, tuple[str, ...]]]:
    """A pattern finding any synonym (longest first) and, for each, the words it may become in that split."""
    table = {}
    for group in corpus().synonyms:
        allowed = group if styles == "heldout" else _split(group, "train")
        for word in group:
            table[word] = tuple(w for w in allowed if w != word)
    return re.compile("|".join(sorted(table, key=len, reverse=True))), table


def _reword(rnd: random.Random, text: str, styles: str) -> str:
    pattern, table = _synonym_table(styles)

    def swap(m: re.Match[str]) -> str:
        choices = table[m.group()]
        return rnd.choice(choices) if choices and rnd.random() < 0.4 else m.group()

    return pattern.sub(swap, text)


def _render(rnd: random.Random, template: str, says: list[str], note: str) -> str:
    c = corpus()
    xq = rnd.choice(c.xq)
    asides = rnd.sample(c.aside, 2)
    text = template.format(
        hi=rnd.choice(c.hi), who=rnd.choice(c.who).format(xq=xq), when=rnd.choice(c.when), where=_where(rnd),
        say=says[0], say2=says[1], note=note, feel=rnd.choice(c.feel), ask=rnd.choice(c.ask),
        aside=asides[0], aside2=asides[1], n=rnd.randint(2, 9),
    )
    for doubled, single in (("，，", "，"), ("，。", "。"), ("？，", "？"), ("？。", "？"), ("！，", "！")):
        text = text.replace(doubled, single)
    return text.lstrip("，")


def generate_corpus(n_per_category: int = 200, seed: int = 0, *, styles: str = "train") -> list[tuple[str, str]]:
    """(text, category code) pairs in the given split's phrasing; deterministic for a seed."""
    _check(styles)
    rnd = random.Random(f"citybase.ops.corpus:{seed}:{styles}")
    frames = templates(styles)
    pairs: list[tuple[str, str]] = []
    for cat in CATEGORIES:
        say_all, note_all = corpus().say[cat.code], corpus().note[cat.code]
        say_train, say_held = _split(say_all, "train"), _split(say_all, "heldout")
        note_train, note_held = _split(note_all, "train"), _split(note_all, "heldout")
        for _ in range(n_per_category):
            first = _pick(rnd, say_train, say_held, styles)
            second = _pick(rnd, say_train, say_held, styles)
            if second == first:
                second = rnd.choice(say_train)
            note = _pick(rnd, note_train, note_held, styles)
            text = _reword(rnd, _render(rnd, rnd.choice(frames), [first, second], note), styles)
            if rnd.random() < 0.12:
                text = _typo(rnd, text)
            pairs.append((text, cat.code))
    rnd.shuffle(pairs)
    return pairs
