"""Texts of the pages: Chinese first, English available."""

from __future__ import annotations

LANGS = {"zh": "中文", "en": "English"}

_TEXTS = {
    "zh": {
        "title": "城市数字底座", "subtitle": "时空底座 · 基础库", "map": "辖区地图", "streets": "街镇",
        "communities": "居村", "grids": "网格", "buildings": "建筑", "persons": "自然人", "legal_entities": "法人",
        "departments": "部门", "registry": "基础库", "spatial": "时空底座", "show_grids": "显示网格",
        "locate_hint": "点击地图查询所在网格", "grid": "网格", "community": "居村", "street": "街镇",
        "loading": "加载中…", "api_docs": "接口文档", "outside": "不在辖区网格内",
    },
    "en": {
        "title": "citybase", "subtitle": "Spatial base · Base registries", "map": "District map", "streets": "Streets",
        "communities": "Communities", "grids": "Grids", "buildings": "Buildings", "persons": "Persons",
        "legal_entities": "Legal entities", "departments": "Departments", "registry": "Base registries",
        "spatial": "Spatial base", "show_grids": "Show grids", "locate_hint": "Click the map to find the grid",
        "grid": "Grid", "community": "Community", "street": "Street", "loading": "Loading…", "api_docs": "API docs",
        "outside": "Outside every grid of the district",
    },
}


def texts(lang: str) -> dict[str, str]:
    return _TEXTS.get(lang, _TEXTS["zh"])
