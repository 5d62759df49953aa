"""Masking of personal data for callers whose role does not need it in full."""

from __future__ import annotations


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
