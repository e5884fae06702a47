"""Signed plan ids: the handle that makes writes two-phase. Standalone, typed, pure but for files.

A plan id carries what was planned (the arguments the policy decides on, plus what the plan
resolved: a commit, a target) and is signed with HMAC-SHA256, so ``apply`` can trust it
without a shared plan store — replicas need only share the key. It expires, is bound to the
principal that planned it and to its argument digest, and is single use: :func:`claim`
spends it through the limits store's ``claim_once`` (memory, or Redis across replicas).

Format: ``pl1.<nonce>.<payload>.<signature>`` (URL-safe base64, no padding). The nonce comes
first so that the first 64 characters, which audit events keep, identify the plan.

Approvals for plans that a policy rule sends to named humans are small signed files in the
state directory (:class:`ApprovalStore`), bound to one exact plan id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from guards.audit import canonical_json, digest_text
from guards.errors import AwaitingApproval, Outcome, ToolFailure
from guards.limits import LimitStore

__all__ = [
    "MIN_KEY_BYTES",
    "PLAN_PREFIX",
    "Approval",
    "ApprovalStore",
    "PlanAwaitingApproval",
    "PlanClaims",
    "PlanRefused",
    "PlanSigner",
    "check_principal",
    "claim",
    "decode_plan_id",
    "load_plan_key",
    "plan_digest",
]

PLAN_PREFIX = "pl1"
MIN_KEY_BYTES = 32
_SIG_BYTES = 16  # truncated HMAC-SHA256: 128 bits
KEY_FILE = "plan-key"


class PlanAwaitingApproval(AwaitingApproval):
    """Apply of a plan that a rule sends to named approvers, before one of them approved it."""

    def __init__(self, message: str, *, rule_id: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rule_id = rule_id


class PlanRefused(ToolFailure):
    """A plan id that cannot be applied. ``rule_id`` says which check refused it."""

    outcome = Outcome.DENIED

    def __init__(self, message: str, *, rule_id: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rule_id = rule_id


_REPLAN = "call deploy_plan again for a fresh plan_id"


def _b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def plan_digest(args: Mapping[str, Any]) -> str:
    """The argument digest a plan is bound to (same canonical JSON as audit digests)."""
    return digest_text(canonical_json(dict(args)))


@dataclass(frozen=True)
class PlanClaims:
    """What a plan id says. Only trustworthy after :meth:`PlanSigner.verify`."""

    nonce: str
    principal: str
    args: dict[str, Any]
    binding: dict[str, Any]
    issued_at: int
    expires_at: int
    digest: str  # of ``args``: recomputed from the signed payload, never trusted from it
    approvers: tuple[str, ...] = ()
    status: str = "ready"  # "ready" | "awaiting_approval"
    raw: str = field(default="", repr=False)

    @property
    def ref(self) -> str:
        """A short handle for people and audit lines: ``pl_<nonce>``."""
        return f"pl_{self.nonce}"

    @property
    def id_hash(self) -> str:
        """Hash of the exact plan id: what an approval is bound to."""
        return hashlib.sha256(self.raw.encode()).hexdigest()

    def expires_iso(self) -> str:
        return datetime.fromtimestamp(self.expires_at, UTC).isoformat().replace("+00:00", "Z")


def _signing_input(nonce: str, payload_b64: str) -> bytes:
    return f"{PLAN_PREFIX}.{nonce}.{payload_b64}".encode("ascii")


def decode_plan_id(plan_id: str) -> PlanClaims:
    """Parse a plan id without checking its signature (for the policy to decide on its args).

    Raises :class:`PlanRefused` (``plans.malformed``) when it is not a plan id at all.
    """
    bad = PlanRefused(
        "plan_id is not a plan id Spyglass issued (it does not parse)",
        rule_id="plans.malformed",
        hint="pass the plan_id from deploy_plan's result unchanged, or " + _REPLAN,
    )
    parts = plan_id.strip().split(".")
    if len(parts) != 4 or parts[0] != PLAN_PREFIX or not all(parts):
        raise bad
    _, nonce, payload_b64, _sig = parts
    try:
        data = json.loads(_b64d(payload_b64))
    except (ValueError, TypeError):
        raise bad from None
    if not isinstance(data, dict) or data.get("n") != nonce:
        raise bad
    try:
        args = data["a"]
        binding = data.get("b", {})
        approvers = data.get("ap", [])
        if not isinstance(args, dict) or not isinstance(binding, dict) or not isinstance(approvers, list):
            raise bad
        return PlanClaims(
            nonce=nonce,
            principal=str(data["p"]),
            args=args,
            binding=binding,
            issued_at=int(data["i"]),
            expires_at=int(data["e"]),
            digest=plan_digest(args),
            approvers=tuple(str(a) for a in approvers),
            status=str(data.get("s", "ready")),
            raw=plan_id.strip(),
        )
    except (KeyError, TypeError, ValueError):
        raise bad from None


class PlanSigner:
    """Mints and verifies plan ids with one HMAC key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"plan key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def _sign(self, data: bytes) -> str:
        return _b64e(hmac.new(self._key, data, hashlib.sha256).digest()[:_SIG_BYTES])

    def mint(
        self,
        *,
        principal: str,
        args: Mapping[str, Any],
        now: datetime,
        ttl_s: float,
        binding: Mapping[str, Any] | None = None,
        approvers: tuple[str, ...] = (),
        status: str = "ready",
        nonce: str | None = None,
    ) -> str:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        nonce = nonce or secrets.token_hex(6)
        issued = int(now.timestamp())
        body: dict[str, Any] = {
            "n": nonce,
            "p": principal,
            "a": dict(args),
            "i": issued,
            "e": issued + int(ttl_s),
        }
        if binding:
            body["b"] = dict(binding)
        if approvers:
            body["ap"] = list(approvers)
        if status != "ready":
            body["s"] = status
        payload = _b64e(canonical_json(body).encode())
        return f"{PLAN_PREFIX}.{nonce}.{payload}.{self._sign(_signing_input(nonce, payload))}"

    def verify(self, plan_id: str, *, principal: str | None, now: datetime) -> PlanClaims:
        """The plan's claims, or :class:`PlanRefused` naming why it cannot be used.

        ``principal=None`` skips the principal binding (an approver or a status read, not an apply).
        """
        claims = decode_plan_id(plan_id)
        _, nonce, payload, sig = claims.raw.split(".")
        if not hmac.compare_digest(sig, self._sign(_signing_input(nonce, payload))):
            raise PlanRefused(
                f"plan {claims.ref}: signature does not match; the plan id was altered or signed with "
                "another key",
                rule_id="plans.signature",
                hint="pass the plan_id exactly as deploy_plan returned it, or " + _REPLAN,
            )
        if principal is not None:
            check_principal(claims, principal)
        if int(now.timestamp()) >= claims.expires_at:
            raise PlanRefused(
                f"plan {claims.ref} expired at {claims.expires_iso()}",
                rule_id="plans.expired",
                hint=_REPLAN + " (plans are short-lived on purpose: preconditions change)",
            )
        return claims


