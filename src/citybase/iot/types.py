"""The device types, declared once: the Smart Data Models type each device is in the twin, the attributes a
reading may carry (UN/CEFACT unit code, valid range or allowed values), how often it reports, the department
that owns such devices, and the rules that turn readings into alarms.

A rule is one of three kinds:

* ``threshold`` — ``above`` (or ``below``) a value for at least ``duration`` seconds raises; it clears only when
  the value is back past ``clear`` (the hysteresis band), so a value wavering around the limit does not flap;
  for an enumerated attribute, ``equals`` one of the listed states;
* ``rate`` — the value changes by more than ``above`` per minute between two readings (a flood point rising
  fast, a manhole cover tilting);
* ``silence`` — no reading at all for ``duration`` seconds (a device gone quiet); checked by a timer.

``alarm_type`` names what the incident loop maps to a category (``ops.catalogue.defaults.ALARM_CATEGORIES``);
a rule with ``incident=False`` raises an alarm for the device page only (a device offline is the owner's
maintenance, not a city incident)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal


@dataclass(frozen=True)
class Attribute:
    name: str  # the Smart Data Models attribute name (the twin's term)
    title: str  # Chinese, for pages
    unit: str | None = None  # UN/CEFACT common code (GQ µg/m³, 2N dB, MTR m, CEL °C, P1 %, KMH km/h, MQH m³/h …)
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] = ()  # an enumerated attribute's allowed values (then min/max are unused)

    @property
    def numeric(self) -> bool:
        return not self.values


@dataclass(frozen=True)
class Rule:
    key: str  # unique within the type
    kind: Literal["threshold", "rate", "silence"]
    alarm_type: str
    title: str  # Chinese
    attribute: str | None = None  # None for silence
    above: float | None = None
    below: float | None = None
    equals: tuple[str, ...] = ()
    clear: float | None = None  # the value past which a threshold alarm clears (hysteresis); default the limit
    duration: float = 0.0  # seconds the condition must hold (threshold) or the silence must last
    severity: Literal["critical", "major", "minor", "warning"] = "major"
    incident: bool = True


@dataclass(frozen=True)
class DeviceType:
    code: str  # citybase's short code, in device ids and topics
    sdm_type: str  # the Smart Data Models entity type in the twin
    title: str
    department: str  # the owning department's short name (registry departments)
    interval: float  # seconds between readings when healthy
    attributes: tuple[Attribute, ...]
    rules: tuple[Rule, ...] = ()
    tags: tuple[str, ...] = field(default_factory=tuple)

    def attribute(self, name: str) -> Attribute | None:
        return self._by_name.get(name)

    @cached_property
    def _by_name(self) -> dict[str, Attribute]:
        """The attributes by name (looked up for every datapoint; kept on the instance: a cache keyed on the
        type hashed the whole frozen declaration, rules and all, on every lookup)."""
        return {a.name: a for a in self.attributes}

    @property
    def offline_after(self) -> float:
        """A device is offline when silent for three reporting intervals (at least five minutes)."""
        return max(3 * self.interval, 300.0)


def _offline(dtype_interval: float, *, incident: bool = False, alarm_type: str = "device_offline") -> Rule:
    return Rule("offline", "silence", alarm_type, "设备离线", duration=max(3 * dtype_interval, 300.0),
                severity="warning", incident=incident)


DEVICE_TYPES: dict[str, DeviceType] = {t.code: t for t in (
    DeviceType("aq", "AirQualityObserved", "空气质量监测站", "生态环境局", 300.0, (
        Attribute("pm25", "PM2.5", "GQ", 0, 1000), Attribute("pm10", "PM10", "GQ", 0, 2000),
        Attribute("no2", "二氧化氮", "GQ", 0, 2000), Attribute("o3", "臭氧", "GQ", 0, 1000),
        Attribute("temperature", "气温", "CEL", -40, 60), Attribute("relativeHumidity", "相对湿度", "P1", 0, 100)),
        (Rule("pm10_high", "threshold", "dust_over_limit", "PM10 超标（扬尘）", "pm10", above=150, clear=120,
              duration=600, severity="major"), _offline(300.0))),
    DeviceType("noise", "NoiseLevelObserved", "噪声监测点", "生态环境局", 60.0, (
        Attribute("LAeq", "等效声级", "2N", 20, 140), Attribute("LAmax", "最大声级", "2N", 20, 160)),
        (Rule("laeq_high", "threshold", "noise_over_limit", "噪声超标", "LAeq", above=70, clear=65, duration=300,
              severity="minor"), _offline(60.0))),
    DeviceType("flood", "FloodMonitoring", "积水监测点", "水务局", 60.0, (
        Attribute("currentLevel", "积水深度", "MTR", 0, 3), Attribute("batteryLevel", "电量", "C62", 0, 1)),
        (Rule("level_high", "threshold", "water_level_high", "道路积水超警戒", "currentLevel", above=0.15, clear=0.10,
              duration=120, severity="critical"),
         Rule("level_rising", "rate", "water_level_high", "积水快速上涨", "currentLevel", above=0.05,
              severity="major"), _offline(60.0))),
    DeviceType("parking", "ParkingSpot", "智能泊位", "建管委", 120.0, (
        Attribute("status", "泊位状态", None, values=("free", "occupied", "closed", "unknown")),), (_offline(120.0),)),
    DeviceType("traffic", "TrafficFlowObserved", "交通流量检测器", "公安分局", 60.0, (
        Attribute("intensity", "车流量（辆/分）", "E50", 0, 500), Attribute("averageVehicleSpeed", "平均车速", "KMH", 0, 200),
        Attribute("occupancy", "占有率", "C62", 0, 1)),
        (Rule("congested", "threshold", "traffic_congestion", "交通拥堵", "averageVehicleSpeed", below=10, clear=20,
              duration=600, severity="minor"), _offline(60.0))),
    DeviceType("light", "Streetlight", "智慧路灯", "建管委", 300.0, (
        Attribute("powerState", "开关状态", None, values=("on", "off", "low", "bootingUp")),
        Attribute("status", "运行状态", None, values=("ok", "defectiveLamp", "columnIssue", "brokenConnector")),
        Attribute("illuminanceLevel", "照度比", "C62", 0, 1)),
        (Rule("lamp_fault", "threshold", "lamp_fault", "路灯故障", "status",
              equals=("defectiveLamp", "columnIssue", "brokenConnector"), severity="minor"), _offline(300.0))),
    DeviceType("waste", "WasteContainer", "智能垃圾箱", "绿化市容局", 600.0, (
        Attribute("fillingLevel", "满溢度", "C62", 0, 1), Attribute("temperature", "箱内温度", "CEL", -40, 120)),
        (Rule("full", "threshold", "container_full", "垃圾箱满溢", "fillingLevel", above=0.9, clear=0.5,
              duration=0, severity="minor"),
         Rule("hot", "threshold", "smoke_detected", "垃圾箱温度异常（火情隐患）", "temperature", above=70, clear=50,
              duration=60, severity="critical"), _offline(600.0))),
    DeviceType("manhole", "ManholeCover", "智能井盖", "建管委", 600.0, (
        Attribute("tiltAngle", "倾角", "DD", 0, 180), Attribute("waterLevel", "井内水位", "MTR", 0, 10)),
        (Rule("tilted", "threshold", "manhole_cover_open", "井盖倾斜或移位", "tiltAngle", above=15, clear=5,
              duration=0, severity="critical"),
         Rule("tilting", "rate", "manhole_cover_open", "井盖倾角突变", "tiltAngle", above=10, severity="critical"),
         _offline(600.0))),
    DeviceType("watermeter", "WaterMeter", "独居老人智能水表", "民政局", 3600.0, (
        Attribute("flow", "小时用水量", "MQH", 0, 10), Attribute("totalVolume", "累计读数", "MTQ", 0, 1e7)),
        (Rule("no_use", "threshold", "water_meter_silent", "独居老人12小时未用水", "flow", below=0.001, clear=0.005,
              duration=12 * 3600, severity="major"), _offline(3600.0))),
    DeviceType("hydrant", "FireHydrant", "智能消火栓", "消防支队", 900.0, (
        Attribute("pressure", "管网压力", "MPA", 0, 2), Attribute("tiltAngle", "倾角", "DD", 0, 180)),
        (Rule("pressure_low", "threshold", "hydrant_pressure_low", "消火栓水压不足", "pressure", below=0.1, clear=0.15,
              duration=300, severity="major"),
         Rule("knocked", "threshold", "hydrant_pressure_low", "消火栓被撞倾斜", "tiltAngle", above=20, clear=5,
              severity="major"), _offline(900.0))),
    DeviceType("smoke", "SmokeDetector", "独立式烟感", "消防支队", 1800.0, (
        Attribute("smokeDetected", "烟雾", None, values=("no", "yes")), Attribute("batteryLevel", "电量", "C62", 0, 1)),
        (Rule("smoke", "threshold", "smoke_detected", "烟感报警", "smokeDetected", equals=("yes",),
              severity="critical"), _offline(1800.0))),
)}


def device_type(code: str) -> DeviceType | None:
    return DEVICE_TYPES.get(code)


# The English of every title above, for pages and answers in English (Chinese first: the declarations).
ENGLISH = {
    "PM10": "PM10", "PM10 超标（扬尘）": "PM10 over the limit (dust)", "PM2.5": "PM2.5", "二氧化氮": "Nitrogen dioxide",
    "井内水位": "Water level in the well", "井盖倾斜或移位": "Manhole cover tilted or moved",
    "井盖倾角突变": "Manhole cover tilting suddenly", "交通拥堵": "Traffic congestion",
    "交通流量检测器": "Traffic counter", "倾角": "Tilt angle", "占有率": "Occupancy", "噪声监测点": "Noise monitor",
    "噪声超标": "Noise over the limit", "垃圾箱温度异常（火情隐患）": "Waste container too hot (fire risk)",
    "垃圾箱满溢": "Waste container full", "小时用水量": "Water use per hour", "平均车速": "Average speed",
    "开关状态": "Power state", "智慧路灯": "Smart street light", "智能井盖": "Smart manhole cover",
    "智能垃圾箱": "Smart waste container", "智能泊位": "Smart parking spot", "智能消火栓": "Smart fire hydrant",
    "最大声级": "Maximum level", "气温": "Air temperature", "泊位状态": "Spot status", "消火栓水压不足": "Hydrant pressure low",
    "消火栓被撞倾斜": "Hydrant knocked over", "满溢度": "Filling level", "烟感报警": "Smoke detected", "烟雾": "Smoke",
    "照度比": "Illuminance", "独居老人12小时未用水": "No water used for 12 hours (elderly person living alone)",
    "独居老人智能水表": "Water meter of an elderly person living alone", "独立式烟感": "Smoke detector",
    "电量": "Battery", "相对湿度": "Relative humidity", "积水快速上涨": "Water rising fast", "积水深度": "Water depth",
    "积水监测点": "Flood monitoring point", "空气质量监测站": "Air-quality station", "等效声级": "Equivalent level (LAeq)",
    "管网压力": "Main pressure", "箱内温度": "Temperature inside", "累计读数": "Meter reading", "臭氧": "Ozone",
    "设备离线": "Device offline", "路灯故障": "Street light fault", "车流量（辆/分）": "Vehicles per minute",
    "运行状态": "Operating status", "道路积水超警戒": "Street flooding over the alert level",
}


def shown(title: str) -> str:
    """A title in the current request's language (English when asked and known; else the Chinese)."""
    from citybase.core.i18n import current_lang

    return ENGLISH.get(title, title) if current_lang() == "en" else title
