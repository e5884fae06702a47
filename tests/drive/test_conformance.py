"""Every Drive API request conforms to Google's Drive v3 discovery document."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from tests.conformance import Recorded, specs_available
from tests.conftest import SANDBOX_BASE, Harness
from tests.drive.discovery_check import discovery_errors

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(not specs_available(), reason="../shared/specs not found")]

PREFIX = "/drive"
AUTH = {"authorization": "Bearer ya29.x"}
CALLS = [
    ("drive_search_files", {"query": "it's checkout", "type": "doc", "from": "now-30d", "limit": 5}),
    ("drive_search_files", {"folder": "fld-runbooks"}),
    ("drive_get_file", {"file": "doc-runbook-checkout"}),
    ("drive_read_file", {"file": "doc-runbook-checkout"}),
    ("drive_read_file", {"file": "sht-oncall-rota"}),
    ("drive_read_file", {"file": "sld-checkout-q3"}),
    ("drive_read_file", {"file": "pdf-pool-loadtest"}),
    ("drive_read_file", {"file": "sc-oncall-rota"}),
]


async def test_every_drive_request_validates_against_the_discovery_document(harness: Harness) -> None:
    policy = {"scopes": [{"toolset": "drive", "folders": ["fld-runbooks", "fld-design-docs"]}]}
    async with harness.client(harness.server(policy=policy, toolsets=["drive"])) as c:
        for tool, args in CALLS:
            r = await c.call_tool(tool, args)
            assert not r.is_error, r.content
    api = [r for r in harness.transport.requests if "/drive/v3/" in r.url]
    kinds = {(r.url.split("?")[0].rsplit("/", 1)[-1] if "/export" in r.url else "alt=media" if "alt=media" in r.url
              else "list" if r.url.split("?")[0].endswith("/files") else "get") for r in api}
    assert kinds >= {"list", "get", "export", "alt=media"} and any("/drives/" in r.url for r in api)
    assert [e for rec in api for e in discovery_errors(rec, PREFIX)] == []
    # The one other request is OAuth's: a form POST to the credentials' token_uri.
    token = [r for r in harness.transport.requests if "/drive/v3/" not in r.url]
    assert [r.url for r in token] == [f"{SANDBOX_BASE}/drive/token"]
    assert token[0].headers["content-type"] == "application/x-www-form-urlencoded"
    assert set(parse_qs(token[0].body.decode())) == {"grant_type", "assertion"}


@pytest.mark.parametrize(
    ("url", "finding"),
    [
        ("/drive/drive/v3/files/doc1/export", "required parameter 'mimeType' missing"),
        ("/drive/drive/v3/files?pageSize=5000", "pageSize: 5000 outside [1, 1000]"),
        ("/drive/drive/v3/files?pageSize=many", "pageSize: 'many' is not an integer"),
        ("/drive/drive/v3/files?folder=fld-runbooks", "parameter 'folder' is not declared"),
        ("/drive/drive/v3/files?supportsAllDrives=yes", "'yes' is not a boolean"),
        ("/drive/drive/v3/files/doc1?alt=pdf", "'pdf' not in ['json', 'media', 'proto']"),
        ("/drive/drive/v3/files/doc1?fileId=doc1", "'fileId' is a path parameter"),
        ("/drive/drive/v3/folders/fld1", "no method in the discovery document"),
        ("/drive/drive/v2/files", "outside the service path"),
    ],
)
def test_the_validator_is_on_known_bad_requests_are_rejected(url: str, finding: str) -> None:
    errors = discovery_errors(Recorded("GET", SANDBOX_BASE + url, AUTH, b""), PREFIX)
    assert any(finding in e for e in errors), errors


def test_a_request_without_a_bearer_token_is_rejected() -> None:
    errors = discovery_errors(Recorded("GET", f"{SANDBOX_BASE}/drive/drive/v3/files", {}, b""), PREFIX)
    assert any("no bearer token" in e for e in errors)
