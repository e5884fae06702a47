"""Time windows for rules: weekly ("Fri 16:00" to "Mon 08:00") or absolute, in an IANA zone. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEKLY = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)[a-z]*\s+(\d{1,2}):(\d{2})$", re.I)


@dataclass(frozen=True)
class WeeklyPoint:
    minute_of_week: int


Point = WeeklyPoint | datetime


def parse_point(text: str) -> Point:
    """``Fri 16:00`` (weekly) or an ISO 8601 date-time (absolute, naive means the window's zone)."""
    m = _WEEKLY.match(text.strip())
    if m:
        day = _DAYS.index(m.group(1).lower()[:3])
        hour, minute = int(m.group(2)), int(m.group(3))
        if hour > 23 or minute > 59:
            raise ValueError(f"bad time in {text!r}")
        return WeeklyPoint(day * 1440 + hour * 60 + minute)
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"bad window bound {text!r}; use a weekly time like 'Fri 16:00' or an ISO date-time "
            "like '2026-12-24T00:00'"
        ) from None


def in_window(now: datetime, start: str, end: str, zone: str) -> bool:
    """Whether ``now`` (aware) falls in [start, end) interpreted in ``zone``."""
    return points_contain(now, parse_point(start), parse_point(end), ZoneInfo(zone))


def points_contain(now: datetime, a: Point, b: Point, tz: ZoneInfo) -> bool:
    """:func:`in_window` on bounds already parsed (a policy's ``Window`` keeps them)."""
    if isinstance(a, WeeklyPoint) and isinstance(b, WeeklyPoint):
        local = now.astimezone(tz)
        t = local.weekday() * 1440 + local.hour * 60 + local.minute
        if a.minute_of_week <= b.minute_of_week:
            return a.minute_of_week <= t < b.minute_of_week
        return t >= a.minute_of_week or t < b.minute_of_week  # wraps over the week's end
    if isinstance(a, datetime) and isinstance(b, datetime):
        a = a if a.tzinfo else a.replace(tzinfo=tz)
        b = b if b.tzinfo else b.replace(tzinfo=tz)
        return a <= now < b
    raise ValueError("a window's 'from' and 'to' must both be weekly times or both be date-times")
