"""The audit event's canonical form: the specialised encoder that seals events writes exactly
the bytes the generic one (``chain_hash``, used by ``audit verify``) would."""

from __future__ import annotations

import random
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import pytest

from guards.audit import _CANONICAL, AuditEvent, canonical_body, iso_from_epoch, seal

TRICKY_TEXT = ["", "plain", 'quote " and \\ backslash', "line\nbreak\ttab", "nul\x00byte", "é ü 中文 🙂",
               "\u2028\u2029", "</untrusted>", "x" * 3000, "\x7f\x01"]
TRICKY_INT: list[Any] = [0, -1, 7, 2**63, None, True, False]
TRICKY_FLOAT: list[Any] = [0.0, 1.5, 0.1, 1e-7, 123456789.125, 5, float("inf"), float("nan")]


def generic_body(event: AuditEvent) -> str:
    body = event.to_dict()
    del body["hash"]
    return _CANONICAL.encode(body)


def random_event(rnd: random.Random, *, odd_types: bool = True) -> AuditEvent:
    """Tricky values; with ``odd_types``, also values of another type than the field declares
    (they must take the generic path and come out the same)."""
    values: dict[str, Any] = {}
    for f in fields(AuditEvent):
        kind = str(f.type)
        if kind == "str":
            values[f.name] = rnd.choice(TRICKY_TEXT + ([7, None] if odd_types else []))
        elif kind == "float":
            values[f.name] = rnd.choice(TRICKY_FLOAT)
        elif kind == "bool":
            values[f.name] = rnd.choice([True, False] + ([0, 1, None] if odd_types else []))
        else:
            values[f.name] = rnd.choice(TRICKY_INT if odd_types else [0, -1, 7, 2**63, None])
    return AuditEvent(**values)


def test_the_specialised_body_is_byte_for_byte_the_generic_canonical_json() -> None:
    rnd = random.Random(20261122)
    for _ in range(3000):
        event = random_event(rnd)
        assert canonical_body(event) == generic_body(event)


def test_a_sealed_event_verifies_with_the_generic_chain_hash() -> None:
    rnd = random.Random(7)
    prev = ""
    for _ in range(200):
        event = random_event(rnd, odd_types=False)
        event.duration_ms = rnd.choice([0.0, 1.25, 3])
        prev = seal(event, "stream-1", prev)
        assert event.chain_hash(event.prev_hash) == event.hash == prev
        assert "\x00" not in event.message  # sealing stores NUL-free text (PostgreSQL cannot hold NUL)


@pytest.mark.parametrize(
    ("epoch", "iso"),
    [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (datetime(2026, 11, 22, 15, 38, 37, 123900, tzinfo=UTC).timestamp(), "2026-11-22T15:38:37.123Z"),
        # truncated, like isoformat(timespec="milliseconds")
        (datetime(2026, 11, 22, 15, 38, 37, 999900, tzinfo=UTC).timestamp(), "2026-11-22T15:38:37.999Z"),
        (datetime(2026, 11, 22, 15, 38, 38, tzinfo=UTC).timestamp(), "2026-11-22T15:38:38.000Z"),
    ],
)
def test_timestamps_are_iso_8601_utc_with_milliseconds(epoch: float, iso: str) -> None:
    assert iso_from_epoch(epoch) == iso
