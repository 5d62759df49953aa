"""Mainland phone numbers: mobiles (11 digits, 13–19…) and landlines with an area code."""

from __future__ import annotations

import re

from citybase.core.errors import InvalidInput
from citybase.core.i18n import Msg

PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")


def check_phone(phone: str | None) -> str | None:
    """The number without spaces, None if empty; InvalidInput saying the accepted forms otherwise."""
    if not phone:
        return None
    p = phone.replace(" ", "")
    if not PHONE.match(p):
        raise InvalidInput(Msg('phone {phone!r} is not a mainland mobile or landline number', phone=phone),
                           fix=Msg('Use 11 digits starting 13–19 (mobile), or an area code and number such as 021-64871234.'))
    return p
