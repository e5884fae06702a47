"""Drive credentials: google-auth signs and parses, our egress layer carries the token request."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from servers._core.errors import MissingAccess
from servers._core.spec import ClientEnv
from servers.drive import fake
from servers.drive.auth import EgressRequest
from servers.drive.client import DriveClient
from servers.drive.settings import DriveSettings
from tests.conftest import SANDBOX_BASE, Harness, text_of

pytestmark = pytest.mark.anyio

TOKEN_URL = f"{SANDBOX_BASE}/drive/token"


def token_posts(harness: Harness) -> list[dict[str, list[str]]]:
    return [parse_qs(r.body.decode()) for r in harness.transport.requests if r.url == TOKEN_URL]


async def test_the_service_account_token_is_fetched_once_through_egress_and_reused(harness: Harness) -> None:
    async with harness.client(harness.server(toolsets=["drive"])) as c:
        for _ in range(3):
            r = await c.call_tool("drive_get_file", {"file": "doc-runbook-checkout"})
            assert not r.is_error, text_of(r)
    posts = token_posts(harness)
    assert len(posts) == 1
    assert posts[0]["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert posts[0]["assertion"][0].count(".") == 2  # a signed JWT, checked by the fake against the public key
    api = [r for r in harness.transport.requests if "/drive/v3/" in r.url]
    assert api and all(r.headers["authorization"].startswith("Bearer ya29.sandbox-") for r in api)


async def test_oauth_user_credentials_refresh_through_the_same_route(harness: Harness) -> None:
    env = {"SPYGLASS_DRIVE_URL": f"{SANDBOX_BASE}/drive",
           "SPYGLASS_DRIVE_CREDENTIALS_JSON": json.dumps(fake.authorized_user_info(TOKEN_URL))}
    async with harness.client(harness.server(toolsets=["drive"], env=env)) as c:
        r = await c.call_tool("drive_search_files", {"query": "runbook"})
    assert not r.is_error and "doc-runbook-checkout" in text_of(r)
    assert token_posts(harness)[0]["grant_type"] == ["refresh_token"]


async def test_credentials_from_a_key_file_named_by_google_application_credentials(harness, tmp_path) -> None:
    key = tmp_path / "key.json"
    key.write_text(json.dumps(fake.service_account_info(TOKEN_URL)))
    env = {"SPYGLASS_DRIVE_URL": f"{SANDBOX_BASE}/drive", "GOOGLE_APPLICATION_CREDENTIALS": str(key)}
    async with harness.client(harness.server(toolsets=["drive"], env=env)) as c:
        r = await c.call_tool("drive_get_file", {"file": "sht-oncall-rota"})
    assert not r.is_error


async def test_an_expired_token_is_refreshed_once_and_the_call_retried(harness: Harness) -> None:
    async with harness.client(harness.server(toolsets=["drive"])) as c:
        await c.call_tool("drive_get_file", {"file": "doc-runbook-checkout"})
        harness.sandbox.faults["drive"].push(401, {"error": {"code": 401, "message": "Invalid Credentials"}})
        r = await c.call_tool("drive_get_file", {"file": "sht-oncall-rota"})
    assert not r.is_error and len(token_posts(harness)) == 2


async def test_a_key_the_token_endpoint_rejects_is_missing_access_naming_the_source(harness: Harness) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    info = {**fake.service_account_info(TOKEN_URL), "private_key": other}
    env = {"SPYGLASS_DRIVE_URL": f"{SANDBOX_BASE}/drive", "SPYGLASS_DRIVE_CREDENTIALS_JSON": json.dumps(info)}
    async with harness.client(harness.server(toolsets=["drive"], env=env)) as c:
        r = await c.call_tool("drive_get_file", {"file": "doc-runbook-checkout"})
    text = text_of(r)
    assert r.is_error and "Google token refresh for spyglass-reader@acme-sandbox.iam.gserviceaccount.com failed" in text
    assert "SPYGLASS_DRIVE_CREDENTIALS_JSON" in text and "invalid_grant" in text
    assert "PRIVATE KEY" not in text and harness.sink.events[-1].outcome == "missing_access"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "neither GOOGLE_APPLICATION_CREDENTIALS nor SPYGLASS_DRIVE_CREDENTIALS_JSON is set"),
        ({"SPYGLASS_DRIVE_CREDENTIALS_JSON": "{not json"}, "SPYGLASS_DRIVE_CREDENTIALS_JSON: not valid JSON"),
        ({"SPYGLASS_DRIVE_CREDENTIALS_JSON": '{"type": "external_account"}'},
         "credential type 'external_account' is not supported"),
        ({"GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/key.json"}, "cannot read /nonexistent/key.json"),
        ({"SPYGLASS_DRIVE_CREDENTIALS_JSON": json.dumps({**fake.service_account_info("https://evil.example/token")})},
         "token_uri host 'evil.example' is not a Google token endpoint"),
    ],
)
def test_unusable_credentials_are_missing_access_saying_what_to_set(env: dict[str, str], says: str) -> None:
    with pytest.raises(MissingAccess) as ei:
        DriveSettings.from_env(env)
    assert says in ei.value.message


async def test_the_auth_adapter_refuses_any_url_but_the_token_route(harness: Harness) -> None:
    from google.auth.exceptions import TransportError

    env = ClientEnv(harness.sandbox.env(SANDBOX_BASE), transport=harness.transport)
    client = DriveClient(DriveSettings.from_env(env.env), env)
    adapter = EgressRequest(client.token_http, client.auth.route.template)
    for url, method in [("https://evil.example/token", "POST"), (TOKEN_URL, "GET"),
                        (f"{SANDBOX_BASE}/drive/drive/v3/files", "POST")]:
        with pytest.raises(TransportError, match="outside the token route allowlist"):
            adapter(url, method=method, body=b"")
    assert not harness.transport.requests
    await client.aclose()


@pytest.mark.slow
def test_importing_the_drive_toolset_does_not_import_google_auth() -> None:
    code = "import sys, servers.drive.tools, servers.drive.client; print('google.auth' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"
