"""`spyglass serve` (stdio or streamable HTTP) and `spyglass token new`."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import Any

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the MCP server (stdio by default, --http for streamable HTTP)")
    p.add_argument("--toolsets", default=os.environ.get("SPYGLASS_TOOLSETS", "all"),
                   help="comma-separated toolsets, or 'all' (default; still filtered by the policy)")
    p.add_argument("--read-only", action="store_true", help="register no write tools, even ones named explicitly")
    p.add_argument("--policy", help="policy file (default: $SPYGLASS_POLICY, ~/.config/spyglass/policy.toml)")
    p.add_argument("--config", help="config file (default: $SPYGLASS_CONFIG, ~/.config/spyglass/spyglass.toml)")
    p.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--stateless", action="store_true", help="no sessions (for replicas behind a load balancer)")
    p.add_argument("--json-response", action="store_true", help="answer with JSON instead of SSE streams")
    p.add_argument("--max-body", type=int, default=1024 * 1024, help="request body limit in bytes (413 above)")
    p.add_argument("--allowed-host", action="append", default=[], help="Host header allowed (repeatable)")
    p.add_argument("--allowed-origin", action="append", default=[], help="Origin allowed (repeatable)")
    p.add_argument("--no-auth", action="store_true",
                   help="serve HTTP without bearer tokens; refused unless bound to loopback")
    p.set_defaults(func=serve)

    t = sub.add_parser("token", help="mint bearer tokens for --http")
    tsub = t.add_subparsers(dest="token_command", required=True)
    new = tsub.add_parser("new", help="print a new token and the hashed line to add to spyglass.toml")
    new.add_argument("principal")
    new.set_defaults(func=token_new)


def token_new(args: argparse.Namespace) -> int:
    from servers.httpauth import mint_token, token_digest

    token = mint_token()
    print(f"token (give it to the agent; it is not stored anywhere): {token}")
    print("\nadd to spyglass.toml:\n")
    print(f'[[http.tokens]]\nprincipal = "{args.principal}"\nsha256 = "{token_digest(token)}"')
    return 0


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(args: argparse.Namespace) -> int:
    from guards.policy import PolicyError
    from servers.config import ConfigError, resolve

    env = dict(os.environ)
    try:
        resolved = resolve(env, policy=args.policy, config=args.config)
        return _serve(args, env, resolved)
    except (PolicyError, ConfigError) as e:
        print(f"spyglass: {e}", file=sys.stderr)
        return 2


def open_audit(resolved: Any) -> Any:
    from guards.sinks import open_sink

    return open_sink(resolved.audit_url, resolved.state_dir)


def open_limit_store(resolved: Any, sink: Any) -> Any:
    """Redis when SPYGLASS_REDIS_URL is set (shared budgets and plan single-use across replicas;
    an outage refuses writes and is audited through ``sink``), else process-local."""
    from guards.sinks import open_limits

    return open_limits(resolved.redis_url, sink=sink)


def _serve(args: argparse.Namespace, env: dict[str, str], resolved: Any) -> int:
    from servers._core.inventory import UnknownToolset
    from servers.app import ServeOptions, build_server
    from servers.config import ConfigError

    opts = ServeOptions(
        policy=resolved.policy,
        toolsets=[t for t in args.toolsets.split(",") if t],
        read_only=args.read_only,
        env=env,
        config=resolved.config,
        state_dir=resolved.state_dir,
        transport_kind="http" if args.http else "stdio",
    )
    if args.http:
        from mcp.server.auth.settings import AuthSettings

        from servers.httpauth import HashedTokenVerifier, load_tokens

        digests = load_tokens(resolved.config)
        if not digests:
            if not args.no_auth:
                raise ConfigError(
                    "no bearer tokens configured for --http: add [[http.tokens]] to spyglass.toml "
                    "(`spyglass token new NAME`), or pass --no-auth on a loopback address for local use"
                )
            if not _is_loopback(args.host):
                raise ConfigError(f"--no-auth is only allowed on a loopback address, not {args.host!r}")
        else:
            opts.token_verifier = HashedTokenVerifier(digests)
            opts.auth = AuthSettings(issuer_url=f"http://{args.host}:{args.port}", resource_server_url=None)
    opts.sink = open_audit(resolved)
    opts.limits = open_limit_store(resolved, opts.sink)
    try:
        server = build_server(opts)
    except UnknownToolset as e:
        raise ConfigError(str(e)) from None
    for name, why in server.selection.skipped:  # type: ignore[attr-defined]
        if args.toolsets != "all":
            print(f"spyglass: toolset {name} not registered: {why}", file=sys.stderr)
    try:
        if args.http:
            _run_http(server, args)
        else:
            server.run()
    finally:
        opts.sink.close()
    return 0


def _run_http(server: Any, args: argparse.Namespace) -> None:
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    @server.custom_route("/healthz", methods=["GET"])
    async def healthz(_request: Request) -> JSONResponse:
        runtime = server.runtime
        return JSONResponse({"ok": runtime.guard.sink.healthy(), "tools": len(await server.list_tools())})

    local = ["localhost:*", "127.0.0.1:*"] if _is_loopback(args.host) else []
    hosts = args.allowed_host or [f"{args.host}:*", *local]
    origins = args.allowed_origin or ["http://localhost:*", "http://127.0.0.1:*"]
    security = TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts,
                                         allowed_origins=origins)
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=args.stateless,
        json_response=args.json_response,
        max_request_body_size=args.max_body,
        transport_security=security,
        host=args.host,
    )
    print(f"spyglass: serving streamable HTTP on http://{args.host}:{args.port}/mcp", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
