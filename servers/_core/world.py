"""The sandbox's one coherent incident, shared by every vendor fake. Vendor-neutral state.

Story (times relative to the sandbox start, ``anchor``): ``checkout`` v2.14.0 ships 50 minutes
before the anchor and swaps its payment client for an async pool; five minutes later the
``checkout_async_payments`` flag ramps from 10% to 50%; errors and p95 latency climb; the
"checkout error rate" monitor fires; INC-142 (SEV-2) is declared; the on-call discuss it in
#inc-checkout; CHK-311 tracks it; the runbook lives in Drive. A rollback through the deploy
fake changes what metrics, logs and traces show from that moment on.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


def _noise(*key: object) -> float:
    """Deterministic noise in [0, 1) for a key, so fakes agree with themselves across calls."""
    h = hashlib.blake2b(repr(key).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


@dataclass
class Release:
    version: str
    commit: str
    at: datetime
    by: str
    kind: str = "deploy"  # deploy | rollback
    env: str = "prod"
    status: str = "succeeded"
    history_id: int = 0


@dataclass
class Service:
    name: str
    team: str
    bad_versions: set[str] = field(default_factory=set)
    releases: list[Release] = field(default_factory=list)
    base_rps: float = 40.0
    base_error_rate: float = 0.005
    base_p95_ms: float = 180.0

    def release_at(self, t: datetime, env: str = "prod") -> Release | None:
        current = None
        for r in self.releases:
            if r.env == env and r.at <= t and r.status == "succeeded":
                current = r
        return current


class World:
    def __init__(self, anchor: datetime | None = None) -> None:
        self.lock = threading.RLock()
        self.anchor = (anchor or datetime.now(UTC)).replace(microsecond=0)
        a = self.anchor
        self.deploy_at = a - timedelta(minutes=50)
        self.flag_ramp_at = a - timedelta(minutes=45)
        self.monitor_fired_at = a - timedelta(minutes=42)
        self.incident_at = a - timedelta(minutes=35)
        self.services: dict[str, Service] = {}
        self._seed()

    def _seed(self) -> None:
        a = self.anchor
        days = timedelta(days=1)
        checkout = Service("checkout", "payments-platform", bad_versions={"2.14.0"})
        checkout.releases = [
            Release("2.13.3", "9f1c2e7", a - 6 * days, "ci-bot", history_id=11),
            Release("2.13.4", "4b7d0a1", a - 2 * days, "ci-bot", history_id=12),
            Release("2.14.0", "e3a91f4", self.deploy_at, "dana", history_id=13),
            Release("2.13.4", "4b7d0a1", a - 2 * days, "ci-bot", env="staging", history_id=3),
            Release("2.14.0", "e3a91f4", a - timedelta(hours=5), "dana", env="staging", history_id=4),
        ]
        payments = Service("payments", "payments-platform", base_rps=35, base_p95_ms=120)
        payments.releases = [Release("5.2.0", "77aa0c3", a - 4 * days, "ci-bot", history_id=7)]
        cart = Service("cart", "storefront", base_rps=60, base_p95_ms=90)
        cart.releases = [Release("1.8.2", "c0ffee1", a - 3 * days, "ci-bot", history_id=5)]
        frontend = Service("frontend", "storefront", base_rps=120, base_p95_ms=240)
        frontend.releases = [Release("3.40.1", "5a5e0d2", a - days, "ci-bot", history_id=9)]
        for s in (checkout, payments, cart, frontend):
            s.releases.sort(key=lambda r: r.at)
            self.services[s.name] = s

    # --- time -------------------------------------------------------------------------------
    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    # --- state the fakes read -------------------------------------------------------------------
    def version_at(self, service: str, t: datetime, env: str = "prod") -> str | None:
        with self.lock:
            r = self.services[service].release_at(t, env) if service in self.services else None
            return r.version if r else None

    def degraded(self, service: str, t: datetime) -> bool:
        """Whether a bad release was serving ``service`` (prod) at ``t``."""
        with self.lock:
            s = self.services.get(service)
            r = s.release_at(t) if s else None
            return bool(s and r and r.version in s.bad_versions)

    def error_rate(self, service: str, t: datetime) -> float:
        s = self.services[service]
        n = _noise("err", service, int(t.timestamp() // 60))
        if self.degraded(service, t):
            ramp = min(1.0, (t - self.deploy_at).total_seconds() / 600)
            return 0.02 + 0.10 * ramp + 0.02 * n
        return s.base_error_rate * (0.6 + 0.8 * n)

    def latency_p95_ms(self, service: str, t: datetime) -> float:
        s = self.services[service]
        n = _noise("lat", service, int(t.timestamp() // 60))
        if self.degraded(service, t):
            return 1200 + 400 * n
        return s.base_p95_ms * (0.85 + 0.3 * n)

    def request_rate(self, service: str, t: datetime) -> float:
        s = self.services[service]
        return s.base_rps * (0.9 + 0.2 * _noise("rps", service, int(t.timestamp() // 60)))

    def noise(self, *key: object) -> float:
        return _noise(*key)

    # --- state the deploy fakes change --------------------------------------------------------
    def record_release(self, service: str, version: str, commit: str, by: str, *, env: str = "prod",
                       kind: str = "deploy", at: datetime | None = None) -> Release:
        with self.lock:
            s = self.services[service]
            rel = Release(version, commit, at or self.now(), by, kind=kind, env=env,
                          history_id=max((r.history_id for r in s.releases), default=0) + 1)
            s.releases.append(rel)
            s.releases.sort(key=lambda r: r.at)
            return rel

    def releases(self, service: str, env: str = "prod") -> list[Release]:
        with self.lock:
            return [r for r in self.services[service].releases if r.env == env]