def check_principal(claims: PlanClaims, principal: str) -> None:
    if not hmac.compare_digest(claims.principal.encode(), principal.encode()):
        raise PlanRefused(
            f"plan {claims.ref} was made by {claims.principal!r}, not by {principal!r}; a plan can only be "
            "applied by the principal that planned it",
            rule_id="plans.principal",
            hint="plan it yourself with deploy_plan",
        )


async def claim(limits: LimitStore, claims: PlanClaims, now: datetime) -> None:
    """Spend the plan. Exactly one caller ever gets through for a given plan id."""
    ttl = max(1.0, claims.expires_at - now.timestamp()) + 3600.0
    if not await limits.claim_once(f"plan:{claims.nonce}", ttl):
        raise PlanRefused(
            f"plan {claims.ref} was already applied (plan ids are single use)",
            rule_id="plans.replayed",
            hint="check the operation with deploy_get_status, or " + _REPLAN,
        )


# --- keys -------------------------------------------------------------------------------------


def load_plan_key(state_dir: Path, configured: str | None = None) -> bytes:
    """The configured key (a fleet shares one), else one generated once into ``state_dir``.

    The generated key file is created with mode 0600 and never overwritten, so every process
    on the machine (server, ``spyglass approve``) signs and verifies with the same key.
    """
    if configured:
        key = configured.encode()
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the configured plan key is shorter than {MIN_KEY_BYTES} bytes; use a random "
                             "secret such as `openssl rand -hex 32`")
        return key
    path = state_dir / KEY_FILE
    try:
        key = path.read_bytes().strip()
        if len(key) >= MIN_KEY_BYTES:
            return key
        raise ValueError(f"{path} holds a key shorter than {MIN_KEY_BYTES} bytes; delete it to regenerate")
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(fresh)
    return fresh


