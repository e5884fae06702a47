"""Validate the HTTP requests our clients send against the vendors' official API specs.

The specs live in ``../shared/specs`` (beside the repo). Parsing the big ones is slow (Datadog
v2 is 4 MB of YAML), so each parsed spec is cached on disk outside the repo, keyed by content
hash, and loaded once per test session.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx2

SPECS_DIR = Path(os.environ.get("SPYGLASS_SPECS_DIR", Path(__file__).resolve().parents[2] / "shared" / "specs"))
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spyglass-tests"


def spec_path(name: str) -> Path:
    return SPECS_DIR / name


def specs_available() -> bool:
    return SPECS_DIR.is_dir()


def load_spec_dict(name: str) -> dict[str, Any]:
    path = spec_path(name)
    raw = path.read_bytes()
    key = hashlib.sha256(raw).hexdigest()[:16]
    cached = CACHE_DIR / f"{path.stem}-{key}.pickle"
    if cached.exists():
        try:
            return pickle.loads(cached.read_bytes())  # our own cache of a public spec
        except Exception:
            pass
    if path.suffix in (".yaml", ".yml"):
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(raw, Loader=loader)
    else:
        data = json.loads(raw)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(data))
    tmp.replace(cached)
    return data


@functools.cache
def openapi(name: str, server_base_url: str | None = None) -> Any:
    from openapi_core import Config, OpenAPI

    data = load_spec_dict(name)
    # The published specs are trusted input; skipping the meta-validation saves seconds per load.
    config = Config(spec_validator_cls=None, server_base_url=server_base_url)  # type: ignore[arg-type]
    return OpenAPI.from_dict(data, config=config)


@dataclass
class Recorded:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RecordingTransport(httpx2.AsyncBaseTransport):
    """Passes requests to ``inner`` and keeps a copy of each, for conformance checks."""

    inner: httpx2.AsyncBaseTransport
    requests: list[Recorded] = field(default_factory=list)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        self.requests.append(Recorded(request.method, str(request.url), dict(request.headers), body))
        return await self.inner.handle_async_request(request)


class _OARequest:
    """openapi-core's Request protocol over a recorded request."""

    def __init__(self, rec: Recorded, host_url: str, strip_prefix: str) -> None:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        parts = urlsplit(rec.url)
        path = parts.path
        if strip_prefix and path.startswith(strip_prefix):
            path = path[len(strip_prefix):] or "/"
        self.host_url = host_url.rstrip("/")
        self.path = path
        self.method = rec.method.lower()
        self.body = rec.body or None
        self.content_type = rec.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(parts.query, keep_blank_values=True)),
            header=Headers(list(rec.headers.items())),
            cookie=ImmutableMultiDict(),
        )

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path


def openapi_errors(api: Any, rec: Recorded, *, host_url: str, strip_prefix: str = "") -> list[str]:
    """Every violation openapi-core finds in one request (empty when it conforms)."""
    req = _OARequest(rec, host_url, strip_prefix)
    try:
        api.validate_request(req)
    except Exception as e:
        details = [str(e)]
        cause = e.__cause__ or e.__context__
        for sub in getattr(e, "schema_errors", None) or getattr(cause, "schema_errors", None) or []:
            details.append(f"  {list(sub.path)}: {sub.message}")
        return [f"{rec.method} {req.path}: " + "\n".join(details)]
    return []
