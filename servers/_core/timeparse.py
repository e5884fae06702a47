"""Time inputs: ISO 8601, epoch seconds/ms, relative (``now-15m``, ``15m``, ``today``), IANA zones.

Every time-windowed tool takes ``from`` / ``to`` through :func:`resolve_window`, so they all
behave the same. Outputs are ISO 8601 UTC. Pure: ``now`` is always passed in.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from guards.durations import format_duration, parse_duration
from guards.errors import InvalidArguments

_REL = re.compile(r"^now\s*(?:([+-])\s*(.+))?$", re.I)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArguments(
            f"tz: unknown IANA zone {name!r}", hint="use a zone name like 'UTC' or 'Europe/Berlin'"
        ) from None


def parse_time(value: str | int | float, now: datetime, *, field: str = "time", tz: str | None = None) -> datetime:
    """An aware UTC datetime for ``value``. A bare duration (``15m``) means that long ago."""
    if isinstance(value, bool):
        raise InvalidArguments(f"{field}: expected a time, got a boolean")
    if isinstance(value, int | float):
        return _epoch(float(value))
    s = value.strip()
    if not s:
        raise InvalidArguments(f"{field}: empty time", hint=_FORMS)
    if re.fullmatch(r"\d{9,13}(\.\d+)?", s):
        return _epoch(float(s))
    low = s.lower()
    local_tz = zone(tz)
    if low in ("today", "yesterday"):
        midnight = now.astimezone(local_tz).replace(hour=0, minute=0, second=0, microsecond=0)
        if low == "yesterday":
            midnight -= timedelta(days=1)
        return midnight.astimezone(UTC)
    m = _REL.match(low)
    try:
        if m:
            if not m.group(1):
                return now.astimezone(UTC)
            delta = timedelta(seconds=parse_duration(m.group(2)))
            return (now - delta if m.group(1) == "-" else now + delta).astimezone(UTC)
        if low.startswith("-") or re.fullmatch(r"\d+(\.\d+)?(ms|s|m|h|d|w)(\d.*)?", low) or low.startswith("p"):
            return (now - timedelta(seconds=parse_duration(low.lstrip("-")))).astimezone(UTC)
    except ValueError:
        raise InvalidArguments(f"{field}: cannot read {value!r}", hint=_FORMS) from None
    try:
        dt = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith(("Z", "z")) else s)
    except ValueError:
        raise InvalidArguments(f"{field}: cannot read {value!r}", hint=_FORMS) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=local_tz)
    return dt.astimezone(UTC)


_FORMS = (
    "use ISO 8601 ('2026-11-22T09:00:00Z'), epoch seconds, or relative times "
    "('now', 'now-15m', '1h' meaning one hour ago, 'today', 'yesterday')"
)


def _epoch(v: float) -> datetime:
    if v > 1e11:  # milliseconds
        v /= 1000
    return datetime.fromtimestamp(v, UTC)


def resolve_window(
    start: str | int | float | None,
    end: str | int | float | None,
    now: datetime,
    *,
    default: str = "1h",
    max_range: str | None = None,
    tz: str | None = None,
) -> tuple[datetime, datetime]:
    """(start, end) in UTC. Defaults: end = now, start = end - ``default``."""
    end_dt = parse_time(end, now, field="to", tz=tz) if end not in (None, "") else now.astimezone(UTC)
    start_dt = (
        parse_time(start, now, field="from", tz=tz)
        if start not in (None, "")
        else end_dt - timedelta(seconds=parse_duration(default))
    )
    if start_dt >= end_dt:
        raise InvalidArguments(
            f"from ({iso(start_dt)}) must be before to ({iso(end_dt)})",
            hint="swap them, or use a relative 'from' such as 'now-1h'",
        )
    if max_range is not None:
        limit = parse_duration(max_range)
        if (end_dt - start_dt).total_seconds() > limit:
            raise InvalidArguments(
                f"from/to: window of {format_duration((end_dt - start_dt).total_seconds())} "
                f"exceeds the maximum of {max_range}",
                hint=f"narrow the window to at most {max_range}",
            )
    return start_dt, end_dt


def iso(dt: datetime) -> str:
    """ISO 8601 UTC with a Z, to the second (milliseconds when present)."""
    dt = dt.astimezone(UTC)
    spec = "milliseconds" if dt.microsecond else "seconds"
    return dt.isoformat(timespec=spec).replace("+00:00", "Z")


def iso_seconds(dt: datetime) -> str:
    """ISO 8601 UTC to the second, even when there are milliseconds: what a reader needs, in fewer tokens."""
    return iso(dt.replace(microsecond=0))


def parse_lenient_dt(value: object) -> datetime | None:
    """A vendor timestamp, leniently: ISO 8601 (naive means UTC, digits past microseconds dropped) or
    epoch seconds / ms / ns (numbers or digit strings). Empty, non-positive, unreadable values and
    Go's zero time (``0001-01-01...``) are None. For parsing responses, never user input."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        if not value > 0 or value != value:
            return None
        v = float(value)
        v = v / 1e9 if v > 1e16 else v / 1000 if v > 1e11 else v
        try:
            return datetime.fromtimestamp(v, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value and not value.startswith("0001-01-01"):
        if value.isdigit():
            return parse_lenient_dt(int(value))
        s = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            return None
        return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)
    return None


def short_time(dt: datetime) -> str:
    """Compact UTC time for dense lines: ``09:14:03`` (dates are in the header)."""
    return dt.astimezone(UTC).strftime("%H:%M:%S")
