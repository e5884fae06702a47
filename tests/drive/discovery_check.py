"""Requests checked against Google's Drive v3 discovery document (it is not OpenAPI).

For each request: a method with that HTTP verb and path template exists under the document's
servicePath; every query parameter is declared (by the method or globally) as a query parameter,
with the declared type, enum and bounds; required ones are present; a bearer token is sent, and the
method accepts the drive.readonly scope our credentials ask for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.conformance import Recorded, load_spec_dict

DOC = "google-drive-v3-discovery.json"
READONLY = "https://www.googleapis.com/auth/drive.readonly"


def _methods(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from (node.get("methods") or {}).values()
    for child in (node.get("resources") or {}).values():
        yield from _methods(child)


def _match(template: str, rel: str) -> dict[str, str] | None:
    pieces = re.split(r"\{\+?(\w+)\}", template)  # literal, name, literal, name, ...
    rx = "^" + "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(pieces)) + "$"
    m = re.match(rx, rel)
    return {k: unquote(v) for k, v in m.groupdict().items()} if m else None


def _value_ok(p: dict[str, Any], v: str) -> str | None:
    kind = p.get("type", "string")
    if kind == "boolean" and v not in ("true", "false"):
        return f"{v!r} is not a boolean"
    if kind == "integer":
        try:
            n = int(v)
        except ValueError:
            return f"{v!r} is not an integer"
        if ("minimum" in p and n < int(p["minimum"])) or ("maximum" in p and n > int(p["maximum"])):
            return f"{n} outside [{p.get('minimum')}, {p.get('maximum')}]"
    if "enum" in p and v not in p["enum"]:
        return f"{v!r} not in {p['enum']}"
    return None


def discovery_errors(rec: Recorded, strip_prefix: str, doc: dict[str, Any] | None = None) -> list[str]:
    doc = doc or load_spec_dict(DOC)
    parts = urlsplit(rec.url)
    path = parts.path.removeprefix(strip_prefix)
    service = "/" + doc["servicePath"]
    where = f"{rec.method} {path}"
    if not path.startswith(service):
        return [f"{where}: outside the service path {service}"]
    rel = path[len(service):]
    hits = [(m, pp) for m in _methods(doc) if m["httpMethod"] == rec.method
            and (pp := _match(m["path"], rel)) is not None]
    if not hits:
        return [f"{where}: no method in the discovery document"]
    method, path_params = hits[0]
    errors = []
    declared = {**doc.get("parameters", {}), **method.get("parameters", {})}
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    for name, value in query.items():
        p = declared.get(name)
        if p is None:
            errors.append(f"{where}: parameter {name!r} is not declared for {method['id']}")
        elif p.get("location") != "query":
            errors.append(f"{where}: {name!r} is a {p.get('location')} parameter, sent in the query")
        elif (bad := _value_ok(p, value)) is not None:
            errors.append(f"{where}: {name}: {bad}")
    for name, p in declared.items():
        if p.get("required") and name not in query and name not in path_params:
            errors.append(f"{where}: required parameter {name!r} missing")
    if not {k.lower(): v for k, v in rec.headers.items()}.get("authorization", "").startswith("Bearer "):
        errors.append(f"{where}: no bearer token")
    if READONLY not in method.get("scopes", []):
        errors.append(f"{where}: {method['id']} does not accept the drive.readonly scope")
    return errors
