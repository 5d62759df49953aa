"""API shapes of the metrics."""

from __future__ import annotations

from pydantic import BaseModel


class MetricRow(BaseModel):
    """The metrics of one group (a department, street, grid, category, channel, or all), as 12345 practice defines them."""

    key: int | str | None  # the group's id or code ("all" for everything; None for reports of no department)
    name: str
    reports: int  # reports taken, merged repeats included
    volume: int  # cases: reports that were not merged into another
    open: int
    closed: int
    on_time_rate: float | None  # 按期办结率
    mean_handling_hours: float | None
    median_handling_hours: float | None
    satisfaction_rate: float | None  # 满意率
    repeat_rate: float | None  # 重复率
    return_rate: float | None  # 退单率
    first_contact_rate: float | None  # 先行联系率
