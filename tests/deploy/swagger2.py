"""Swagger 2.0 -> OpenAPI 3.0, just enough for openapi-core to validate requests against Argo CD's spec.

Carries over what request validation reads: paths, methods, path/query/header parameters (type,
format, enum, items, collectionFormat) and the JSON body schema; definitions become component
schemas. Responses are not converted (we validate the requests our client sends).
"""

from __future__ import annotations

import functools
from typing import Any

from tests.conformance import load_spec_dict

_SCHEMA_KEYS = ("type", "format", "enum", "items", "default", "minimum", "maximum", "pattern")


def _refs(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: (v.replace("#/definitions/", "#/components/schemas/") if k == "$ref" and isinstance(v, str)
                    else _refs(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_refs(x) for x in obj]
    return obj


def _param(p: dict[str, Any]) -> dict[str, Any]:
    schema = _refs({k: p[k] for k in _SCHEMA_KEYS if k in p})
    out: dict[str, Any] = {"name": p["name"], "in": p["in"], "required": bool(p.get("required", p["in"] == "path")),
                           "schema": schema}
    if schema.get("type") == "array":
        out["style"], out["explode"] = "form", p.get("collectionFormat", "csv") == "multi"
    return out


def to_openapi3(sw: dict[str, Any], server: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for path, item in sw["paths"].items():
        shared = [p for p in item.get("parameters", []) if p.get("in") != "body"]
        ops: dict[str, Any] = {}
        for method, op in item.items():
            if method == "parameters":
                continue
            params = [*shared, *op.get("parameters", [])]
            new: dict[str, Any] = {
                "operationId": op.get("operationId", f"{method} {path}"),
                "parameters": [_param(p) for p in params if p["in"] in ("path", "query", "header")],
                "responses": {"default": {"description": "any"}},
            }
            body = next((p for p in params if p["in"] == "body"), None)
            if body is not None:
                new["requestBody"] = {"required": bool(body.get("required")),
                                      "content": {"application/json": {"schema": _refs(body["schema"])}}}
            ops[method] = new
        paths[path] = ops
    return {"openapi": "3.0.3", "info": sw.get("info", {"title": "converted", "version": "0"}),
            "servers": [{"url": server}], "paths": paths,
            "components": {"schemas": _refs(sw.get("definitions", {}))}}


@functools.cache
def openapi_from_swagger2(name: str, server: str) -> Any:
    from openapi_core import Config, OpenAPI

    config = Config(spec_validator_cls=None)  # type: ignore[arg-type]
    return OpenAPI.from_dict(to_openapi3(load_spec_dict(name), server), config=config)
