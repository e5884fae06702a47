"""Grafana investigation questions for the token-economy bench (bench/token_economy.py runs them).

Each is one tool call against the sandbox; ``facts`` are the substrings the answer must contain for
the question to be answered (stable across runs: versions, names, messages, not times or numbers)."""

from __future__ import annotations

from bench.token_cases import TokenCase

_ERRORS_BY_VERSION = (
    'sum by (version) (rate(http_request_errors_total{service="checkout"}[5m])) / '
    'sum by (version) (rate(http_requests_total{service="checkout"}[5m]))'
)

CASES: list[TokenCase] = [
    TokenCase(
        question="Which Grafana alert is firing for checkout, and since when?",
        tool="grafana_list_alerts",
        args={"state": "firing"},
        facts=("CheckoutHighErrorRate", "firing since", "service=checkout", "severity=page"),
    ),
    TokenCase(
        question="Which checkout version has the high error ratio, and how does it compare with before?",
        tool="grafana_query_prometheus",
        args={"query": _ERRORS_BY_VERSION, "from": "now-30m", "points": 6},
        facts=("version=2.14.0", "change vs previous", "avg"),
    ),
    TokenCase(
        question="What errors is checkout logging right now?",
        tool="grafana_query_loki",
        args={"query": '{service="checkout", level="error"}', "from": "now-30m", "limit": 50},
        facts=("payment timeout after", "PaymentGatewayTimeout", "pool=async-payments", "version=2.14.0"),
    ),
    TokenCase(
        question="What was deployed or changed around the incident?",
        tool="grafana_get_annotations",
        args={"from": "now-2h"},
        facts=("Deployed checkout 2.14.0", "checkout_async_payments", "INC-142", "CheckoutHighErrorRate"),
    ),
    TokenCase(
        question="What does the checkout dashboard chart, and from which datasources?",
        tool="grafana_get_dashboard_summary",
        args={"uid": "checkout-overview"},
        facts=("Error ratio", "http_request_errors_total", "loki-main", "$service=checkout"),
    ),
]
