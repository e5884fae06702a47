"""The redactor: secret formats vendors publish, configured patterns, and loaded credentials."""

from __future__ import annotations

import pytest

from guards.redact import Redactor

R = Redactor(emails=True, patterns=[r"(?i)ssn=\d{3}-\d{2}-\d{4}"], known_secrets=["s3cr3t-datadog-app-key"])


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("key AKIAIOSFODNN7EXAMPLE leaked", "aws_access_key"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY1", "aws_secret_key"),
        ("token ghp_" + "a" * 36, "github_token"),
        ("xoxb-1234567890-abcdefghij", "slack_token"),
        ("https://hooks.slack.com/services/T000/B000/XXXX", "slack_webhook"),
        ("AIza" + "b" * 35, "google_api_key"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "private_key"),
        ("postgres://svc:hunter2@db:5432/x", "url_password"),
        ("Authorization: Bearer abcdefghijklmnop1234", "bearer"),
        ('{"password": "correct-horse"}', "assigned_secret"),
        ("lin_api_" + "c" * 40, "linear_key"),
        ("mail alice@example.com now", "email"),
        ("SSN=123-45-6789", "pattern0"),
        ("the app key s3cr3t-datadog-app-key echoed", "credential"),
    ],
)
def test_each_detector_redacts_its_secret_and_names_it(text: str, kind: str) -> None:
    out = R.text(text)
    assert f"[REDACTED:{kind}]" in out


def test_prefixes_are_kept_so_the_context_stays_readable() -> None:
    assert R.text("password=hunter22") == "password=[REDACTED:assigned_secret]"
    assert R.text("postgres://svc:hunter2@db/x") == "postgres://svc:[REDACTED:url_password]@db/x"


@pytest.mark.parametrize("text", ["GET /api/checkout 200 in 45ms", "order 8812 placed", "version 2.14.0",
                                  "trace 4bf92f3577b34da6a3ce929d0e0e4736"])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert R.text(text) == text


def test_emails_are_kept_unless_configured() -> None:
    assert Redactor().text("alice@example.com") == "alice@example.com"
