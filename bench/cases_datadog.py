"""Datadog investigation questions for the token-economy bench (bench/token_economy.py runs them).

Each is one tool call against the sandbox; ``facts`` are the substrings the answer must contain for
the question to be answered (stable across runs: names, versions, messages, not times or counts)."""

from __future__ import annotations

from bench.token_cases import TokenCase
from servers._core.world import World
from servers.datadog import fake_apm
from servers.datadog.fake_ops import CHECKOUT_ERRORS_ID


def _failing_checkout_trace() -> str:
    """A checkout trace from the last half hour that hit the pool timeout (the sandbox is deterministic)."""
    world = World()
    now = int(world.now().timestamp() // 60)
    for m in range(now - 2, now - 30, -1):
        for slot in (2, 3, 4):
            if any("error" in s["attributes"]["custom"] for s in fake_apm.build_trace(world, m, slot)):
                return fake_apm.trace_id(m, slot)
    return fake_apm.trace_id(now - 3, 2)


CASES: list[TokenCase] = [
    TokenCase(
        question="Which monitors are alerting or warning right now?",
        tool="datadog_list_monitors",
        args={"state": "triggered"},
        facts=("checkout error rate", "Alert", "checkout p95 latency", "Warn"),
    ),
    TokenCase(
        question="What does the checkout error-rate monitor check, and what does its runbook say?",
        tool="datadog_get_monitor",
        args={"monitor_id": CHECKOUT_ERRORS_ID},
        facts=("> 0.05", "env:prod Alert", "Checkout incident runbook", "roll back"),
    ),
    TokenCase(
        question="Is there an open incident for checkout, who leads it, and what has been done?",
        tool="datadog_get_incident",
        args={"incident_id": "INC-142"},
        facts=("SEV-2", "active", "Alice Nguyen", "services: checkout", "Roll back checkout to 2.13.4"),
    ),
    TokenCase(
        question="What changed around checkout just before the errors began?",
        tool="datadog_search_events",
        args={"service": "checkout", "from": "now-1h"},
        facts=("Deployed checkout 2.14.0", "checkout_async_payments rollout changed 10% → 50%",
               "[Triggered on {env:prod}] checkout error rate"),
    ),
    TokenCase(
        question="Which error is new, and since which version?",
        tool="datadog_search_error_issues",
        args={"from": "now-1h"},
        facts=("PaymentGatewayTimeout: connection pool exhausted", "| 2.14.0 |"),
    ),
    TokenCase(
        question="Where in the code does the payment timeout come from?",
        tool="datadog_get_error_issue",
        args={"issue_id": fake_apm.issue_id("checkout", fake_apm.POOL_ERROR)},
        facts=("checkout/payments/async_pool.py:87 _acquire", "by version: 2.14.0"),
    ),
    TokenCase(
        question="Why did this checkout request fail, and where did its time go?",
        tool="datadog_get_trace",
        args={"trace_id": _failing_checkout_trace()},
        facts=("critical path: checkout POST /api/checkout", "async_pool.acquire 3.00s", "!PaymentGatewayTimeout"),
    ),
    TokenCase(
        question="Which checkout spans are failing, and with what error?",
        tool="datadog_search_spans",
        args={"query": "service:checkout status:error", "limit": 20},
        facts=("async_pool.acquire", "PaymentGatewayTimeout: connection pool exhausted"),
    ),
    TokenCase(
        question="What does the checkout dashboard chart?",
        tool="datadog_get_dashboard",
        args={"dashboard_id": "chk-svc-001"},
        facts=("Error rate by version", "trace.http.request.errors{service:checkout", "monitor 4410021"),
    ),
]
