"""URL helpers the audit and limits stores share: our own query parameters, and URLs fit to show."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def pop_param(url: str, name: str, default: str) -> tuple[str, str]:
    """``(url without the query parameter name, its value or default)``. Our parameters (a
    PostgreSQL schema, a Redis key prefix) must not reach the driver, which would reject them."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    value = next((v for k, v in query if k == name), default)
    rest = urlencode([(k, v) for k, v in query if k != name])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), value


def safe_url(url: str, *, user: bool = True) -> str:
    """The URL without password or query, for messages and ``location``; ``user=False`` drops the
    user name as well."""
    parts = urlsplit(url)
    who = f"{parts.username}@" if user and parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{who}{parts.hostname or ''}{port}{parts.path}"