# --- approvals --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Approval:
    plan_ref: str
    approver: str
    at: str


class ApprovalStore:
    """Approvals as signed files under ``<state_dir>/approvals``: one per plan, bound to its exact id."""

    def __init__(self, directory: Path, key: bytes) -> None:
        self.dir = directory
        self._key = key

    def _sig(self, id_hash: str, approver: str, at: str) -> str:
        msg = f"approval|{id_hash}|{approver}|{at}".encode()
        return _b64e(hmac.new(self._key, msg, hashlib.sha256).digest())

    def _path(self, claims: PlanClaims) -> Path:
        return self.dir / f"{claims.nonce}.json"

    def record(self, claims: PlanClaims, approver: str, now: datetime) -> Approval:
        """Record that ``approver`` approved exactly this plan (``claims`` must be verified)."""
        if not approver.strip():
            raise ValueError("approver must be named")
        at = now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        body = {"plan": claims.id_hash, "ref": claims.ref, "approver": approver, "at": at,
                "sig": self._sig(claims.id_hash, approver, at)}
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self._path(claims).with_suffix(".tmp")
        tmp.write_text(json.dumps(body, sort_keys=True))
        tmp.replace(self._path(claims))
        return Approval(claims.ref, approver, at)

    def find(self, claims: PlanClaims) -> Approval | None:
        """The approval of exactly this plan id, if one was recorded and its signature holds."""
        try:
            body = json.loads(self._path(claims).read_text())
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(body, dict) or body.get("plan") != claims.id_hash:
            return None
        approver, at = str(body.get("approver", "")), str(body.get("at", ""))
        if not hmac.compare_digest(str(body.get("sig", "")), self._sig(claims.id_hash, approver, at)):
            return None
        return Approval(claims.ref, approver, at)

    def require(self, claims: PlanClaims, approvers: tuple[str, ...], *, rule_id: str) -> Approval:
        """The approval by one of ``approvers``; :class:`AwaitingApproval` while there is none."""
        found = self.find(claims)
        if found is not None and found.approver in approvers:
            return found
        who = ", ".join(approvers)
        raise PlanAwaitingApproval(
            f"plan {claims.ref} needs approval by one of {who} (rule {rule_id!r})"
            + (f"; the approval by {found.approver!r} does not count" if found else ""),
            rule_id=rule_id,
            hint=f"ask {who} to run `spyglass approve {claims.ref}`; poll with deploy_get_status(plan_id) "
            "and apply once approved — meanwhile go on with other work",
        )

    # Pending requests: the exact plan id, so `spyglass approve pl_<nonce>` can show what it approves.
    def request(self, claims: PlanClaims) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / f"{claims.nonce}.request").write_text(claims.raw)

    def lookup(self, ref: str) -> str | None:
        """The full plan id behind ``pl_<nonce>``, when this machine saw it requested."""
        nonce = ref.removeprefix("pl_")
        if not nonce.isalnum():
            return None
        try:
            return (self.dir / f"{nonce}.request").read_text().strip()
        except FileNotFoundError:
            return None
