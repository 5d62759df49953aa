"""Address text → building: normalisation, exact keys and fuzzy matching (rapidfuzz)."""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import fuzz, process

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_NUMBER = re.compile(r"[零〇一二两三四五六七八九十百千]+(?=[弄号幢栋室楼])")
_NOISE = re.compile(r"[\s,，。、·\-—()（）]+")
_ROAD = re.compile(r"^(.+?(?:大道|公路|支路|路|街|巷))")
_NUMBERS = re.compile(r"\d+")


def _cn_to_int(s: str) -> int:
    total, num = 0, 0
    for ch in s:
        if ch in _CN_DIGITS:
            num = _CN_DIGITS[ch]
        else:
            unit = {"十": 10, "百": 100, "千": 1000}[ch]
            total += (num or 1) * unit
            num = 0
    return total + num


def normalize(text: str, prefixes: Iterable[str] = ()) -> str:
    """The comparable key of an address: NFKC (full-width → ASCII), no spaces or punctuation,
    Chinese numerals before 弄/号 turned into digits, and leading city/district names removed."""
    s = unicodedata.normalize("NFKC", text).strip()
    s = _NOISE.sub("", s)
    s = _CN_NUMBER.sub(lambda m: str(_cn_to_int(m.group(0))), s)
    for p in ("中国", "上海市", "上海", *prefixes):
        if p and s.startswith(p):
            s = s[len(p):]
    return s


def road_of(key: str) -> str | None:
    """The road name at the head of a normalised key (…路/街/大道/公路/支路/巷), if any."""
    m = _ROAD.match(key)
    return m.group(1) if m else None


@dataclass(frozen=True)
class Match:
    building_id: int
    address: str
    score: float  # 0–100
    how: str  # "exact" | "fuzzy"


class AddressIndex:
    """All buildings' keys in memory: exact by dict, fuzzy within the best-matching roads."""

    def __init__(self, rows: Iterable[tuple[int, str, str, str]], prefixes: Iterable[str] = ()) -> None:
        """rows: (building_id, address, address_key, road)."""
        self.prefixes = tuple(prefixes)
        self.by_key: dict[str, tuple[int, str]] = {}
        self.by_road: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
        for bid, address, key, road in rows:
            self.by_key[key] = (bid, address)
            self.by_road[road].append((key, bid, address))
        self.roads = list(self.by_road)
        self._road_keys = {r: [k for k, _, _ in v] for r, v in self.by_road.items()}
        # Within a road, buildings by the numbers of their address (弄 and 号): a fuzzy query that
        # keeps its numbers is scored against a handful of keys instead of the whole road.
        self._by_numbers: dict[tuple[str, tuple[str, ...]], list[int]] = defaultdict(list)
        for r, entries in self.by_road.items():
            for pos, (k, _, _) in enumerate(entries):
                self._by_numbers[(r, tuple(_NUMBERS.findall(k[len(r):])))].append(pos)

    def __len__(self) -> int:
        return len(self.by_key)

    def match(self, text: str, limit: int = 5, min_score: float = 60.0) -> list[Match]:
        """Best buildings for an address in words: the exact key first, else fuzzy candidates by score."""
        key = normalize(text, self.prefixes)
        hit = self.by_key.get(key)
        if hit:
            return [Match(hit[0], hit[1], 100.0, "exact")]
        road = road_of(key) or key
        roads = process.extract(road, self.roads, scorer=fuzz.ratio, limit=3, score_cutoff=50)
        found: list[Match] = []
        for rname, rscore, _ in roads:
            numbers = tuple(_NUMBERS.findall(key[len(road):] if key.startswith(road) else key))
            same = self._by_numbers.get((rname, numbers))
            keys = self._road_keys[rname]
            pool = {p: keys[p] for p in same} if same else keys
            for _k, score, pos in process.extract(key, pool, scorer=fuzz.ratio, limit=limit, score_cutoff=min_score):
                _, bid, address = self.by_road[rname][pos]
                found.append(Match(bid, address, round(score * (0.5 + rscore / 200), 1), "fuzzy"))
        found.sort(key=lambda m: -m.score)
        return found[:limit]
