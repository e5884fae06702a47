"""Requests checked against Slack's Swagger 2.0 spec (openapi-core reads OpenAPI 3 only).

The spec is weak (see ../shared/TESTING.md): it dates from 2021, declares reads as GET with a
``token`` parameter (clients send ``Authorization: Bearer`` instead, which Slack documents), and
marks few parameters required. So this checks what it can state: the method and path exist;
every parameter we send is declared for that operation, in that location (query for GET,
formData for POST), with a value of the declared type and enum; required ones are present,
``token`` being satisfied by a bearer header; a POST body has a content type the operation consumes.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.conformance import Recorded, load_spec_dict

SPEC = "slack-web-openapi-v2.post-forms.json"


def _type_ok(kind: str, value: str) -> bool:
    try:
        if kind == "integer":
            int(value)
        elif kind == "number":
            float(value)
        elif kind == "boolean":
            return value in ("true", "false", "1", "0")
    except ValueError:
        return False
    return True


def slack_errors(rec: Recorded, strip_prefix: str, spec: dict[str, Any] | None = None) -> list[str]:
    spec = spec or load_spec_dict(SPEC)
    parts = urlsplit(rec.url)
    path = parts.path.removeprefix(strip_prefix)
    where = f"{rec.method} {path}"
    op = spec["paths"].get(path, {}).get(rec.method.lower())
    if op is None:
        return [f"{where}: no such operation in the spec"]
    errors = []
    headers = {k.lower(): v for k, v in rec.headers.items()}
    if rec.method == "GET":
        given, location = dict(parse_qsl(parts.query, keep_blank_values=True)), "query"
    else:
        ctype = headers.get("content-type", "").split(";")[0]
        if ctype not in op.get("consumes", []):
            errors.append(f"{where}: content type {ctype!r} not in {op.get('consumes')}")
        if ctype == "application/json":
            given = {k: str(v) for k, v in json.loads(rec.body or b"{}").items()}
        else:
            given = dict(parse_qsl(rec.body.decode(), keep_blank_values=True))
        location = "formData"
        if parts.query:
            errors.append(f"{where}: query parameters on a POST: {parts.query}")
    declared = {p["name"]: p for p in op.get("parameters", [])}
    bearer = headers.get("authorization", "").startswith("Bearer ")
    for name, value in given.items():
        p = declared.get(name)
        if p is None:
            errors.append(f"{where}: parameter {name!r} is not declared")
            continue
        if p["in"] != location and name != "token":
            errors.append(f"{where}: {name!r} sent in {location}, declared in {p['in']}")
        if not _type_ok(p.get("type", "string"), value):
            errors.append(f"{where}: {name}={value!r} is not a valid {p.get('type')}")
        if "enum" in p and value not in p["enum"]:
            errors.append(f"{where}: {name}={value!r} not in {p['enum']}")
    for name, p in declared.items():
        if p.get("required") and name not in given and not (name == "token" and bearer):
            errors.append(f"{where}: required parameter {name!r} missing")
    if op.get("security") and not bearer and "token" not in given:
        errors.append(f"{where}: no credentials (bearer header or token)")
    return errors
