"""Durations ("15m", "1h30m", "2d", "PT15M", "90s") parsed to seconds. Pure."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_COMPACT = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_ISO = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError naming the accepted forms."""
    s = text.strip().lower()
    if not s:
        raise ValueError("empty duration; use forms like 15m, 1h, 2d, 1h30m or PT15M")
    if s.startswith("p"):
        m = _ISO.match(s.upper())
        if m and any(m.groups()):
            w, d, h, mi, sec = (float(g) if g else 0.0 for g in m.groups())
            return w * 604800 + d * 86400 + h * 3600 + mi * 60 + sec
    pos, total = 0, 0.0
    for m in _COMPACT.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or pos == 0:
        raise ValueError(f"bad duration {text!r}; use forms like 15m, 1h, 2d, 1h30m or PT15M")
    return total


def format_duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            parts.append(f"{s // size}{unit}")
            s %= size
    return "".join(parts)
